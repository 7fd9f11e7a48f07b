// Lab state on the machine: /tmp/pullvault-lab/<runner pid>/<instance>/ holding the admin key and
// one dir per host or network. One <instance> per loaded copy of this module (a vitest worker may
// load it more than once, or in several threads), so nothing is shared or collides across test
// files or processes. A <runner pid> dir whose process is gone (SIGKILL, crash) is removed the
// next time any runner starts; an instance removes its own dir when its process exits normally.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { run } from './env.ts';

export const LAB_ROOT = '/tmp/pullvault-lab';

export interface RunnerState {
  /** /tmp/pullvault-lab/<pid> */
  runnerDir: string;
  /** /tmp/pullvault-lab/<pid>/<instance> */
  dir: string;
  adminKeyFile: string;
  adminPublicKey: string;
}

let runner: Promise<RunnerState> | undefined;
let seq = 0;

/** Start time of a process (clock ticks since boot), to tell a live runner from a reused pid. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Remove runner dirs whose runner is gone (its hosts died with it: pdeathsig). Returns them. */
export async function cleanStaleRunners(): Promise<string[]> {
  const removed: string[] = [];
  const entries = await readdir(LAB_ROOT).catch(() => [] as string[]);
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const dir = join(LAB_ROOT, e);
    const recorded = await readFile(join(dir, 'runner'), 'utf8').catch(() => undefined);
    const live = await processStartTime(Number(e));
    // A live pid without a 'runner' file may be a runner still creating its dir: leave it.
    if (live !== undefined && (recorded === undefined || live === recorded.trim())) continue;
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

async function initRunner(): Promise<RunnerState> {
  await cleanStaleRunners();
  const runnerDir = join(LAB_ROOT, String(process.pid));
  await mkdir(runnerDir, { recursive: true, mode: 0o700 });
  await writeFile(join(runnerDir, 'runner'), `${await processStartTime(process.pid)}\n`);
  const dir = join(runnerDir, `${threadId}-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { mode: 0o700 });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const adminKeyFile = join(dir, 'admin_key');
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'lab-admin', '-f', adminKeyFile]);
  const adminPublicKey = (await readFile(`${adminKeyFile}.pub`, 'utf8')).trim();
  return { runnerDir, dir, adminKeyFile, adminPublicKey };
}

/** This module instance's lab state (created once, on first use). */
export function runnerState(): Promise<RunnerState> {
  runner ??= initRunner();
  return runner;
}

/** A fresh, unique state dir for one host or network. */
export async function newStateDir(kind: string, name: string): Promise<string> {
  const { dir } = await runnerState();
  const d = join(dir, `${kind}-${name}-${++seq}`);
  await mkdir(d, { mode: 0o700 });
  return d;
}
