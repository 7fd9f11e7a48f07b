// Disposable isolated lab hosts: own mount/net/pid/uts/ipc namespaces, an overlay over the
// machine's / on tmpfs, a fresh ed25519 host key and a real sshd. See README.md.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { copyFile, mkdir, open, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { processesInNamespace } from './leftovers.ts';
import { checkAddress, checkName, type LabNetwork } from './network.ts';
import type { RunResult } from '../../lib/proc/index.ts';
import { BASE_ENV, run } from './env.ts';
import { startMariadbIn, startPostgresIn } from './services.ts';
import { newStateDir, runnerState } from './state.ts';
import { waitExit, waitFor } from './wait.ts';

const INIT = fileURLToPath(new URL('./init.sh', import.meta.url));
/** The checkout this module runs from: hosts see it at the same path (init.sh), wherever it lives. */
const CHECKOUT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
/** init.sh normally needs 0.1–0.3 s; this only guards against a hung start. */
const INIT_TIMEOUT_MS = 30_000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error('timeout')), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export type LabService = 'sshd' | 'mariadb' | 'postgres';

export interface ExecOptions {
  input?: string | Buffer;
  /** Run as this user (via runuser, which sets HOME/USER/LOGNAME/SHELL); default root. */
  user?: string;
  /** Added to a minimal environment (PATH, LANG, HOME); nothing leaks from the test runner. */
  env?: Record<string, string>;
  /** Exit codes that do not throw; default [0]. */
  okCodes?: number[];
}

export interface SpawnInHostOptions {
  user?: string;
  env?: Record<string, string>;
  stdio?: SpawnOptions['stdio'];
}

export interface LabHost {
  name: string;
  /** PID 1 of the host's pid namespace, as seen from the machine (for `nsenter -t`). */
  pid: number;
  /** 'ssh-ed25519 AAAA…' without comment, read from inside the host; pin it. */
  hostKey: string;
  /** Its address on the lab network (when started with `network`). */
  address?: string;
  /** Private key (0600, on the machine) that logs in as root@host. */
  adminKeyFile: string;
  /** known_hosts file (on the machine) pinning hostKey for the host's name and address. */
  knownHostsFile: string;
  /** OpenSSH ProxyCommand reaching the host's 127.0.0.1:22 (no network change needed). */
  proxyCommand: string;
  /** Namespace links ('mnt:[…]' …) of the host; used to prove teardown left nothing. */
  namespaces: { pid: string; mnt: string; net: string };
  /** State dir on the machine (logs; the overlay tmpfs is mounted there only inside the host). */
  stateDir: string;
  /** argv for the OpenSSH client: `ssh ...host.sshArgs('root'), 'cmd'` (pinned, BatchMode). */
  sshArgs(user?: string): string[];
  /** A connected stream to the host's 127.0.0.1:port (default 22), e.g. ssh2's `sock`. */
  sock(port?: number): Promise<Duplex>;
  /** Run argv inside the host (all its namespaces, its root); throws on an unexpected exit code. */
  exec(argv: string[], opts?: ExecOptions): Promise<RunResult>;
  /** Like exec, streaming; the caller owns the child process. */
  spawn(argv: string[], opts?: SpawnInHostOptions): ChildProcess;
  /** Write a file inside the host (parents created); owner 'user' or 'user:group'. Default mode 0644. */
  writeFile(path: string, content: string | Buffer, opts?: { mode?: number; owner?: string }): Promise<void>;
  readFile(path: string): Promise<Buffer>;
  /** Start MariaDB (root via unix_socket); idempotent; resolves when it answers. */
  startMariadb(): Promise<void>;
  /** Start PostgreSQL 15 (the `postgres` binary directly); idempotent; resolves when ready. */
  startPostgres(): Promise<void>;
  /** Kill the host and verify no process, mount or link of it is left. Idempotent. */
  stop(): Promise<void>;
}

