// Every process pullvault starts, on either side, goes through start() or run(): argv arrays
// only (never a shell string), stderr kept (its tail, bounded) for messages, allowed exit codes,
// a timeout that kills, stdin input, and one registry of children for signal handlers. The
// spawn function is injectable (createProc({ spawn })), defaults are set once per caller
// (createProc({ dieWithParent: true }) for the runtime), zx-style.
import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import { constants } from 'node:os';
import { deathBoundArgv, track } from './children.ts';
import { CommandError } from './error.ts';

export type SpawnFn = (cmd: string, args: string[], opts: SpawnOptions) => ChildProcess;

export interface ProcOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** start(): the child's stdio (default all pipes) */
  stdio?: StdioOptions;
  /** exit codes that are not failures (default [0]); a signal counts as 128 + its number */
  okCodes?: number[];
  /** never reject on the exit code: the caller judges `code` itself */
  nothrow?: boolean;
  /** SIGTERM after this many milliseconds (SIGKILL 2 s later): a hang fails instead */
  timeoutMs?: number;
  /** copy the child's stderr to ours as it comes (long steps such as apt-get) */
  liveStderr?: boolean;
  /** each stderr chunk as it comes */
  onStderr?: (s: string) => void;
  /** called with the child right after it is spawned */
  onSpawn?: (child: ChildProcess) => void;
  /** for messages: where the command runs (a host's name) */
  where?: string;
  /** the argv holds a secret: error messages show only argv[0] */
  sensitive?: boolean;
  /** the program's own exit code meanings, for messages */
  meanings?: Record<number, string>;
  /** start the child through setpriv --pdeathsig KILL: it dies with us even on SIGKILL */
  dieWithParent?: boolean;
  /** bytes of stderr kept (the tail); default 256 KiB */
  stderrCap?: number;
}

export interface RunOptions extends Omit<ProcOptions, 'stdio'> {
  /** bytes written to the child's stdin, which is then closed (default: no stdin) */
  input?: string | Buffer;
  /** file descriptor for the child's stdout (e.g. to decompress into a file); default: collected */
  stdoutFd?: number;
  /** each stdout chunk as it comes (the console of a long step), besides collecting it */
  onStdout?: (s: string) => void;
}

export interface Finished {
  /** exit code; 128 + n when killed by signal n, as a shell reports it */
  code: number;
  signal: NodeJS.Signals | null;
  stderr: string;
  timedOut: boolean;
}

export interface RunResult extends Finished {
  stdout: string;
  stdoutBuffer: Buffer;
}

export interface Proc {
  child: ChildProcess;
  /** resolves when the process has exited; rejects with CommandError on a spawn error, a timeout or (unless allowed) an exit code */
  done: Promise<Finished>;
  /** stderr so far (its tail) */
  stderr(): string;
}

export interface ProcDefaults extends ProcOptions {
  spawn?: SpawnFn;
}

const KILL_GRACE_MS = 2000;
const PIPE_GRACE_MS = 500;

export function createProc(defaults: ProcDefaults = {}) {
  const { spawn: spawnFn = nodeSpawn as SpawnFn, ...base } = defaults;

  function start(argv: string[], options: ProcOptions = {}): Proc {
    const o = { ...base, ...options };
    if (!argv[0]) throw new Error('start: empty argv');
    const [cmd, ...args] = o.dieWithParent ? deathBoundArgv(argv) : argv;
    const child = track(spawnFn(cmd, args, { cwd: o.cwd, env: o.env, stdio: o.stdio ?? ['pipe', 'pipe', 'pipe'] }));
    o.onSpawn?.(child);
    const cap = o.stderrCap ?? 256 * 1024;
    let err = '';
    child.stderr?.on('data', (b: Buffer) => {
      const s = b.toString('utf8');
      if (o.liveStderr) process.stderr.write(b);
      o.onStderr?.(s);
      err = err.length + s.length > cap ? (err + s).slice(-cap) : err + s;
    });
    // a child that exits without reading its input is judged by its exit code, not by EPIPE
    child.stdin?.on('error', () => {});
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    let killer: NodeJS.Timeout | undefined;
    const releasePipes = () =>
      setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        child.stdin?.destroy();
      }, PIPE_GRACE_MS).unref();
    if (o.timeoutMs) {
      timer = setTimeout(() => {
        timedOut = true;
        // exited already, only its pipes are held: let them go too
        if (child.exitCode !== null || child.signalCode !== null) releasePipes();
        child.kill('SIGTERM');
        killer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
        killer.unref();
      }, o.timeoutMs);
      timer.unref();
    }
    const okCodes = o.okCodes ?? [0];
    const details = { argv, where: o.where, sensitive: o.sensitive, meanings: o.meanings };
    const done = new Promise<Finished>((resolve, reject) => {
      let settled = false;
      const settle = () => {
        settled = true;
        clearTimeout(timer);
        clearTimeout(killer);
      };
      child.once('error', (e) => {
        if (settled) return;
        settle();
        reject(new CommandError({ ...details, code: null, stderr: err, startError: e }));
      });
      // 'close' waits for the pipes; after a timeout, a grandchild that inherited them (a shell
      // script's sleep, a forking MTA) must not hold the caller past the time limit
      child.once('exit', () => {
        if (timedOut) releasePipes();
      });
      child.once('close', (exit, signal) => {
        if (settled) return;
        settle();
        const code = exit ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
        const f: Finished = { code, signal, stderr: err, timedOut };
        if (o.nothrow || (!timedOut && okCodes.includes(code))) return resolve(f);
        reject(new CommandError({ ...details, code, signal, stderr: err, timedOutMs: timedOut ? o.timeoutMs : undefined }));
      });
    });
    done.catch(() => {}); // observed by whoever awaits it
    return { child, done, stderr: () => err };
  }

  /** Runs to completion with stdout collected (unless stdoutFd), stdin fed from `input`. */
  async function run(argv: string[], options: RunOptions = {}): Promise<RunResult> {
    const { input, stdoutFd, onStdout, ...rest } = options;
    const p = start(argv, { ...rest, stdio: [input !== undefined ? 'pipe' : 'ignore', stdoutFd ?? 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    p.child.stdout?.on('data', (b: Buffer) => {
      out.push(b);
      onStdout?.(b.toString('utf8'));
    });
    if (input !== undefined) p.child.stdin?.end(input);
    const f = await p.done;
    const stdoutBuffer = Buffer.concat(out);
    return { ...f, stdout: stdoutBuffer.toString('utf8'), stdoutBuffer };
  }

  return { start, run };
}

export const { start, run } = createProc();
