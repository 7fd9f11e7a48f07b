// A store that stops answering mid-upload, for real: `pullvault run` inside a lab "pi" pulls two
// lab servers and uploads to moto's S3 server (in the pi, over HTTP), which the test freezes
// with SIGSTOP while the first archive streams (the kernel still accepts its connections; no
// answer ever comes). The run must end at its offsite deadline with a clear failure and record
// nothing; a run started meanwhile must pull every server (the stuck upload holds only the
// offsite lock) and keep the snapshot the stuck upload reads; after SIGCONT the next run uploads.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ServerSpec } from '../../contract/inventory-schema.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import type { UploadRecord } from '../../runtime/offsite/uploads.ts';
import { describeLab, startHost, startLabNetwork, type LabHost, type LabNetwork } from '../lab/index.ts';
import { ensureMotoVenv, MOTO_CREDENTIALS } from '../lab/moto.ts';
import { CONFIG, DATA_DIR, labConfig, provisionLabServer, REPO, serverSpec } from './pull-lab.ts';
import { genKey } from './offsite-fixture.ts';

const SNAP = `${DATA_DIR}/pullvault/snapshots`;
const UPLOADS = `${DATA_DIR}/pullvault/state/uploads.jsonl`;
const MOTO = 'http://127.0.0.1:5000';
const BUCKET = 'pv-hang';
const DEADLINE_S = 45;

