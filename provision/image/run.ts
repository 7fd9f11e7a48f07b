// The one place provision-pi starts processes: argv arrays only (never a shell string built by
// concatenation), stdout/stderr captured, and an error that names the command, its exit code and
// the tail of its stderr. Secrets are passed through files or stdin, never through argv, so the
// printed command line is safe to show.
import { spawn, type SpawnOptions } from 'node:child_process';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** bytes written to the child's stdin (then closed) */
  input?: string | Buffer;
  /** file descriptor to use as the child's stdout (e.g. to decompress into a file) */
  stdoutFd?: number;
  /** exit codes that are not failures */
  okCodes?: number[];
  /** keep stdout as a Buffer (binary output) */
  binary?: boolean;
  /** print the child's stderr live (long steps such as apt-get) */
  liveStderr?: boolean;
  /** kill the child (SIGTERM) after this many milliseconds: a run that hangs fails instead */
  timeoutMs?: number;
  /** called with each chunk of the child's stdout as it arrives (progress of a long step) */
  onStdout?: (chunk: string) => void;
  /** called with the child's pid once it is started */
  onSpawn?: (pid: number) => void;
}

export interface RunResult {
  code: number;
  stdout: string;
  stdoutBuf: Buffer;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly code: number | null,
    readonly stderr: string,
    readonly signal?: string | null,
  ) {
    const tail = stderr.trim().split('\n').slice(-15).join('\n');
    super(
      `command failed: ${argv.map(showArg).join(' ')}\n  ${signal ? `killed by ${signal}` : `exit code ${code}`}${tail ? `\n  stderr:\n    ${tail.replace(/\n/g, '\n    ')}` : ''}`,
    );
    this.name = 'CommandError';
  }
}

/** Quote an argument for display only (never executed through a shell). */
export function showArg(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('run: empty argv');
  return new Promise((resolve, reject) => {
    const so: SpawnOptions = {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input !== undefined ? 'pipe' : 'ignore', opts.stdoutFd ?? 'pipe', 'pipe'],
      ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
    };
    const child = spawn(cmd, args, so);
    if (opts.onSpawn && child.pid !== undefined) opts.onSpawn(child.pid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => {
      out.push(b);
      opts.onStdout?.(b.toString('utf8'));
    });
    child.stderr?.on('data', (b: Buffer) => {
      err.push(b);
      if (opts.liveStderr) process.stderr.write(b);
    });
    child.on('error', (e) => reject(new CommandError(argv, null, `${(e as Error).message}`)));
    child.on('close', (code, signal) => {
      const stdoutBuf = Buffer.concat(out);
      const stderr = Buffer.concat(err).toString('utf8');
      const c = code ?? -1;
      if (signal || !(opts.okCodes ?? [0]).includes(c)) return reject(new CommandError(argv, code, stderr, signal));
      resolve({ code: c, stdout: opts.binary ? '' : stdoutBuf.toString('utf8'), stdoutBuf, stderr });
    });
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => {});
      child.stdin?.end(opts.input);
    }
  });
}
