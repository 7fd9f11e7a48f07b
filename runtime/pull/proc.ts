// Spawning external programs from argv arrays (never a shell), with stderr kept for messages.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';

export interface Finished {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

const STDERR_CAP = 256 * 1024;

export const CHILD_ENV = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
  HOME: process.env.HOME ?? '/root',
});

/** Every child we start, so a SIGTERM/SIGINT to the runtime stops them too. */
export const children = new Set<ChildProcess>();

export function finished(child: ChildProcess, opts: { collectStdout?: boolean; onStderr?: (s: string) => void } = {}): Promise<Finished> {
  children.add(child);
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    let err = '';
    if (opts.collectStdout) child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => {
      const s = b.toString('utf8');
      opts.onStderr?.(s);
      if (err.length < STDERR_CAP) err += s;
    });
    child.on('error', (e) => {
      children.delete(child);
      reject(e);
    });
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code: code ?? 128, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

export function start(argv: string[], stdio: StdioOptions = ['ignore', 'pipe', 'pipe']): ChildProcess {
  return spawn(argv[0], argv.slice(1), { stdio, env: CHILD_ENV() });
}

export function tail(s: string, lines = 8): string {
  return s.trim().split('\n').slice(-lines).join('\n');
}