export interface StartHostOptions {
  /** Hostname inside, [a-z][a-z0-9-]*; unique per network. Need not be unique across test files. */
  name: string;
  /** Default ['sshd']; 'mariadb'/'postgres' are started (in parallel) before startHost resolves. */
  services?: LabService[];
  network?: LabNetwork;
  /** Extra addresses: on eth0 when on a network (bare = /32), else on lo. For `from=` tests. */
  extraAddresses?: string[];
  /** Write the other network members into /etc/hosts (default true). */
  hostsFile?: boolean;
}

export async function startHost(opts: StartHostOptions): Promise<LabHost> {
  checkName(opts.name);
  // Reserve the address now, so hosts started together get addresses in call order.
  const address = opts.network?.addressFor(opts.name);
  const services = opts.services ?? ['sshd'];
  const runner = await runnerState();
  const stateDir = await newStateDir('host', opts.name);
  await mkdir(join(stateDir, 'ovl'));
  await copyFile(`${runner.adminKeyFile}.pub`, join(stateDir, 'admin_key.pub'));
  const log = await open(join(stateDir, 'init.log'), 'w');
  const child = spawn(
    'setpriv',
    // --pdeathsig: unshare dies with the test process; --kill-child: PID 1 dies with unshare;
    // the kernel then kills everything in the pid namespace. Nothing survives a SIGKILLed runner.
    ['--pdeathsig', 'KILL', '--', 'unshare', '--mount', '--net', '--pid', '--uts', '--ipc', '--fork',
      '--kill-child', '--propagation', 'private', '--', INIT, stateDir, opts.name,
      services.includes('sshd') ? 'sshd' : 'nosshd', CHECKOUT],
    { stdio: ['ignore', 'pipe', log.fd], env: { ...BASE_ENV } },
  );
  await log.close();
  const exited = waitExit(child);
  const initLog = () => readFile(join(stateDir, 'init.log'), 'utf8').catch(() => '');
  const failed = async (why: string): Promise<never> => {
    child.kill('SIGKILL');
    await exited;
    throw new Error(`lab host ${opts.name}: ${why}\n${await initLog()}`);
  };

  // init.sh prints "NS" once the namespaces exist, then "READY <key>" when sshd listens.
  const it = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const nextLine = () =>
    withTimeout(it.next().then((r) => r.value as string | undefined), INIT_TIMEOUT_MS).catch(() => undefined);
  if ((await nextLine()) !== 'NS') return failed('init did not start');
  const upid = child.pid!;
  const children = await readFile(`/proc/${upid}/task/${upid}/children`, 'utf8').catch(() => '');
  const pid = Number(children.trim().split(' ')[0]);
  if (!pid) return failed('no PID 1 found under unshare');
  const nsLink = (k: string) => readlink(`/proc/${pid}/ns/${k}`);
  const namespaces = { pid: await nsLink('pid'), mnt: await nsLink('mnt'), net: await nsLink('net') };

  // exec() before init's pivot_root would run in the machine's root: hold /etc/hosts updates
  // until READY; on failure the gate rejects only after PID 1 is dead.
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  const readyGate = new Promise<void>((res, rej) => ((readyResolve = res), (readyReject = rej)));
  readyGate.catch(() => {});

  const host = makeHost({
    name: opts.name, pid, address, adminKeyFile: runner.adminKeyFile, stateDir, namespaces, child, exited,
  });

  // Network setup only touches the net namespace, so it runs while init is still mounting.
  const netting = (async () => {
    if (opts.network) {
      const membership = await opts.network.join({
        name: opts.name, address: address!, netPid: pid, extraAddresses: opts.extraAddresses,
        updateHosts: opts.hostsFile === false ? undefined : async (entries) => {
          await readyGate;
          await host.setLabHosts(entries);
        },
      });
      host.onStop(() => membership.leave());
      host.setSwitchLink(opts.network, membership.ifname);
    } else if (opts.extraAddresses?.length) {
      await run(['nsenter', '-t', String(pid), '-n', 'ip', '-batch', '-'], {
        input: opts.extraAddresses.map((a) => `addr add ${checkAddress(a)} dev lo\n`).join(''),
        where: `lab host ${opts.name}`,
      });
    }
  })();
  netting.catch(() => {}); // awaited below; avoid an "unhandled rejection" while init runs

  try {
    const ready = await nextLine();
    if (!ready?.startsWith('READY ')) throw new Error(`init failed before READY\n${await initLog()}`);
    host.hostKey = ready.slice('READY '.length).trim();
    readyResolve();
    await netting;
    await writeFile(host.knownHostsFile, `${[opts.name, address].filter(Boolean).join(',')} ${host.hostKey}\n`);
    await Promise.all([
      services.includes('mariadb') ? host.startMariadb() : undefined,
      services.includes('postgres') ? host.startPostgres() : undefined,
    ]);
  } catch (e) {
    await host.stop().catch(() => {});
    readyReject(new Error('host failed to start'));
    await netting.catch(() => {});
    throw e instanceof Error && !e.message.startsWith('lab host') ? new Error(`lab host ${opts.name}: ${e.message}`) : e;
  }
  return host;
}

