// The lab helper itself: isolation, networking, teardown, crash-safety, databases.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client } from 'ssh2';
import { afterAll, expect, it } from 'vitest';
import { MARIADB_DUMP_OPTIONS } from '../../contract/db-engines/mariadb.ts';
import {
  cleanStaleRunners,
  createDumpUser,
  describeLab,
  processesInNamespace,
  run,
  seedDatabases,
  SEEDED_ITEMS,
  snapshotMachine,
  startHost,
  startLabNetwork,
  type LabHost,
} from './index.ts';
import { waitFor } from './wait.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const timings: Record<string, number> = {};
async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  timings[what] = Math.round(performance.now() - t0);
  return r;
}

async function sha256(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}
const ACCOUNT_FILES = ['/etc/passwd', '/etc/group', '/etc/shadow'];
const accountHashes = () => Promise.all(ACCOUNT_FILES.map(sha256));

/** Nothing of these namespaces is held by any process any more. */
async function namespacesGone(ns: LabHost['namespaces']): Promise<boolean> {
  for (const k of ['pid', 'mnt', 'net'] as const) {
    if ((await processesInNamespace(k, ns[k])).length) return false;
  }
  return true;
}

describeLab('lab hosts', () => {
  afterAll(() => console.log(`lab timings (ms): ${JSON.stringify(timings)}`));

  it('starts a host whose users and files are not the machine’s', async () => {
    const before = await accountHashes();
    const host = await timed('host start', () => startHost({ name: 'iso' }));
    try {
      const user = `labiso${process.pid}`;
      await host.exec(['useradd', '-m', '-s', '/bin/bash', user]);
      expect((await host.exec(['id', '-un', user])).stdout.trim()).toBe(user);
      expect((await host.exec(['whoami'], { user })).stdout.trim()).toBe(user);
      expect((await host.exec(['sh', '-c', 'echo $HOME'], { user })).stdout.trim()).toBe(`/home/${user}`);
      await host.writeFile(`/home/${user}/note`, 'hi\n', { mode: 0o600, owner: user });
      expect((await host.exec(['stat', '-c', '%U:%G %a', `/home/${user}/note`])).stdout.trim()).toBe(`${user}:${user} 600`);
      expect((await host.readFile(`/home/${user}/note`)).toString()).toBe('hi\n');
      // writes under the shared lower layer (/work) stay inside the host
      const marker = join(REPO, `test/lab/.marker-${process.pid}`);
      await host.writeFile(marker, 'inside');
      expect(existsSync(marker)).toBe(false);
      expect((await host.exec(['hostname'])).stdout.trim()).toBe('iso');
      // the machine's node and the repo (with node_modules) are usable inside
      const node = await host.exec(['node', '-e', `console.log(require(${JSON.stringify(join(REPO, 'node_modules/ssh2/package.json'))}).name)`]);
      expect(node.stdout.trim()).toBe('ssh2');
      expect(await accountHashes()).toEqual(before);
      expect(await run(['id', user], { okCodes: [1] })).toMatchObject({ code: 1 });
      for (const f of ACCOUNT_FILES) expect(await readFile(f, 'utf8')).not.toContain(user);
    } finally {
      await timed('host stop', () => host.stop());
    }
  });

  it('shows the runner’s checkout at its own path when it lives under the private /tmp', async () => {
    // A checkout under /tmp holding a copy of the lab module, the lib/ it imports (and this repo's node_modules):
    // a host started from it must run that tree, while its /tmp stays otherwise fresh.
    const checkout = await mkdtemp('/tmp/pv-checkout-');
    try {
      await run(['sh', '-c', 'mkdir "$2/provision" && cp -a "$1/provision/lab" "$2/provision/" && cp -a "$1/lib" "$2/" && cp "$1/package.json" "$1/test/lab/checkout-probe.ts" "$2/" && ln -s "$1/node_modules" "$2/node_modules"', 'sh', REPO, checkout]);
      const marker = join(checkout, 'marker');
      const token = `checkout ${process.pid} ${Date.now()}\n`;
      await writeFile(marker, token);
      const out = await run(['sh', '-c', 'cd "$1" && exec "$2" --import tsx checkout-probe.ts "$3"', 'sh', checkout, process.execPath, marker]);
      const seen = JSON.parse(out.stdout.trim().split('\n').pop()!) as { marker: string | null; tmp: string[] };
      expect(seen.marker).toBe(token);
      // nothing else of the machine's /tmp (the lab's own state dir, the runner's files) is visible
      expect(seen.tmp).toEqual([checkout.split('/')[2]]);
      // writes inside the host to the checkout stay in the host
      expect(await readFile(marker, 'utf8')).toBe(token);
    } finally {
      await rm(checkout, { recursive: true, force: true });
    }
  });

  it('runs three hosts in parallel that reach each other’s sshd over the lab network', async () => {
    const net = await startLabNetwork();
    const names = ['h1', 'h2', 'h3'];
    const hosts = await timed('3 hosts in parallel', () =>
      Promise.all(
        names.map((name, i) =>
          startHost({ name, network: net, extraAddresses: i === 0 ? ['10.213.0.200'] : [] }),
        ),
      ),
    );
    try {
      expect(hosts.map((h) => h.address)).toEqual(names.map((n) => net.addressFor(n)));
      expect(new Set(hosts.map((h) => h.address)).size).toBe(3);
      // a failed start (duplicate name on the network) rejects and cleans up after itself
      await expect(startHost({ name: 'h2', network: net })).rejects.toThrow(/already joined/);
      expect(net.members().map((m) => m.name).sort()).toEqual(names);
      const adminKey = await readFile(hosts[0].adminKeyFile);
      const knownHosts = hosts.map((h) => `${h.name},${h.address} ${h.hostKey}`).join('\n') + '\n';
      await Promise.all(
        hosts.map(async (h) => {
          await h.writeFile('/root/.ssh/id_ed25519', adminKey, { mode: 0o600 });
          await h.writeFile('/root/.ssh/known_hosts', knownHosts);
        }),
      );
      // each host logs into the next one by name (from /etc/hosts) with a pinned host key
      await Promise.all(
        hosts.map(async (h, i) => {
          const next = hosts[(i + 1) % hosts.length];
          const r = await h.exec(['ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'StrictHostKeyChecking=yes', `root@${next.name}`, 'hostname']);
          expect(r.stdout.trim()).toBe(next.name);
        }),
      );
      // from= restrictions see the source address: h1 may come from .2 but not from its extra .200
      const [h1, h2, h3] = hosts;
      const pub = (await readFile(`${h1.adminKeyFile}.pub`, 'utf8')).trim();
      await h2.writeFile('/root/.ssh/authorized_keys', `from="${h1.address}" ${pub}\n`, { mode: 0o600 });
      const sshFrom = (bind: string) =>
        h1.exec(['ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-b', bind, `root@${h2.address}`, 'echo ok'], { okCodes: [0, 255] });
      expect((await sshFrom(h1.address!)).stdout.trim()).toBe('ok');
      expect((await sshFrom('10.213.0.200')).code).toBe(255);

      // from the machine: OpenSSH through the ProxyCommand, host key pinned, strict checking
      const r = await run(['ssh', ...h1.sshArgs('root'), 'cat /etc/hostname']);
      expect(r.stdout.trim()).toBe('h1');
      // ... and a wrong pin is refused
      await writeFile(h3.knownHostsFile, `h3 ${h1.hostKey}\n`);
      expect((await run(['ssh', ...h3.sshArgs('root'), 'true'], { okCodes: [255] })).stderr).toMatch(/host key/i);
      // ssh2 over sock() (h3: h2 now only admits h1's address)
      const out = await new Promise<string>((resolve, reject) => {
        setTimeout(() => reject(new Error('ssh2 over sock() timed out')), 15_000).unref();
        void h3.sock().then((sock) => {
          const c = new Client();
          c.on('error', reject)
            .on('ready', () =>
              c.exec('hostname', (err, stream) => {
                if (err) return reject(err);
                let s = '';
                stream.on('data', (b: Buffer) => (s += b)).on('close', () => (c.end(), resolve(s)));
              }),
            )
            .connect({
              sock,
              username: 'root',
              privateKey: adminKey,
              hostVerifier: (key: Buffer) => key.equals(Buffer.from(h3.hostKey.split(' ')[1], 'base64')),
            });
        }, reject);
      });
      expect(out.trim()).toBe('h3');
    } finally {
      await Promise.all(hosts.map((h) => h.stop()));
      await net.stop();
    }
  });

  it('leaves no process, mount or network link after teardown', async () => {
    const before = await snapshotMachine();
    const net = await startLabNetwork();
    const host = await timed('host start +mariadb', () =>
      startHost({ name: 'gone', network: net, services: ['sshd', 'mariadb'] }),
    );
    const { pid, namespaces, stateDir } = host;
    // a daemonised process inside (setsid, re-parented to PID 1)
    await host.exec(['sh', '-c', 'setsid sleep 1000 </dev/null >/dev/null 2>&1 &']);
    expect((await processesInNamespace('pid', namespaces.pid)).length).toBeGreaterThan(3);
    await timed('host stop (with mariadb)', () => host.stop());
    await net.stop();
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(await namespacesGone(namespaces)).toBe(true);
    expect(existsSync(stateDir)).toBe(false);
    const after = await snapshotMachine();
    expect(after.links).toEqual(before.links);
    expect(after.mounts).toEqual(before.mounts);
    expect((await readFile('/proc/self/mountinfo', 'utf8')).includes('pullvault-lab')).toBe(false);
  });

  it('leaves nothing when the test runner is killed with SIGKILL', async () => {
    const linksBefore = (await snapshotMachine()).links;
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/lab/killed-runner.ts'], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`killed-runner exited early (${code})`)));
    });
    const info = JSON.parse(line) as {
      pid: number; namespaces: LabHost['namespaces']; stateDir: string; runnerDir: string; switchPid: number;
    };
    expect(existsSync(`/proc/${info.pid}`)).toBe(true);
    const switchNet = await run(['readlink', `/proc/${info.switchPid}/ns/net`]);
    child.kill('SIGKILL');
    await waitFor('the killed runner’s host to die', async () => !existsSync(`/proc/${info.pid}`) && (await namespacesGone(info.namespaces)), 10_000, 20);
    await waitFor('the killed runner’s switch to die', async () => (await processesInNamespace('net', switchNet.stdout.trim())).length === 0, 10_000, 20);
    expect((await snapshotMachine()).links).toEqual(linksBefore);
    // its state dir is stale now, and the next start (here: an explicit call) removes it
    expect(existsSync(info.runnerDir)).toBe(true);
    await cleanStaleRunners(); // (a parallel lab test file may have done it already)
    expect(existsSync(info.runnerDir)).toBe(false);
  });

  it('runs MariaDB and PostgreSQL that a least-privilege user can dump', async () => {
    const host = await startHost({ name: 'db' });
    try {
      await timed('mariadb start', () => host.startMariadb());
      await timed('postgres start', () => host.startPostgres());
      await host.startMariadb(); // idempotent
      await timed('seed', () => seedDatabases(host));
      await createDumpUser(host, 'dumper');

      const my = await host.exec(
        ['mariadb-dump', ...MARIADB_DUMP_OPTIONS, '--databases', 'shop'],
        { user: 'dumper' },
      );
      for (const item of SEEDED_ITEMS) expect(my.stdout).toContain(`'${item}'`);
      expect(my.stdout).toMatch(/TRIGGER `?item_audit`? AFTER INSERT ON `?item`?/);
      expect(my.stdout).toContain('VIEW `v_item`');
      expect(my.stdout).toMatch(/PROCEDURE `item_total`/);
      expect(my.stdout).toMatch(/EVENT `purge_audit`/);
      // least privilege: no writes
      const write = await host.exec(['mariadb', '-e', "INSERT INTO shop.item(name) VALUES ('x')"], { user: 'dumper', okCodes: [1] });
      expect(write.stderr).toMatch(/denied/i);

      const pg = await host.exec(['pg_dump', '-d', 'shop'], { user: 'dumper' });
      for (const item of SEEDED_ITEMS) expect(pg.stdout).toContain(item);
      expect(pg.stdout).toContain('FUNCTION public.item_count()');
      expect(pg.stdout).toMatch(/COPY priv\.secret \(x\) FROM stdin;\n42\n/);
      const pgWrite = await host.exec(['psql', '-X', '-d', 'shop', '-c', "INSERT INTO item(name) VALUES ('x')"], { user: 'dumper', okCodes: [1] });
      expect(pgWrite.stderr).toMatch(/permission denied/);
    } finally {
      await timed('host stop (with both dbs)', () => host.stop());
    }
  });
});
