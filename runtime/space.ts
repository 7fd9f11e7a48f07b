// One server's pull with the disk's room checked around it: before, if free space is short of
// what its last pull wrote (× margin, at least the configured floor), make room by the retention
// rules and say so, or refuse this server with the numbers (the run goes on with the others: a
// big server that no longer fits must not stop the small ones being backed up); after, record
// what this pull wrote. A pull that runs out of space leaves no .partial behind — it would hold
// the space the next run needs — and the last good snapshot untouched (`latest` moves only when
// a pull completes).
import { readdir, rm } from 'node:fs/promises';
import { minFreeMiB } from '../contract/inventory-defaults.ts';
import type { RetentionSpec, ServerSpec } from '../contract/inventory-schema.ts';
import type { RuntimeConfig } from '../contract/runtime-config.ts';
import { vaultLayout } from '../contract/disk-layout.ts';
import { freeBytes, requiredSpace, spaceRefusal } from './preflight.ts';
import { deleteSnapshotDir, freedByDeleting, makeRoom, removeUnfinishedDeletes, type RoomCandidate, type RoomResult } from './prune.ts';
import { pinnedSnapshots } from './offsite-pins.ts';
import { listSnapshots, previousSnapshot, pullServer, type PullOptions, type PullResult } from './pull/snapshot.ts';
import { readPullNeeds, recordPullNeed, type PullNeed } from './pull-needs.ts';
import { planRoomFor, type SnapshotRef } from './retention.ts';
import { formatBytes } from './status.ts';

export interface SpaceAwarePullOptions extends PullOptions {
  warn: (line: string) => void;
  now: Date;
  /** --no-prune: delete nothing, refuse when short */
  noPrune?: boolean;
}

/**
 * Pure: what may go to make room for `server`'s pull `id`, in the order to delete: interrupted copies
 * first (they only save transfer time), then what the retention rules drop once `id` exists, but
 * never a pinned snapshot — one an upload reads (maybe another run's: the pull lock is let go
 * before uploading) or the base of the next incremental, the same pins local retention keeps.
 */
export function roomCandidates(partials: string[], snaps: SnapshotRef[], rules: RetentionSpec, id: string, now: Date, server: string, pins: Map<string, string>): RoomCandidate[] {
  return [
    ...partials.map((name) => ({ name, reason: 'an interrupted pull' })),
    ...planRoomFor(snaps, rules, id, now)
      .filter((d) => !pins.has(`${server}/${d.id}`))
      .map((d) => ({ name: d.id, reason: d.reason })),
  ];
}

/** rsync's "No space left on device (28)", or a write of ours failing with ENOSPC. */
export const isNoSpace = (error: string | undefined): boolean => /No space left on device|ENOSPC/i.test(error ?? '');

export async function pullWithRoom(config: RuntimeConfig, server: ServerSpec, opts: SpaceAwarePullOptions): Promise<PullResult> {
  // like pullServer, never throws: one server's trouble is that server's failure, the run goes on
  return pullWithRoomOrThrow(config, server, opts).catch((e) => ({ server: server.name, ok: false, error: `space check: ${(e as Error).message}` }));
}

async function pullWithRoomOrThrow(config: RuntimeConfig, server: ServerSpec, opts: SpaceAwarePullOptions): Promise<PullResult> {
  const { dataDir } = config.paths;
  const L = vaultLayout(dataDir);
  const serverDir = L.serverDir(server.name);
  const say = (s: string) => opts.warn(`${server.name}: space: ${s}`);
  const prev = await previousSnapshot(dataDir, server.name);
  const required = requiredSpace((await readPullNeeds(dataDir)).servers[server.name], prev !== undefined, minFreeMiB(config.inventory.pi));

  const free = await freeBytes(dataDir);
  if (free < required.bytes) {
    say(`${formatBytes(free)} free, ${formatBytes(required.bytes)} required (${required.why})${opts.noPrune ? '' : ': pruning by the retention rules'}`);
    let room: RoomResult = { ok: false, freeBytes: free, pruned: [] };
    let candidates: RoomCandidate[] = [];
    if (!opts.noPrune) {
      await removeUnfinishedDeletes(serverDir, say);
      const snaps = await listSnapshots(dataDir, server.name);
      const partials = (await readdir(serverDir).catch(() => [] as string[])).filter((n) => n.endsWith('.partial')).sort();
      candidates = roomCandidates(partials, snaps.map((s) => ({ id: s.id, partial: s.info ? s.info.partial : true })), config.inventory.retention, opts.id, opts.now, server.name, await pinnedSnapshots(config));
      const candidateDir = (c: RoomCandidate) => `${serverDir}/${c.name}`;
      room = await makeRoom(
        candidates,
        required.bytes,
        {
          free: () => freeBytes(dataDir),
          freedBy: (cs) => freedByDeleting(cs.map(candidateDir)),
          remove: (c) => (c.name.endsWith('.partial') ? rm(candidateDir(c), { recursive: true, force: true }) : deleteSnapshotDir(candidateDir(c))),
        },
        (p) => say(`pruned ${p.name} (${p.reason}): won ${formatBytes(p.wonBytes)}, ${formatBytes(p.freeBytes)} free of ${formatBytes(required.bytes)} required`),
      );
    }
    if (!room.ok) {
      const kept = (await listSnapshots(dataDir, server.name)).map((s) => s.id);
      return { server: server.name, ok: false, error: spaceRefusal({ server: server.name, dataDir, required, room, candidates: candidates.map((c) => c.name), pruneSkipped: opts.noPrune === true, kept }) };
    }
  }

  const before = await freeBytes(dataDir);
  const r = await pullServer(config, server, opts);
  const linked = prev !== undefined;
  const at = new Date().toISOString();
  let need: PullNeed | undefined;
  if (isNoSpace(r.error)) {
    // rsync drops the file it was writing, so the drop afterwards says little: the pull needed
    // more than all that was free when it started (a dump that ran out still leaves a snapshot, flagged partial)
    need = { bytes: before, at, linked, lowerBound: true, ...(r.snapshot ? { snapshot: r.snapshot.id } : {}) };
    if (!r.snapshot) {
      await rm(L.partialDir(server.name, opts.id), { recursive: true, force: true });
      r.error += ` — out of space: needed more than the ${formatBytes(before)} free; the partial copy was removed, ${prev ? `snapshot ${prev.id} is intact` : 'no earlier snapshot'}; the next run makes room for more`;
    }
  } else if (r.snapshot) need = { bytes: Math.max(0, before - (await freeBytes(dataDir))), at, snapshot: r.snapshot.id, linked };
  if (need) await recordPullNeed(dataDir, server.name, need).catch((e) => opts.warn(`${server.name}: warning: recording the pull's size: ${(e as Error).message}`));
  return r;
}

/**
 * Where an upload stages its delta patches (offsite/deltas.ts), on the backup disk beside the
 * snapshots, and what the staging must leave free there: the floor a pull keeps too. A patch
 * that does not fit goes whole (the archive's delta index says so); the folder is emptied before
 * and after each upload, so a killed run leaves nothing that grows.
 */
export function offsiteStaging(config: RuntimeConfig, server: string): { stagingDir: string; keepFreeBytes: number } {
  const pi = config.inventory.pi as RuntimeConfig['inventory']['pi'] | undefined;
  return { stagingDir: `${vaultLayout(config.paths.dataDir).root}/offsite-staging/${server}`, keepFreeBytes: (pi?.dataDisk ? minFreeMiB(pi) : 1024) * 1048576 };
}