interface HostInternals {
  name: string;
  pid: number;
  address?: string;
  adminKeyFile: string;
  stateDir: string;
  namespaces: LabHost['namespaces'];
  child: ChildProcess;
  exited: Promise<unknown>;
}

type LabHostImpl = LabHost & {
  setLabHosts(entries: string[]): Promise<void>;
  onStop(fn: () => Promise<void>): void;
  setSwitchLink(net: LabNetwork, ifname: string): void;
};

function makeHost(h: HostInternals): LabHostImpl {
  const P = String(h.pid);
  const label = `lab host ${h.name}`;
  const stopHooks: (() => Promise<void>)[] = [];
  let switchLink: { net: LabNetwork; ifname: string } | undefined;
  let mariadb: Promise<void> | undefined;
  let postgres: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;

  // Helper processes on the machine that entered the host (exec/spawn/sock): killed by stop().
  const helpers = new Set<ChildProcess>();
  const track = (c: ChildProcess): ChildProcess => {
    helpers.add(c);
    c.once('exit', () => helpers.delete(c));
    return c;
  };

  const nsArgv = (argv: string[], user?: string) => [
    'nsenter', '-t', P, '-m', '-u', '-i', '-n', '-p', '-r', '-w', '--',
    ...(user && user !== 'root' ? ['runuser', '-u', user, '--'] : []),
    ...argv,
  ];
  // runuser sets HOME/USER/LOGNAME/SHELL itself for other users.
  const envFor = (env?: Record<string, string>) => ({ ...BASE_ENV, HOME: '/root', USER: 'root', LOGNAME: 'root', ...env });

  const host: LabHostImpl = {
    name: h.name,
    pid: h.pid,
    hostKey: '',
    address: h.address,
    adminKeyFile: h.adminKeyFile,
    knownHostsFile: join(h.stateDir, 'known_hosts'),
    proxyCommand: `/usr/bin/nsenter -t ${P} -n /usr/bin/socat STDIO TCP:127.0.0.1:22`,
    namespaces: h.namespaces,
    stateDir: h.stateDir,

    sshArgs(user = 'root') {
      return [
        '-F', '/dev/null', '-i', h.adminKeyFile, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
        '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${host.knownHostsFile}`,
        '-o', `ProxyCommand=${host.proxyCommand}`, '-o', 'ConnectTimeout=10', `${user}@${h.name}`,
      ];
    },

    sock(port = 22) {
      return new Promise((resolve, reject) => {
        // socat -d -d reports "starting data transfer loop" once the TCP connection is up.
        const c = track(spawn('nsenter', ['-t', P, '-n', 'socat', '-d', '-d', 'STDIO', `TCP:127.0.0.1:${port}`], {
          stdio: ['pipe', 'pipe', 'pipe'], env: { ...BASE_ENV },
        }));
        let err = '';
        let connected = false;
        c.stderr!.on('data', (b: Buffer) => {
          if (connected) return;
          err += b.toString();
          if (!err.includes('starting data transfer loop')) return;
          connected = true;
          const stream = Duplex.from({ readable: c.stdout!, writable: c.stdin! });
          stream.on('close', () => c.kill('SIGTERM'));
          c.stdin!.on('error', () => {});
          resolve(stream);
        });
        c.on('error', reject);
        c.on('exit', (code) => {
          if (!connected) reject(new Error(`${label}: cannot connect to 127.0.0.1:${port} (socat ${code}): ${err.trim()}`));
        });
      });
    },

    exec(argv, opts = {}) {
      if (stopping) return Promise.reject(new Error(`${label}: exec after stop()`));
      return run(nsArgv(argv, opts.user), {
        input: opts.input, env: envFor(opts.env), okCodes: opts.okCodes, where: label, onSpawn: track,
      });
    },

    spawn(argv, opts = {}) {
      const a = nsArgv(argv, opts.user);
      return track(spawn(a[0], a.slice(1), { env: envFor(opts.env), stdio: opts.stdio ?? ['pipe', 'pipe', 'pipe'] }));
    },

    async writeFile(path, content, opts = {}) {
      const mode = (opts.mode ?? 0o644).toString(8);
      // 'user' alone means user plus the user's login group (chown 'user:').
      const owner = opts.owner ? (opts.owner.includes(':') ? opts.owner : `${opts.owner}:`) : '';
      await host.exec(
        // umask 077: a new file is private until chmod (node's stdin is a socket: no `install /dev/stdin`).
        ['sh', '-c', 'umask 077 && mkdir -p -- "$(dirname -- "$2")" && cat > "$2" && chmod "$1" "$2" && if [ -n "$3" ]; then chown "$3" "$2"; fi', 'sh', mode, path, owner],
        { input: content },
      );
    },

    async readFile(path) {
      return (await host.exec(['cat', '--', path])).stdoutBuffer;
    },

    // Memoised while pending or done; a failed start may be retried.
    startMariadb() {
      mariadb ??= startMariadbIn(host).catch((e) => ((mariadb = undefined), Promise.reject(e)));
      return mariadb;
    },
    startPostgres() {
      postgres ??= startPostgresIn(host).catch((e) => ((postgres = undefined), Promise.reject(e)));
      return postgres;
    },

    async setLabHosts(entries) {
      const base = (await host.readFile('/etc/hosts')).toString().split('# lab network')[0];
      await host.writeFile('/etc/hosts', `${base}# lab network\n${entries.join('\n')}\n`);
    },
    onStop(fn) {
      stopHooks.push(fn);
    },
    setSwitchLink(net, ifname) {
      switchLink = { net, ifname };
    },

    stop() {
      stopping ??= (async () => {
        for (const fn of stopHooks) await fn().catch(() => {});
        // SIGKILL to PID 1 of the pid namespace: the kernel kills everything inside, then
        // unshare (waiting for it) exits; mount and net namespaces die with the last process.
        try {
          process.kill(h.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        await h.exited;
        // nsenter/socat helpers live in the machine's pid namespace; they exit once the host's
        // processes are gone, but an idle sock() would not: end them.
        for (const c of helpers) c.kill('SIGKILL');
        const left: string[] = [];
        const holders = async () => {
          const found: string[] = [];
          for (const k of ['pid', 'mnt', 'net'] as const) {
            const pids = await processesInNamespace(k, h.namespaces[k]);
            if (pids.length) found.push(`${k} namespace still used by ${pids.join(',')}`);
          }
          return found;
        };
        await waitFor('host namespaces to be released', async () => (await holders()).length === 0, 3_000, 10)
          .catch(async () => left.push(...(await holders())));
        const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
        if (mountinfo.includes(h.stateDir)) left.push(`a mount under ${h.stateDir} on the machine`);
        if (switchLink) {
          const { net, ifname } = switchLink;
          // Network namespaces are destroyed asynchronously by the kernel: give it a moment.
          await waitFor(`${ifname} to vanish`, async () => {
            const r = await run(['nsenter', '-t', String(net.pid), '-n', 'ip', 'link', 'show', ifname], {
              okCodes: [0, 1, 255],
            }).catch(() => ({ code: 1 }));
            return r.code !== 0;
          }, 5_000, 10).catch(() => left.push(`link ${ifname} still on the lab switch`));
        }
        if (left.length) throw new Error(`${label}: teardown left ${left.join('; ')}`);
        await rm(h.stateDir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
  return host;
}
