// Spawning external programs from argv arrays (never a shell), with stderr kept for messages.
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { spawnChild } from '../children.ts';

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

export function finished(child: ChildProcess, opts: { collectStdout?: boolean; onStderr?: (s: string) => void } = {}): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    let err = '';
    if (opts.collectStdout) child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => {
      const s = b.toString('utf8');
      opts.onStderr?.(s);
      if (err.length < STDERR_CAP) err += s;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({ code: code ?? 128, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

export function start(argv: string[], stdio: StdioOptions = ['ignore', 'pipe', 'pipe']): ChildProcess {
  return spawnChild(argv, { stdio, env: CHILD_ENV() });
}

export function tail(s: string, lines = 8): string {
  return s.trim().split('\n').slice(-lines).join('\n');
}
