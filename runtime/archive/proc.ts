// Child processes for the archive pipelines: argv arrays only (never a shell), stderr kept
// (bounded) for error messages, exit awaited as a promise.
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { spawnChild } from '../children.ts';

export interface Proc {
  child: ChildProcess;
  /** resolves when the process has exited; rejects on spawn errors or (unless allowed) non-zero exit */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  stderr(): string;
}

export class ProcError extends Error {
  constructor(
    readonly argv: string[],
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stderrText: string,
  ) {
    super(`${argv[0]} ${code !== null ? `exited ${code}` : `killed by ${signal}`}${stderrText.trim() ? `: ${stderrText.trim().slice(-1500)}` : ''}`);
  }
}

export function start(argv: string[], opts: SpawnOptions & { okCodes?: number[] } = {}): Proc {
  const { okCodes = [0], ...spawnOpts } = opts;
  const child = spawnChild(argv, { stdio: ['pipe', 'pipe', 'pipe'], ...spawnOpts });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => {
    err = (err + b.toString('utf8')).slice(-8000);
  });
  // a consumer that went away must not crash the process with EPIPE
  child.stdin?.on('error', () => {});
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((res, rej) => {
    child.on('error', rej);
    child.on('close', (code, signal) => {
      if (code !== null && okCodes.includes(code)) res({ code, signal, stderr: err });
      else rej(new ProcError(argv, code, signal, err));
    });
  });
  done.catch(() => {}); // observed by whoever awaits it
  return { child, done, stderr: () => err };
}

/** Runs to completion, returns stdout. */
export async function run(argv: string[], opts: SpawnOptions & { input?: Buffer | string; okCodes?: number[] } = {}): Promise<Buffer> {
  const { input, ...rest } = opts;
  const p = start(argv, rest);
  const out: Buffer[] = [];
  p.child.stdout?.on('data', (b: Buffer) => out.push(b));
  if (p.child.stdin) {
    // a program that exits without reading its input is judged by its exit code, not by EPIPE
    p.child.stdin.on('error', () => undefined);
    p.child.stdin.end(input ?? '');
  }
  await p.done;
  return Buffer.concat(out);
}
