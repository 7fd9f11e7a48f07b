// Local retention applied: plan with retention.ts, then delete (or, dry-run, only report).
// makeRoom applies it early, before a pull, when the disk is short of what the pull needs.
import { readdir, readlink, rename, rm } from 'node:fs/promises';
import type { RuntimeConfig } from './config.ts';
import { vaultLayout } from './manifest-format.ts';
import { listSnapshots } from './pull/snapshot.ts';
import { planRetention, type RetentionDecision } from './retention.ts';

export interface PruneReport {
  server: string;
  decisions: RetentionDecision[];
  deleted: string[];
}

/** Delete a snapshot dir, renamed first so a crash mid-delete never leaves a half snapshot under its id. */
export async function deleteSnapshotDir(dir: string): Promise<void> {
  const doomed = `${dir}.deleting`;
  await rename(dir, doomed);
  await rm(doomed, { recursive: true, force: true });
}

/** What a crash in deleteSnapshotDir left: nothing lists it, so nothing else would ever free it. */
export async function removeUnfinishedDeletes(serverDir: string, log: (s: string) => void): Promise<void> {
  for (const n of await readdir(serverDir).catch(() => [] as string[])) {
    if (!n.endsWith('.deleting')) continue;
    await rm(`${serverDir}/${n}`, { recursive: true, force: true });
    log(`removed ${n} (an interrupted delete)`);
  }
}

export async function prune(config: RuntimeConfig, opts: { now: Date; dryRun: boolean; log: (s: string) => void }): Promise<PruneReport[]> {
  const L = vaultLayout(config.paths.dataDir);
  const reports: PruneReport[] = [];
  for (const server of config.inventory.servers) {
    if (!opts.dryRun) await removeUnfinishedDeletes(L.serverDir(server.name), (s) => opts.log(`${server.name}: ${s}`));
    const snaps = await listSnapshots(config.paths.dataDir, server.name);
    const decisions = planRetention(
      snaps.map((s) => ({ id: s.id, partial: s.info ? s.info.partial : true })),
      config.inventory.retention,
      opts.now,
    );
    const latest = await readlink(L.latest(server.name)).catch(() => undefined);
    const deleted: string[] = [];
    for (const d of decisions) {
      if (d.keep) continue;
      if (d.id === latest) continue; // belt and braces: planRetention keeps the newest already
      if (opts.dryRun) {
        opts.log(`would delete ${server.name}/${d.id} (${d.reason})`);
        continue;
      }
      await deleteSnapshotDir(L.snapshotDir(server.name, d.id));
      deleted.push(d.id);
      opts.log(`deleted ${server.name}/${d.id} (${d.reason})`);
    }
    reports.push({ server: server.name, decisions, deleted });
  }
  return reports;
}

/** Something that may be deleted to make room: a snapshot id or an interrupted pull's dir name. */
export interface RoomCandidate {
  name: string;
  reason: string;
}

export interface RoomStep extends RoomCandidate {
  /** free space gained by deleting it (measured, not estimated: hard links make it unknowable before) */
  wonBytes: number;
  freeBytes: number;
}

export interface RoomResult {
  ok: boolean;
  freeBytes: number;
  pruned: RoomStep[];
}

/**
 * Delete candidates in order until `requiredBytes` are free, measuring after each delete; stops
 * as soon as there is room (a pull that then fails has lost no more than it had to).
 */
export async function makeRoom(
  candidates: RoomCandidate[],
  requiredBytes: number,
  disk: { free: () => Promise<number>; remove: (c: RoomCandidate) => Promise<void> },
  onPruned: (step: RoomStep) => void,
): Promise<RoomResult> {
  let free = await disk.free();
  const pruned: RoomStep[] = [];
  for (const c of candidates) {
    if (free >= requiredBytes) break;
    await disk.remove(c);
    const after = await disk.free();
    const step = { ...c, wonBytes: Math.max(0, after - free), freeBytes: after };
    pruned.push(step);
    onPruned(step);
    free = after;
  }
  return { ok: free >= requiredBytes, freeBytes: free, pruned };
}
