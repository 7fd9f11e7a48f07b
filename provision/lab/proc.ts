// Run local processes from argv arrays (never shell strings) and collect their output.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { constants } from 'node:os';

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
  stdoutBuffer: Buffer;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: Record<string, string>;
  okCodes?: number[];
  /** Prefix for error messages, e.g. the lab host's name. */
  label?: string;
  /** Called with the child right after spawning (e.g. to kill it on teardown). */
  onSpawn?: (child: ChildProcess) => void;
}

export class RunError extends Error {
  constructor(
    message: string,
    readonly argv: string[],
    readonly result: RunResult,
  ) {
    super(message);
    this.name = 'RunError';
  }
}

/** A minimal, predictable environment: nothing from the test runner leaks into lab hosts. */
export const BASE_ENV: Record<string, string> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
};

export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const okCodes = opts.okCodes ?? [0];
  return new Promise((resolve, reject) => {
    const so: SpawnOptions = { env: opts.env ?? { ...BASE_ENV }, stdio: ['pipe', 'pipe', 'pipe'] };
    const child = spawn(argv[0], argv.slice(1), so);
    opts.onSpawn?.(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    // EPIPE when the command exits without reading its input is not our error; the exit code tells.
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');
    child.on('close', (code, signal) => {
      const stdoutBuffer = Buffer.concat(out);
      const result: RunResult = {
        stdout: stdoutBuffer.toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        code: code ?? 128 + signalNumber(signal),
        stdoutBuffer,
      };
      if (okCodes.includes(result.code)) return resolve(result);
      const what = signal ? `killed by ${signal}` : `exited ${result.code}`;
      const prefix = opts.label ? `${opts.label}: ` : '';
      reject(
        new RunError(`${prefix}${JSON.stringify(argv)} ${what}: ${result.stderr.trim()}`, argv, result),
      );
    });
  });
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? (constants.signals[signal] ?? 0) : 0;
}
