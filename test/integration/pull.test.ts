// The pull cycle for real: `pullvault run` inside a lab "pi" host pulls lab servers over SSH
// (restricted key + dispatcher, from= the Pi's address) into a tmpfs "backup disk".
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ServerSpec } from '../../contract/inventory-schema.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { entryPath, type ManifestEntry, type SnapshotInfo } from '../../contract/disk-layout.ts';
import { diffManifests } from '../../runtime/pull/hash-reuse.ts';
import { describeLab, seedDatabases, SEEDED_ITEMS, startHost, startLabNetwork, type LabHost, type LabNetwork } from '../lab/index.ts';
import { waitFor } from '../lab/wait.ts';
import { CONFIG, DATA_DIR, labConfig, listTree, PROM_DIR, provisionLabServer, REPO, SEED_TREE, serverSpec } from './pull-lab.ts';

const SNAP = `${DATA_DIR}/pullvault/snapshots`;

describeLab('pullvault run (lab: pi + servers)', () => {
  let net: LabNetwork;
  let pi: LabHost;
  let alpha: LabHost;
  let beta: LabHost;
  let config: RuntimeConfig;
  let specs: ServerSpec[];
  const ids: string[] = [];

  const runArgv = (cfg = CONFIG, ...extra: string[]) => ['setsid', '--wait', `${REPO}/node_modules/.bin/tsx`, `${REPO}/runtime/main.ts`, 'run', '--config', cfg, '--no-prune', '--no-offsite', ...extra];
  const pv = async (...args: string[]) => pi.exec([`${REPO}/node_modules/.bin/tsx`, `${REPO}/runtime/main.ts`, ...args], { okCodes: [0, 1, 2, 3, 4, 75] });
  const run = async (cfg = CONFIG) => {
    const r = await pi.exec(runArgv(cfg, ...(process.env.PV_DEBUG ? ['--progress'] : [])), { okCodes: [0, 1, 2, 3, 4, 75] });
    if (process.env.PV_DEBUG) console.log(r.code, r.stdout, r.stderr);
    return r;
  };
  const latestId = async (server: string) => (await pi.exec(['readlink', `${SNAP}/${server}/latest`])).stdout.trim();
  const info = async (server: string, id: string) => JSON.parse((await pi.readFile(`${SNAP}/${server}/${id}/snapshot.json`)).toString()) as SnapshotInfo;
  const manifest = async (server: string, id: string) =>
    (await pi.readFile(`${SNAP}/${server}/${id}/manifest.jsonl`)).toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as ManifestEntry);
  const nextSecond = () => new Promise((r) => setTimeout(r, 1100));
  const inodes = async (dir: string) => {
    const out = (await pi.exec(['bash', '-c', 'cd "$1" && find . -type f -printf "%P\\0%i\\0"', 'x', dir])).stdoutBuffer.toString('latin1').split('\0');
    const m = new Map<string, string>();
    for (let i = 0; i + 1 < out.length; i += 2) m.set(out[i], out[i + 1]);
    return m;
  };

  beforeAll(async () => {
    net = await startLabNetwork({ subnet: '10.217.0.0/24' });
    [pi, alpha, beta] = await Promise.all([
      startHost({ name: 'pi', network: net, services: ['sshd', 'mariadb', 'postgres'] }),
      startHost({ name: 'alpha', network: net, services: ['sshd', 'mariadb', 'postgres'] }),
      startHost({ name: 'beta', network: net }),
    ]);
    await pi.exec(['sh', '-c', `mkdir -p /etc/pullvault ${DATA_DIR} ${PROM_DIR} /srv/plain && ssh-keygen -q -t ed25519 -N '' -C pi -f /etc/pullvault/id_ed25519 && mount -t tmpfs -o size=2g,mode=0755 backupdisk ${DATA_DIR}`]);
    const piPub = (await pi.readFile('/etc/pullvault/id_ed25519.pub')).toString().trim().split(' ').slice(0, 2).join(' ');
    await seedDatabases(alpha);
    specs = [
      serverSpec(alpha, [{ path: '/srv/data', exclude: ['*.tmp'] }], { mariadb: 'all', postgres: ['shop'] }),
      serverSpec(beta, [{ path: '/srv/www' }]),
    ];
    // the real provision-server: backup user, dispatcher (rrsync -ro per root), restricted key, DB accounts
    await Promise.all([provisionLabServer(alpha, specs[0], piPub, pi.address!), provisionLabServer(beta, specs[1], piPub, pi.address!)]);
    await alpha.exec(['bash', '-c', SEED_TREE, 'seed', '/srv/data']);
    await beta.exec(['bash', '-c', 'mkdir -p /srv/www/site && echo "<h1>hi</h1>" > /srv/www/site/index.html && head -c 50000 /dev/urandom > /srv/www/blob']);
    await pi.writeFile('/etc/pullvault/known_hosts', [alpha, beta].map((h) => `${h.address} ${h.hostKey}\n`).join(''));
    config = labConfig(specs);
    await pi.writeFile(CONFIG, JSON.stringify(config, null, 2), { mode: 0o600 });
  });

  afterAll(async () => {
    await Promise.all([pi, alpha, beta].filter(Boolean).map((h) => h.stop()));
    await net?.stop();
  });

  it('first run: a complete snapshot equal to the source (modes, owners, links, odd names)', async () => {
    const r = await run();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const id = await latestId('alpha');
    ids.push(id);
    expect(await latestId('beta')).toBe(id);
    const src = await listTree(alpha, '/srv/data', ['skip.tmp'], true);
    const dst = await listTree(pi, `${SNAP}/alpha/${id}/files/srv/data`, [], true);
    expect(dst).toEqual(src);
    expect(src.some((l) => l.includes('\xff\xfe'))).toBe(true);
    expect(dst.join('\n')).not.toContain('skip.tmp');
    // manifest: raw-byte names, hard-link groups, numeric owners, symlink targets, hashes
    const m = await manifest('alpha', id);
    const byPath = new Map(m.map((e) => [entryPath(e).toString('latin1'), e]));
    expect(byPath.get('files/srv/data/bad\xff\xfename')).toMatchObject({ t: 'f', s: 3 });
    expect(byPath.get('files/srv/data/bad\xff\xfename')!.pb).toBeDefined();
    expect(byPath.get('files/srv/data/new\nline')).toMatchObject({ p: 'files/srv/data/new\nline', t: 'f' });
    expect(byPath.get('files/srv/data/sub/hardlink-to-a')).toMatchObject({ hl: 'files/srv/data/a.txt', mode: 0o755 });
    expect(byPath.get('files/srv/data/owned/f')).toMatchObject({ u: 1234, g: 2345 });
    expect(byPath.get('files/srv/data/dangling')!.lb).toBe(Buffer.from('/nonexistent/target\xff', 'latin1').toString('base64'));
    expect(byPath.get('files/srv/data/a.txt')!.h).toBe('5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03');
    expect(byPath.get('files/srv/data/a.txt')!.m).toBe(Date.UTC(2020, 0, 2, 3, 4, 5) / 1000);
    const keys = m.map((e) => entryPath(e));
    expect(keys).toEqual([...keys].sort(Buffer.compare));
    const i = await info('alpha', id);
    expect(i).toMatchObject({ server: 'alpha', id, partial: false, unreadable: [] });
    expect(i.dumps.map((d) => d.file).sort()).toEqual(['dumps/mariadb/shop.sql.zst', 'dumps/postgres/globals.sql.zst', 'dumps/postgres/shop.pgdump']);
    expect(i.stats.hashedFiles).toBe(i.stats.files - 1); // the hard link is hashed once
    // every file rsync wrote was hashed while rsync ran (the dumps come after it)
    expect(i.stats.prehashedFiles).toBe(i.stats.hashedFiles - i.dumps.length);
    // status for machines
    const prom = (await pi.readFile(`${PROM_DIR}/pullvault.prom`)).toString();
    expect(prom).toMatch(/^pullvault_server_up\{server="alpha"\} 1$/m);
    expect(prom).toMatch(/^pullvault_last_run_exit_code 0$/m);
  });

  it('dumps in the snapshot restore into fresh MariaDB and PostgreSQL with the same rows', async () => {
    const dir = `${SNAP}/alpha/${ids[0]}/dumps`;
    await pi.exec(['bash', '-c', `set -o pipefail; zstd -dc ${dir}/mariadb/shop.sql.zst | mariadb`]);
    const my = await pi.exec(['mariadb', '-N', '-B', '-e', 'SELECT name FROM shop.item ORDER BY id']);
    expect(my.stdout.trim().split('\n')).toEqual(SEEDED_ITEMS);
    // snapshots are root-only (0700): root reads, postgres restores from stdin
    await pi.exec(['bash', '-c', `set -o pipefail; zstd -dc ${dir}/postgres/globals.sql.zst > /tmp/globals.sql && runuser -u postgres -- createdb shop && runuser -u postgres -- pg_restore --no-owner -d shop < ${dir}/postgres/shop.pgdump`]);
    const pg = await pi.exec(['psql', '-X', '-A', '-t', '-d', 'shop', '-c', 'SELECT name FROM item ORDER BY id'], { user: 'postgres' });
    expect(pg.stdout.trim().split('\n')).toEqual(SEEDED_ITEMS);
    expect((await pi.readFile('/tmp/globals.sql')).toString()).toContain('CREATE ROLE');
  });

  it('second run with nothing changed: every file hard-linked to the first, no hash recomputed', async () => {
    await nextSecond();
    const r = await run();
    expect(r.code).toBe(0);
    const id = await latestId('alpha');
    expect(id).not.toBe(ids[0]);
    ids.push(id);
    for (const server of ['alpha', 'beta']) {
      const a = await inodes(`${SNAP}/${server}/${ids[0]}/files`);
      const b = await inodes(`${SNAP}/${server}/${id}/files`);
      expect(b.size).toBeGreaterThan(0);
      expect(b).toEqual(a);
      const i = await info(server, id);
      expect(i.stats.hashedFiles).toBe(i.dumps.length); // only the new dumps
      expect(i.stats.prehashedFiles).toBe(0); // rsync wrote nothing
    }
    // (directories made by the runtime itself, like files/srv, are new each time)
    const d = diffManifests(await manifest('alpha', ids[0]), await manifest('alpha', id), { ignoreDirMtime: true });
    expect(d.changed.filter((p) => p.startsWith('files/'))).toEqual([]);
  });

  it('a change, an addition and a deletion on the server: exactly those differ', async () => {
    await alpha.exec(['bash', '-c', 'printf changed > "/srv/data/with space/file name.txt"; echo new > /srv/data/sub/new.txt; rm -- /srv/data/-leading-dash']);
    await nextSecond();
    expect((await run()).code).toBe(0);
    const id = await latestId('alpha');
    ids.push(id);
    const d = diffManifests(await manifest('alpha', ids[1]), await manifest('alpha', id), { ignoreDirMtime: true });
    const files = (l: string[]) => l.filter((p) => p.startsWith('files/'));
    expect({ added: files(d.added), removed: files(d.removed), changed: files(d.changed) }).toEqual({
      added: ['files/srv/data/sub/new.txt'],
      removed: ['files/srv/data/-leading-dash'],
      changed: ['files/srv/data/with space/file name.txt'],
    });
    const i = await info('alpha', id);
    expect(i.stats.hashedFiles).toBe(2 + i.dumps.length);
    expect(i.stats.prehashedFiles).toBe(2);
    expect(await listTree(pi, `${SNAP}/alpha/${id}/files/srv/data`)).toEqual(await listTree(alpha, '/srv/data', ['skip.tmp']));
  });

  it('SIGKILL in the middle of a pull: no child survives, status says interrupted, previous snapshot intact, the next run completes', async () => {
    await alpha.exec(['bash', '-c', 'mkdir -p /srv/data/bulk && for i in 1 2 3 4; do head -c 100000000 /dev/urandom > /srv/data/bulk/f$i; done']);
    const prev = ids[ids.length - 1];
    const before = await listTree(pi, `${SNAP}/alpha/${prev}`);
    await nextSecond();
    const child: ChildProcess = pi.spawn(runArgv(), { stdio: 'ignore' });
    const exited = new Promise((r) => child.on('exit', r));
    // wait until rsync is writing into the .partial, then kill the whole run (its process group)
    await waitFor('pull in progress', async () => {
      const r = await pi.exec(['bash', '-c', `du -sm ${SNAP}/alpha/*.partial 2>/dev/null | awk '{s+=$1} END {print s+0}'`]);
      return Number(r.stdout.trim()) > 30;
    }, 60_000, 20);
    const lock = (await pi.readFile(`${DATA_DIR}/pullvault/state/lock`)).toString().split(' ')[0];
    // everything of this run is in the session setsid made for it: the runtime, its rsync and ssh
    const session = (await pi.exec(['ps', '-o', 'sid=', '-p', lock])).stdout.trim();
    const inSession = async () => (await pi.exec(['ps', '-e', '-o', 'pid=,sid=,args=']))
      .stdout.split('\n').filter((l) => l.trim().split(/\s+/)[1] === session && !/^\s*\S+\s+\S+\s+(setsid|node\s\S+\/tsx)\b/.test(l));
    expect((await inSession()).some((l) => /\brsync\b/.test(l))).toBe(true);
    // SIGKILL to the runtime alone (not its process group): it cannot stop anything itself
    await pi.exec(['kill', '-KILL', lock]);
    await exited;
    // its children die with it (PR_SET_PDEATHSIG), not seconds later when a pipe breaks
    await waitFor('no child of the killed run', async () => (await inSession()).length === 0, 2_000, 20)
      .catch(async () => expect(await inSession()).toEqual([]));
    const status = await pv('status', '--config', CONFIG);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(new RegExp(`^last run: INTERRUPTED: started \\S+ \\(\\S+ ago\\), pid ${lock}, never finished`, 'm'));
    expect(JSON.parse((await pv('status', '--json', '--config', CONFIG)).stdout).lastRun).toMatchObject({ pid: Number(lock), state: 'interrupted' });
    expect((await pi.readFile(`${PROM_DIR}/pullvault.prom`)).toString()).toMatch(/^pullvault_last_run_finished 0$/m);
    expect((await pi.exec(['bash', '-c', `ls -d ${SNAP}/alpha/*.partial | wc -l`])).stdout.trim()).toBe('1');
    expect(await latestId('alpha')).toBe(prev);
    expect(await listTree(pi, `${SNAP}/alpha/${prev}`)).toEqual(before);

    await nextSecond();
    const r = await run();
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const id = await latestId('alpha');
    ids.push(id);
    expect((await pi.exec(['bash', '-c', `ls -a ${SNAP}/alpha ${SNAP}/beta`])).stdout).not.toMatch(/partial|\.tmp/);
    expect(await listTree(pi, `${SNAP}/alpha/${id}/files/srv/data`)).toEqual(await listTree(alpha, '/srv/data', ['skip.tmp']));
    await alpha.exec(['rm', '-rf', '/srv/data/bulk']);
  });

  it('two runs at once: one runs, the other exits with the lock code', async () => {
    await nextSecond();
    const first = pi.spawn(runArgv(), { stdio: 'ignore' });
    const firstExit = new Promise<number>((r) => first.on('exit', (c) => r(c ?? -1)));
    await waitFor('lock taken', async () => (await pi.exec(['test', '-e', `${DATA_DIR}/pullvault/state/lock`], { okCodes: [0, 1] })).code === 0, 30_000, 10);
    const second = await run();
    expect(second.code).toBe(75);
    expect(second.stderr).toMatch(/another run is in progress \(pid \d+\)/);
    expect(await firstExit).toBe(0);
  });

  it('backup disk not mounted: refused, nothing written', async () => {
    const plain = labConfig(specs, { paths: { ...config.paths, dataDir: '/srv/plain' } });
    await pi.writeFile('/etc/pullvault/plain.json', JSON.stringify(plain));
    const r = await run('/etc/pullvault/plain.json');
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/refusing to run: data dir \/srv\/plain is not a mountpoint/);
    expect((await pi.exec(['find', '/srv/plain', '-mindepth', '1'])).stdout).toBe('');
    // and a mounted volume that is not the dm-crypt mapper is refused without the lab flag
    const strict = labConfig(specs, { allowUnencryptedDataDir: false });
    await pi.writeFile('/etc/pullvault/strict.json', JSON.stringify(strict));
    const s = await run('/etc/pullvault/strict.json');
    expect(s.code).toBe(3);
    expect(s.stderr).toMatch(/not the unlocked dm-crypt volume \/dev\/mapper\/pullvault-data/);
  });

  it('a pre-flight refusal (the disk is not the dm-crypt volume): status and metrics say refused with the reason, never ok', async () => {
    const strict = labConfig(specs, { allowUnencryptedDataDir: false });
    await pi.writeFile('/etc/pullvault/strict.json', JSON.stringify(strict));
    const r = await run('/etc/pullvault/strict.json');
    expect(r.code).toBe(3);
    const status = await pv('status', '--config', '/etc/pullvault/strict.json');
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/^last run: \S+ \(\S+ ago\), exit 3, REFUSED: .*not the unlocked dm-crypt volume/m);
    expect(status.stdout).not.toMatch(/exit 0|, ok$/m);
    const prom = (await pi.readFile(`${PROM_DIR}/pullvault.prom`)).toString();
    expect(prom).toMatch(/^pullvault_last_run_exit_code 3$/m);
    expect(prom).toMatch(/^pullvault_last_run_outcome\{outcome="refused"\} 1$/m);
    // the servers' last snapshots are still shown: a refusal loses nothing
    expect(status.stdout).toMatch(/^alpha\s+ok\s+\d{8}T\d{6}Z/m);
  });

  it('a program missing (setpriv): refused before any work, and status says so', async () => {
    // a PATH with everything the runtime needs but setpriv
    await pi.exec(['sh', '-c', 'mkdir -p /opt/nosetpriv && for t in node rsync ssh zstd tar find; do ln -sf "$(command -v $t)" /opt/nosetpriv/; done']);
    const r = await pi.exec(['/usr/bin/env', 'PATH=/opt/nosetpriv', `${REPO}/node_modules/.bin/tsx`, `${REPO}/runtime/main.ts`, 'run', '--config', CONFIG, '--no-offsite'], { okCodes: [0, 1, 2, 3, 4] });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/setpriv not found in PATH .*package util-linux/);
    const status = await pv('status', '--config', CONFIG);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/^last run: \S+ \(\S+ ago\), exit 3, REFUSED: missing programs: setpriv$/m);
  });

  it('unreadable files: snapshot kept, flagged partial, paths listed (exit 4)', async () => {
    await beta.exec(['bash', '-c', 'echo secret > /srv/www/private.key && chmod 600 /srv/www/private.key']);
    await nextSecond();
    const r = await run();
    expect(r.code).toBe(4);
    const id = await latestId('beta');
    const i = await info('beta', id);
    expect(i.partial).toBe(true);
    expect(i.unreadable.join('\n')).toMatch(/private\.key.*Permission denied/);
    expect((await pv('status', '--config', CONFIG)).stdout).toMatch(/beta\s+ok\s+\S+\s+\S+\s+\d+\s+.*partial\(1 unreadable\)/);
    await beta.exec(['rm', '/srv/www/private.key']);
  });

  it('one server down: the other is still snapshotted; exit code and status say which failed', async () => {
    await beta.stop();
    await nextSecond();
    const r = await run();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/beta: FAILED: \/srv\/www: rsync exit (12|255) .*connect to host/);
    expect(r.stderr).toMatch(/run finished with failures: beta/);
    const id = await latestId('alpha');
    expect(id).not.toBe(ids[ids.length - 1]);
    const status = JSON.parse((await pv('status', '--json', '--config', CONFIG)).stdout);
    expect(status.lastRun).toMatchObject({ exitCode: 1, outcome: 'failed', state: 'failed', failed: ['beta'] });
    expect(status.servers.alpha).toMatchObject({ ok: true, lastSnapshot: id });
    expect(status.servers.beta.ok).toBe(false);
    const text = await pv('status', '--config', CONFIG);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^beta\s+FAILED/m);
    const prom = (await pi.readFile(`${PROM_DIR}/pullvault.prom`)).toString();
    expect(prom).toMatch(/^pullvault_server_up\{server="beta"\} 0$/m);
    expect(prom).toMatch(/^pullvault_server_up\{server="alpha"\} 1$/m);
    const list = await pv('list', '--config', CONFIG);
    expect(list.stdout).toMatch(/alpha: \d+ snapshot\(s\)/);
  });

  it('local retention: --dry-run lists, prune deletes per borg rules, never the newest', async () => {
    // every snapshot so far was taken within minutes: hourly keeps one per hour (the newest)
    const before = (await pi.exec(['ls', `${SNAP}/alpha`])).stdout.trim().split('\n').filter((n) => /^\d{8}T\d{6}Z$/.test(n));
    expect(before.length).toBeGreaterThan(3);
    const dry = await pv('prune', '--dry-run', '--config', CONFIG);
    expect(dry.code).toBe(0);
    const newest = before[before.length - 1];
    expect(dry.stdout).toContain(`keep alpha/${newest} (`);
    const would = dry.stdout.split('\n').filter((l) => l.startsWith('would delete alpha/'));
    expect(would.length).toBeGreaterThan(0);
    expect((await pi.exec(['ls', `${SNAP}/alpha`])).stdout.trim().split('\n').filter((n) => /^\d{8}T/.test(n))).toEqual(before);
    const real = await pv('prune', '--config', CONFIG);
    expect(real.code).toBe(0);
    const after = (await pi.exec(['ls', `${SNAP}/alpha`])).stdout.trim().split('\n').filter((n) => /^\d{8}T/.test(n));
    expect(after).toContain(newest);
    expect(after.length).toBe(before.length - would.length);
    expect(await latestId('alpha')).toBe(newest);
  });
});
