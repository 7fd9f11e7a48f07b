// Per-runner state under /tmp/pullvault-lab/<runner pid>/: the admin key and one dir per host.
// Each test process (vitest worker) has its own dir, so names never collide across processes;
// dirs left by a runner that died (SIGKILL, crash) are removed the next time any runner starts.
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './proc.ts';

export const LAB_ROOT = '/tmp/pullvault-lab';

export interface RunnerState {
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

/** Remove runner dirs whose runner is gone. Hosts of a dead runner died with it (pdeathsig). */
export async function cleanStaleRunners(): Promise<string[]> {
  const removed: string[] = [];
  let entries: string[] = [];
  try {
    entries = await readdir(LAB_ROOT);
  } catch {
    return removed;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const dir = join(LAB_ROOT, e);
    const recorded = await readFile(join(dir, 'runner'), 'utf8').catch(() => '');
    const live = await processStartTime(Number(e));
    if (live !== undefined && live === recorded.trim()) continue;
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

async function initRunner(): Promise<RunnerState> {
  await cleanStaleRunners();
  const dir = join(LAB_ROOT, String(process.pid));
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, 'runner'), `${await processStartTime(process.pid)}\n`);
  const adminKeyFile = join(dir, 'admin_key');
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'lab-admin', '-f', adminKeyFile]);
  const adminPublicKey = (await readFile(`${adminKeyFile}.pub`, 'utf8')).trim();
  return { dir, adminKeyFile, adminPublicKey };
}

/** This process's lab state (created once, on first use). */
export function runnerState(): Promise<RunnerState> {
  runner ??= initRunner();
  return runner;
}

/** A fresh, unique state dir for one host or network of this runner. */
export async function newStateDir(kind: string, name: string): Promise<string> {
  const { dir } = await runnerState();
  const d = join(dir, `${kind}-${name}-${++seq}`);
  await mkdir(d, { mode: 0o700 });
  return d;
}