describeLab('offsite: a store frozen mid-upload (lab: pi + moto + servers)', () => {
  let net: LabNetwork;
  let pi: LabHost;
  let alpha: LabHost;
  let beta: LabHost;
  let work: string;

  const runArgv = ['setsid', '--wait', `${REPO}/node_modules/.bin/tsx`, `${REPO}/runtime/main.ts`, 'run', '--config', CONFIG, '--progress'];
  const run = () => pi.exec(runArgv, { okCodes: [0, 1, 2, 3, 4, 75] });
  const moto = (sig: 'STOP' | 'CONT') => pi.exec(['sh', '-c', `kill -${sig} "$(cat /run/moto.pid)"`]);
  const snapshots = async (server: string) => (await pi.exec(['ls', `${SNAP}/${server}`])).stdout.split('\n').filter((l) => /^\d{8}T\d{6}Z$/.test(l));
  const records = async () =>
    (await pi.exec(['sh', '-c', `cat ${UPLOADS} 2>/dev/null || true`])).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as UploadRecord);
  const storedKeys = async () => {
    const xml = (await pi.exec(['curl', '-sf', '--max-time', '20', `${MOTO}/${BUCKET}?list-type=2&prefix=pi/`])).stdout;
    return [...xml.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]);
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'pv-offsite-hang-'));
    const motoServer = await ensureMotoVenv();
    net = await startLabNetwork({ subnet: '10.219.0.0/24' });
    [pi, alpha, beta] = await Promise.all([startHost({ name: 'pi', network: net }), startHost({ name: 'alpha', network: net }), startHost({ name: 'beta', network: net })]);
    await pi.exec(['sh', '-c', `mkdir -p /etc/pullvault/keys ${DATA_DIR} && ssh-keygen -q -t ed25519 -N '' -C pi -f /etc/pullvault/id_ed25519 && mount -t tmpfs -o size=1g,mode=0755 backupdisk ${DATA_DIR}`]);
    // moto in the pi, its pid kept for the signals; a child of a shell, not of nsenter: nsenter
    // stops itself when its child stops, and a stopped nsenter would never reap moto at teardown
    pi.spawn(['sh', '-c', `cd / && MOTO_ALLOW_NONEXISTENT_REGION=true "$0" -H 127.0.0.1 -p 5000 >/var/log/moto.log 2>&1 </dev/null & echo $! > /run/moto.pid; wait`, motoServer], { stdio: 'ignore' });
    const piPub = (await pi.readFile('/etc/pullvault/id_ed25519.pub')).toString().trim().split(' ').slice(0, 2).join(' ');
    const specs: ServerSpec[] = [serverSpec(alpha, [{ path: '/srv/data' }]), serverSpec(beta, [{ path: '/srv/www' }])];
    await Promise.all([provisionLabServer(alpha, specs[0], piPub, pi.address!), provisionLabServer(beta, specs[1], piPub, pi.address!)]);
    // incompressible: the archive is 3 parts of 16 MiB, so the upload is still going when the store stops
    await alpha.exec(['sh', '-c', 'mkdir -p /srv/data && head -c 48000000 /dev/urandom > /srv/data/big.bin && echo notes > /srv/data/notes.txt']);
    await beta.exec(['sh', '-c', `mkdir -p /srv/www && echo '<h1>hi</h1>' > /srv/www/index.html && echo ${randomBytes(8).toString('hex')} > /srv/www/id`]);
    await pi.writeFile('/etc/pullvault/known_hosts', [alpha, beta].map((h) => `${h.address} ${h.hostKey}\n`).join(''));

    const [owner, escrow] = [genKey(work, 'owner'), genKey(work, 'escrow')];
    await pi.writeFile('/etc/pullvault/keys/owner.asc', readFileSync(owner.publicFile));
    await pi.writeFile('/etc/pullvault/keys/escrow.asc', readFileSync(escrow.publicFile));
    await pi.writeFile('/etc/pullvault/aws.json', JSON.stringify(MOTO_CREDENTIALS), { mode: 0o600 });
    const base = labConfig(specs);
    const config: RuntimeConfig = {
      ...base,
      paths: { ...base.paths, recipientKeysDir: '/etc/pullvault/keys', awsCredentialsFile: '/etc/pullvault/aws.json' },
      inventory: {
        ...base.inventory,
        offsite: { type: 's3', bucket: BUCKET, region: 'eu-central-1', prefix: 'pi/', retentionDays: { full: 90, incremental: 60 }, endpoint: MOTO },
        recipients: [
          { name: 'owner', publicKeyFile: 'owner.asc', fingerprint: owner.fingerprint },
          { name: 'escrow', publicKeyFile: 'escrow.asc', fingerprint: escrow.fingerprint },
        ],
        schedule: { pull: '0 * * * *', offsite: { fullEveryDays: 30, incrementalEveryDays: 1, deadlineMinutes: DEADLINE_S / 60 } },
        // one snapshot a day: without the offsite lock's note, the second run would delete the snapshot the stuck upload reads
        retention: { hourly: 0, daily: 1, weekly: 0, monthly: 0 },
      },
    };
    await pi.writeFile(CONFIG, JSON.stringify(config, null, 2), { mode: 0o600 });
    for (let i = 0; ; i++) {
      const r = await pi.exec(['curl', '-sf', '--max-time', '2', `${MOTO}/moto-api/data.json`], { okCodes: [0, 7, 22, 28, 52, 56] });
      if (r.code === 0) break;
      if (i > 300) throw new Error(`moto did not start in the pi: ${(await pi.readFile('/var/log/moto.log')).toString().slice(-2000)}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    const loc = '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>eu-central-1</LocationConstraint></CreateBucketConfiguration>';
    await pi.exec(['curl', '-sf', '--max-time', '20', '-X', 'PUT', '--data', loc, `${MOTO}/${BUCKET}`]);
  });

  afterAll(async () => {
    await pi?.exec(['sh', '-c', 'kill -CONT "$(cat /run/moto.pid)"']).catch(() => undefined);
    await Promise.all([pi, alpha, beta].filter(Boolean).map((h) => h.stop()));
    await net?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the frozen upload ends at the deadline (nothing recorded); a run meanwhile pulls every server; after SIGCONT the next run uploads', async () => {
    // run 1: freeze the store as soon as alpha's archive starts streaming
    const first = pi.spawn(runArgv);
    let err1 = '';
    let frozen: Promise<unknown> | undefined;
    first.stdout!.resume();
    first.stderr!.on('data', (d: Buffer) => {
      err1 += d.toString();
      if (process.env.PV_DEBUG) process.stderr.write(`[run 1 ${new Date().toISOString()}] ${d.toString()}`);
      if (!frozen && /offsite alpha: \d+ entries/.test(err1)) frozen = moto('STOP');
    });
    const code1 = new Promise<number | null>((res) => first.on('close', (c) => res(c)));
    while (!frozen) {
      if (first.exitCode !== null) throw new Error(`run 1 ended before its upload started:\n${err1}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await frozen;
    if (process.env.PV_DEBUG) console.log(`[moto stopped ${new Date().toISOString()}]`);

    // run 2, while run 1 waits on the frozen store: it pulls both servers, leaves the upload alone
    const second = await run();
    if (process.env.PV_DEBUG) console.log(`[run 2 ${new Date().toISOString()}]`, second.code, second.stderr);
    expect(second.stderr).toMatch(/offsite: another run \(pid \d+\) is still uploading; this run's snapshots go offsite with a later run/);
    expect(second.stderr).toMatch(/alpha: snapshot \d{8}T\d{6}Z: 2 files/);
    expect(second.stderr).toMatch(/beta: snapshot \d{8}T\d{6}Z: 2 files/);
    expect(second.stderr).not.toMatch(/FAILED/);
    expect(second.code).toBe(0);

    // run 1 gives up at its deadline: exit 1, a clear reason, nothing recorded
    expect(await code1).toBe(1);
    expect(err1).toMatch(new RegExp(`offsite: FAILED: alpha: the offsite deadline \\(${DEADLINE_S} s, schedule\\.offsite\\.deadlineMinutes\\) passed; nothing of this upload was recorded`));
    expect(err1).toMatch(/beta: not started: the offsite deadline/);
    expect(await records()).toEqual([]);
    // the snapshot run 1 was reading survived run 2's retention (one a day), pinned by the offsite lock
    const ids = await snapshots('alpha');
    expect(ids).toHaveLength(2);
    const status = JSON.parse((await pi.readFile(`${DATA_DIR}/pullvault/state/status.json`)).toString());
    expect(status.servers.alpha.ok).toBe(true);
    expect(status.servers.beta.ok).toBe(true);
    expect(status.servers.alpha.lastSnapshot).toBe(ids[1]);

    // the store answers again: the next run uploads the newest snapshot of each server
    await moto('CONT');
    const third = await run();
    if (process.env.PV_DEBUG) console.log(`[run 3 ${new Date().toISOString()}]`, third.code, third.stderr);
    expect(third.stderr).not.toMatch(/FAILED|still uploading/);
    expect(third.code).toBe(0);
    const recs = await records();
    expect(recs.map((r) => [r.server, r.kind]).sort()).toEqual([['alpha', 'full'], ['beta', 'full']]);
    const newest = (await snapshots('alpha')).at(-1);
    expect(recs.find((r) => r.server === 'alpha')!.snapshot).toBe(newest);
    expect(ids).not.toContain(newest);
    const keys = await storedKeys();
    for (const r of recs) expect(keys).toEqual(expect.arrayContaining([r.key, r.manifestKey]));
    // the stuck attempt left no object (its multipart upload was never completed)
    expect(keys.filter((k) => k.includes(ids[0]))).toEqual([]);
  });
});
