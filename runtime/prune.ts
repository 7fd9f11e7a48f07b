// Local retention applied: plan with retention.ts, then delete (or, dry-run, only report).
// makeRoom applies it early, before a pull, when the disk is short of what the pull needs.
import { readdir, readlink, rename, rm } from 'node:fs/promises';
import type { RuntimeConfig } from '../contract/runtime-config.ts';
import { vaultLayout } from '../contract/disk-layout.ts';
import { stderrTail as tail } from '../lib/proc/index.ts';
import { pull } from './proc.ts';
import { pinnedSnapshots } from './offsite-pins.ts';
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
  const pins = await pinnedSnapshots(config);
  for (const server of config.inventory.servers) {
    if (!opts.dryRun) await removeUnfinishedDeletes(L.serverDir(server.name), (s) => opts.log(`${server.name}: ${s}`));
    const snaps = await listSnapshots(config.paths.dataDir, server.name);
    const decisions = planRetention(
      snaps.map((s) => ({ id: s.id, partial: s.info ? s.info.partial : true })),
      config.inventory.retention,
      opts.now,
    ).map((d) => (d.keep || !pins.has(`${server.name}/${d.id}`) ? d : { ...d, keep: true, reason: pins.get(`${server.name}/${d.id}`)! }));
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
  /** free space gained by deleting it, measured */
  wonBytes: number;
  freeBytes: number;
}

export interface RoomResult {
  ok: boolean;
  freeBytes: number;
  pruned: RoomStep[];
  /** when refused before deleting anything: what deleting every candidate would have won */
  wouldWinBytes?: number;
}

/**
 * The space deleting candidates in order frees, from their entries (type, inode, link count,
 * allocated bytes): a file's blocks come free when the last of its links goes, so a file
 * hard-linked into a snapshot that stays frees nothing; directories are never shared between
 * snapshots. freed[i] is the total after the first i + 1 candidates.
 */
export class FreedTally {
  readonly freed: number[] = [];
  private total = 0;
  private linksLeft = new Map<string, number>();

  entry(type: string, ino: string, links: number, bytes: number): void {
    if (type === 'd' || links <= 1) {
      this.total += bytes;
      return;
    }
    const left = (this.linksLeft.get(ino) ?? links) - 1;
    if (left > 0) this.linksLeft.set(ino, left);
    else {
      this.linksLeft.delete(ino);
      this.total += bytes;
    }
  }

  endCandidate(): void {
    this.freed.push(this.total);
  }
}

/** What each prefix of `dirs` would free if deleted (find walks them; nothing is changed). */
export async function freedByDeleting(dirs: string[]): Promise<number[]> {
  const tally = new FreedTally();
  for (const dir of dirs) {
    const find = pull.start(['find', dir, '-printf', '%y %i %n %b\\n']);
    let rest = '';
    find.child.stdout!.setEncoding('latin1').on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop()!;
      for (const l of lines) {
        const [type, ino, links, blocks] = l.split(' ');
        tally.entry(type, ino, Number(links), Number(blocks) * 512);
      }
    });
    const r = await find.done;
    if (r.code !== 0) throw new Error(`sizing ${dir}: find exit ${r.code}: ${tail(r.stderr, 2)}`);
    tally.endCandidate();
  }
  return tally.freed;
}

/**
 * Delete candidates in order until `requiredBytes` are free, measuring after each delete. What
 * they would free is counted first (hard links make it unknowable from sizes): when all of them
 * together cannot make room, nothing is deleted — the rules keep them while no new snapshot
 * exists, and no new snapshot will. Deleting stops as soon as there is room.
 */
export async function makeRoom(
  candidates: RoomCandidate[],
  requiredBytes: number,
  disk: { free: () => Promise<number>; freedBy: (c: RoomCandidate[]) => Promise<number[]>; remove: (c: RoomCandidate) => Promise<void> },
  onPruned: (step: RoomStep) => void,
): Promise<RoomResult> {
  let free = await disk.free();
  const pruned: RoomStep[] = [];
  if (free >= requiredBytes) return { ok: true, freeBytes: free, pruned };
  const freed = candidates.length ? await disk.freedBy(candidates) : [];
  const wouldWinBytes = freed[freed.length - 1] ?? 0;
  if (free + wouldWinBytes < requiredBytes) return { ok: false, freeBytes: free, pruned, wouldWinBytes };
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
