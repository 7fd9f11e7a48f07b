// Space-aware local retention for real: a lab "pi" pulls a lab server into a small tmpfs
// "backup disk" while the server's data grows run after run (a file rewritten each time, as a
// database file or a rotated log is, plus new files that stay). Retention keeps two hourly
// snapshots; the runs are an hour apart on the runtime's clock (space-run.ts).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PullNeedsDoc } from '../../runtime/pull-needs.ts';
import { describeLab, startHost, startLabNetwork, type LabHost, type LabNetwork } from '../lab/index.ts';
import { CONFIG, DATA_DIR, labConfig, provisionLabServer, REPO, serverSpec } from './pull-lab.ts';

const SNAP = `${DATA_DIR}/pullvault/snapshots`;
const DISK_MIB = 45;
const MiB = 1048576;

describeLab('space-aware retention (lab: pi + server, a 45 MiB backup disk)', () => {
  let net: LabNetwork;
  let pi: LabHost;
  let alpha: LabHost;
  let beta: LabHost;
  let hour = 0;

  /** One run an hour after the previous one, of the named servers. */
  const run = async (...servers: string[]) => {
    hour++;
    const r = await pi.exec([`${REPO}/node_modules/.bin/tsx`, `${REPO}/test/integration/space-run.ts`, CONFIG, String(hour), ...servers], { okCodes: [0, 1, 3, 4] });
    if (process.env.PV_DEBUG) console.log(hour, r.code, r.stdout, r.stderr);
    return r;
  };
  const ls = async (server: string) => (await pi.exec(['bash', '-c', 'ls -A "$1" 2>/dev/null || true', 'ls', `${SNAP}/${server}`])).stdout.trim().split('\n').filter(Boolean);
  const snapshots = async (server: string) => (await ls(server)).filter((n) => /^\d{8}T\d{6}Z$/.test(n));
  const latest = async (server: string) => (await pi.exec(['readlink', `${SNAP}/${server}/latest`])).stdout.trim();
  const freeBytes = async () => Number((await pi.exec(['stat', '-f', '-c', '%a %S', DATA_DIR])).stdout.trim().split(' ').reduce((a, b) => String(Number(a) * Number(b))));
  const needs = async () => JSON.parse((await pi.readFile(`${DATA_DIR}/pullvault/state/pull-needs.json`)).toString()) as PullNeedsDoc;
  /** Ordinary growth on the server: `churn.bin` rewritten (8 MiB), one more 4 MiB file kept. */
  const grow = (n: number) =>
    alpha.exec(['bash', '-c', `set -e; cd /srv/data; head -c ${8 * MiB} /dev/urandom > churn.bin; touch -d @$((1700000000 + $1)) churn.bin; head -c ${4 * MiB} /dev/urandom > grow-$1.bin`, 'g', String(n)]);

  beforeAll(async () => {
    net = await startLabNetwork({ subnet: '10.219.0.0/24' });
    [pi, alpha, beta] = await Promise.all([
      startHost({ name: 'pi', network: net }),
      startHost({ name: 'alpha', network: net, services: ['sshd'] }),
      startHost({ name: 'beta', network: net, services: ['sshd'] }),
    ]);
    await pi.exec(['sh', '-c', `mkdir -p /etc/pullvault ${DATA_DIR} && ssh-keygen -q -t ed25519 -N '' -C pi -f /etc/pullvault/id_ed25519 && mount -t tmpfs -o size=${DISK_MIB}m,mode=0755 backupdisk ${DATA_DIR}`]);
    const piPub = (await pi.readFile('/etc/pullvault/id_ed25519.pub')).toString().trim().split(' ').slice(0, 2).join(' ');
    const specs = [serverSpec(alpha, [{ path: '/srv/data' }]), serverSpec(beta, [{ path: '/srv/www' }])];
    await Promise.all([provisionLabServer(alpha, specs[0], piPub, pi.address!), provisionLabServer(beta, specs[1], piPub, pi.address!)]);
    await alpha.exec(['bash', '-c', `mkdir -p /srv/data && head -c ${4 * MiB} /dev/urandom > /srv/data/base.bin`]);
    await beta.exec(['bash', '-c', 'mkdir -p /srv/www && head -c 100000 /dev/urandom > /srv/www/site.bin']);
    await pi.writeFile('/etc/pullvault/known_hosts', [alpha, beta].map((h) => `${h.address} ${h.hostKey}\n`).join(''));
    const base = labConfig(specs);
    const config = { ...base, inventory: { ...base.inventory, pi: { ...base.inventory.pi, dataDisk: { ...base.inventory.pi.dataDisk, minFreeMiB: 1 } }, retention: { hourly: 2, daily: 0, weekly: 0, monthly: 0 } } };
    delete config.inventory.notifications;
    await pi.writeFile(CONFIG, JSON.stringify(config, null, 2), { mode: 0o600 });
  });

  afterAll(async () => {
    await Promise.all([pi, alpha, beta].filter(Boolean).map((h) => h.stop()));
    await net?.stop();
  });

  it('ordinary growth: runs keep succeeding by pruning early what retention drops anyway, then the server is refused with the numbers, the newest kept, the other servers pulled', async () => {
    const ok: string[] = [];
    const prunedRuns: { id: string; pruned: string[] }[] = [];
    let refusal: { stderr: string; before: string[] } | undefined;
    for (let n = 1; n <= 10 && !refusal; n++) {
      await grow(n);
      const before = await snapshots('alpha');
      const r = await run('alpha');
      expect(r.stderr).not.toMatch(/No space left on device|ENOSPC/);
      const pruned = [...r.stderr.matchAll(/^alpha: space: pruned (\d{8}T\d{6}Z) \(.*\): won ([\d.]+) MiB/gm)];
      if (r.code === 0) {
        const id = await latest('alpha');
        expect(before).not.toContain(id);
        ok.push(id);
        if (pruned.length) {
          // what the rules (2 hourly) drop once the new snapshot exists: the oldest; and it won room
          expect(pruned.map((m) => m[1])).toEqual([before[0]]);
          expect(Number(pruned[0][2])).toBeGreaterThan(7);
          expect(r.stderr).toMatch(/^alpha: space: [\d.]+ MiB free, [\d.]+ MiB required \(the last pull wrote [\d.]+ MiB, × 1.25 for growth\): pruning by the retention rules$/m);
          prunedRuns.push({ id, pruned: pruned.map((m) => m[1]) });
        }
        expect(await snapshots('alpha')).toEqual([...before.slice(-1), id]);
      } else {
        expect(r.code).toBe(1);
        refusal = { stderr: r.stderr, before };
      }
    }
    // several runs only fitted because of the early prune (without it, rsync ran out of space)
    expect(prunedRuns.length).toBeGreaterThanOrEqual(2);
    expect(refusal).toBeDefined();
    const m = /alpha: FAILED: not enough space on \/srv\/backup to pull alpha: ([\d.]+) MiB required \(the last pull wrote ([\d.]+) MiB, × 1.25 for growth\), ([\d.]+) MiB free; deleting what the retention rules allow \((\d{8}T\d{6}Z)\) would win only ([\d.]+) MiB, so nothing was deleted; kept 2 snapshot\(s\), newest (\d{8}T\d{6}Z)\. Not pulled/.exec(refusal!.stderr);
    expect(m, refusal!.stderr).not.toBeNull();
    const [, required, wrote, free, candidate, wouldWin, newest] = m!;
    expect(Number(required)).toBeCloseTo(Number(wrote) * 1.25, 0);
    expect(Number(free) + Number(wouldWin)).toBeLessThan(Number(required));
    expect(Number(wouldWin)).toBeGreaterThan(7); // the rewritten file's copy: what deleting it would free
    expect(Math.abs(Number(free) * MiB - (await freeBytes()))).toBeLessThan(MiB);
    expect(candidate).toBe(refusal!.before[0]);
    // no snapshot was given up for a pull that could not happen; the newest is `latest`, complete; nothing half-made is left
    expect(await snapshots('alpha')).toEqual(refusal!.before);
    expect(newest).toBe(ok[ok.length - 1]);
    expect(await latest('alpha')).toBe(newest);
    expect(await ls('alpha')).toEqual(expect.not.arrayContaining([expect.stringMatching(/partial|deleting/)]));
    expect(JSON.parse((await pi.readFile(`${SNAP}/alpha/${newest}/snapshot.json`)).toString())).toMatchObject({ id: newest, partial: false });
    const record = (await needs()).servers.alpha;
    expect(record).toMatchObject({ snapshot: newest, linked: true });
    expect(record.bytes / MiB).toBeCloseTo(Number(wrote), 0);

    // a server that does not fit is that server's failure: the next one in the run is still pulled
    const both = await run('alpha', 'beta');
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/alpha: FAILED: not enough space on \/srv\/backup to pull alpha: /);
    expect(both.stderr).toMatch(/run finished with failures: alpha \(exit 1\)/);
    expect(await snapshots('beta')).toEqual([await latest('beta')]);
    expect(await snapshots('alpha')).toEqual(refusal!.before);
  });

  it('a pull that runs out of space anyway (a burst beyond the margin): no partial left, last snapshot intact, the next run asks for more', async () => {
    const first = await latest('beta'); // pulled by the last run above, next to a refused alpha
    const free = await freeBytes();
    await beta.exec(['bash', '-c', `head -c ${Math.ceil(free / MiB) + 4}M /dev/urandom > /srv/www/burst.bin`]);
    const r2 = await run('beta');
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/beta: FAILED: .*No space left on device.* — out of space: needed more than the [\d.]+ MiB free; the partial copy was removed, snapshot \d{8}T\d{6}Z is intact/s);
    expect(await latest('beta')).toBe(first);
    expect(await snapshots('beta')).toEqual([first]);
    expect(await ls('beta')).toEqual(expect.not.arrayContaining([expect.stringMatching(/partial/)]));
    expect(Math.abs((await freeBytes()) - free)).toBeLessThan(MiB);
    const record = (await needs()).servers.beta;
    expect(record).toMatchObject({ lowerBound: true, linked: true });
    expect(record.bytes).toBeGreaterThan(free - MiB);
    // the next run knows it needs more than the free space it ran out of; the only snapshot stays
    const r3 = await run('beta');
    expect(r3.code).toBe(1);
    expect(r3.stderr).toMatch(/not enough space on \/srv\/backup to pull beta: [\d.]+ MiB required \(the last pull ran out of [\d.]+ MiB free, × 1.25 for growth\), [\d.]+ MiB free; the retention rules allow pruning nothing; kept 1 snapshot\(s\), newest /);
    expect(await snapshots('beta')).toEqual([first]);
    expect(r3.stderr).not.toMatch(/No space left on device/);
  });
});
