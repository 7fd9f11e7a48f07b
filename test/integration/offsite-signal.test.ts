// SIGTERM of `pullvault run` during its offsite phase (lab pi, dir target): every tar/zstd/gpg
// child stops with it, the snapshot just pulled and the upload records already made are intact,
// and the run is recorded as interrupted; the next run sends what was cut off.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { describeLab, startHost, startLabNetwork, type LabHost, type LabNetwork } from '../lab/index.ts';
import { waitFor } from '../lab/wait.ts';
import { genKey } from './offsite-fixture.ts';
import { CONFIG, DATA_DIR, labConfig, listTree, provisionLabServer, REPO, serverSpec } from './pull-lab.ts';

const STORE = '/srv/offsite';
const UPLOADS = `${DATA_DIR}/pullvault/state/uploads.jsonl`;
const ARCHIVERS = /^(tar|zstd|gpg)$/;

describeLab('SIGTERM during the offsite phase (lab: pi + servers, dir target)', () => {
  let net: LabNetwork;
  let pi: LabHost;
  let small: LabHost;
  let big: LabHost;
  let keys: string;
  let config: RuntimeConfig;

  const tsx = [`${REPO}/node_modules/.bin/tsx`, `${REPO}/runtime/main.ts`];
  const runArgv = (...extra: string[]) => ['setsid', '--wait', ...tsx, 'run', '--config', CONFIG, '--no-prune', ...extra];
  const pv = (...args: string[]) => pi.exec([...tsx, ...args], { okCodes: [0, 1, 2, 3, 4, 75] });
  /** processes of the pi host: pid, parent, command name */
  const procs = async () => (await pi.exec(['ps', '-e', '-o', 'pid=,ppid=,comm=']))
    .stdout.trim().split('\n').map((l) => l.trim().split(/\s+/)).map(([pid, ppid, comm]) => ({ pid, ppid, comm }));
  /** the stored objects; a put cut off by the signal may leave its `.incoming-*` temp file (never a stored name) */
  const storeListing = async () => (await pi.exec(['bash', '-c', `cd ${STORE} && find . -type f ! -name '.incoming-*' -print0 | sort -z | xargs -0 -r sha256sum`])).stdout;

  beforeAll(async () => {
    net = await startLabNetwork({ subnet: '10.219.0.0/24' });
    [pi, small, big] = await Promise.all([
      startHost({ name: 'pi', network: net }),
      startHost({ name: 'small', network: net }),
      startHost({ name: 'big', network: net }),
    ]);
    await pi.exec(['sh', '-c', `mkdir -p /etc/pullvault/keys ${DATA_DIR} ${STORE} && ssh-keygen -q -t ed25519 -N '' -C pi -f /etc/pullvault/id_ed25519 && mount -t tmpfs -o size=2g,mode=0755 backupdisk ${DATA_DIR}`]);
    const piPub = (await pi.readFile('/etc/pullvault/id_ed25519.pub')).toString().trim().split(' ').slice(0, 2).join(' ');
    const specs = [serverSpec(small, [{ path: '/srv/data' }]), serverSpec(big, [{ path: '/srv/data' }])];
    await Promise.all([provisionLabServer(small, specs[0], piPub, pi.address!), provisionLabServer(big, specs[1], piPub, pi.address!)]);
    await small.exec(['bash', '-c', 'mkdir -p /srv/data && echo small > /srv/data/a.txt']);
    // enough incompressible data that tar|zstd|encrypt is still running when the signal comes
    await big.exec(['bash', '-c', 'mkdir -p /srv/data && for i in 1 2 3; do head -c 100000000 /dev/urandom > /srv/data/f$i; done']);
    await pi.writeFile('/etc/pullvault/known_hosts', [small, big].map((h) => `${h.address} ${h.hostKey}\n`).join(''));
    keys = mkdtempSync(join(tmpdir(), 'pv-offsite-signal-'));
    const base = labConfig(specs);
    const recipients = [];
    for (const r of base.inventory.recipients) {
      const k = genKey(keys, r.name);
      await pi.writeFile(`/etc/pullvault/keys/${r.name}.asc`, readFileSync(k.publicFile));
      recipients.push({ ...r, fingerprint: k.fingerprint });
    }
    config = { ...base, inventory: { ...base.inventory, recipients, offsite: { type: 'dir', path: STORE } } };
    await pi.writeFile(CONFIG, JSON.stringify(config, null, 2), { mode: 0o600 });
  });

  afterAll(async () => {
    // free the big tmpfs contents first: the teardown's time limit is for processes, not for freeing memory
    await pi?.exec(['sh', '-c', `umount ${DATA_DIR}; rm -rf ${STORE}`], { okCodes: [0, 1, 32] }).catch(() => {});
    await Promise.all([pi, small, big].filter(Boolean).map((h) => h.stop()));
    await net?.stop();
    if (keys) rmSync(keys, { recursive: true, force: true });
  });

  it('no tar/zstd/gpg survives; the last good snapshot and the upload records are intact; status says interrupted', async () => {
    // a good state first: one server pulled and its full archive stored and recorded
    const first = await pi.exec(runArgv('--server', 'small'), { okCodes: [0, 1, 2, 3, 4] });
    expect(first.code, first.stderr).toBe(0);
    const uploadsBefore = (await pi.readFile(UPLOADS)).toString();
    expect(uploadsBefore.trim().split('\n')).toHaveLength(1);
    const storeBefore = await storeListing();

    const child = pi.spawn(runArgv('--server', 'big'), { stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    // the pull is done and the archivers run: signal the runtime itself (not its group)
    let runtime = '';
    let archivers: string[] = [];
    await waitFor('tar and zstd of the offsite phase', async () => {
      const found = (await procs()).filter((p) => ARCHIVERS.test(p.comm));
      runtime = found[0]?.ppid ?? '';
      archivers = found.map((p) => p.pid);
      return found.some((p) => p.comm === 'tar') && found.some((p) => p.comm === 'zstd');
    }, 120_000, 20);
    const snapshot = (await pi.exec(['readlink', `${DATA_DIR}/pullvault/snapshots/big/latest`])).stdout.trim();
    // Stopped (as if blocked on a slow disk), they cannot die of the broken pipe the runtime's
    // exit leaves them: only being stopped by the runtime (its child registry, PDEATHSIG) ends them.
    await pi.exec(['kill', '-STOP', ...archivers]);
    await pi.exec(['kill', '-TERM', runtime]);
    await exited;
    await waitFor('no archiver left', async () => !(await procs()).some((p) => ARCHIVERS.test(p.comm)), 2_000, 20)
      .catch(async () => expect((await procs()).filter((p) => ARCHIVERS.test(p.comm))).toEqual([]));

    // what was there before is untouched; the cut-off archive was neither stored nor recorded
    expect((await pi.readFile(UPLOADS)).toString()).toBe(uploadsBefore);
    expect(await storeListing()).toBe(storeBefore);
    expect((await pi.exec(['readlink', `${DATA_DIR}/pullvault/snapshots/big/latest`])).stdout.trim()).toBe(snapshot);
    expect(await listTree(pi, `${DATA_DIR}/pullvault/snapshots/big/${snapshot}/files/srv/data`)).toEqual(await listTree(big, '/srv/data'));
    const status = await pv('status', '--config', CONFIG);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/^last run: \S+ \(\S+ ago\), exit 143, INTERRUPTED by SIGTERM$/m);

    // the next run sends it
    const next = await pi.exec(runArgv('--server', 'big'), { okCodes: [0, 1, 2, 3, 4] });
    expect(next.code, next.stderr).toBe(0);
    const uploads = (await pi.readFile(UPLOADS)).toString().trim().split('\n').map((l) => JSON.parse(l) as { server: string; kind: string });
    expect(uploads.map((u) => `${u.server} ${u.kind}`)).toEqual(['small full', 'big full']);
  }, 300_000);
});
