// Inspect the machine for lab leftovers: processes in lab namespaces, mounts, network links.
import { readdir, readFile, readlink } from 'node:fs/promises';
import { run } from './env.ts';

export type NsKind = 'net' | 'mnt' | 'pid' | 'uts' | 'ipc';

/** pids of processes (as seen from here) whose namespace of `kind` is `nsLink` (e.g. 'net:[4026532177]'). */
export async function processesInNamespace(kind: NsKind, nsLink: string): Promise<number[]> {
  const pids: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const link = await readlink(`/proc/${e}/ns/${kind}`).catch(() => undefined);
    if (link === nsLink) pids.push(Number(e));
  }
  return pids;
}

export interface MachineSnapshot {
  /** Interface names in the machine's network namespace. */
  links: string[];
  /** Mount points in the machine's mount namespace (from /proc/self/mountinfo). */
  mounts: string[];
  /** Processes whose command line mentions the lab (init.sh, lab unshare, sleep of a switch). */
  labProcesses: string[];
}

export async function snapshotMachine(): Promise<MachineSnapshot> {
  const { stdout } = await run(['ip', '-o', 'link', 'show']);
  const links = stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':')[1].trim().split('@')[0])
    .sort();
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4])
    .sort();
  const labProcesses: string[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const cmd = (await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ');
    if (cmd.includes('pullvault-lab') || cmd.includes('lab/init.sh')) labProcesses.push(`${e}: ${cmd}`);
  }
  return { links, mounts, labProcesses };
}
