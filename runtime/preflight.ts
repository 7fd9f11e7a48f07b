// Pre-flight: is dataDir the configured, unlocked, mounted backup disk, and is there room for
// each server's pull? Facts are gathered read-only (gatherDiskFacts, freeBytes); the verdicts are
// pure (judgeDisk, requiredSpace, spaceRefusal), so a refusal happens before anything is written
// and the SD card is never filled. Free space is judged per server, before its pull, against what
// its last pull wrote (runtime/space.ts): a run-wide floor alone passes while rsync then fails
// with ENOSPC, and refusing the whole run on it would keep retention from ever making room.
import { readFile, realpath, statfs } from 'node:fs/promises';
import { dataMapperName } from '../contract/inventory-defaults.ts';
import type { RuntimeConfig } from '../contract/runtime-config.ts';
import type { PullNeed } from './pull-needs.ts';
import type { RoomResult } from './prune.ts';
import { formatBytes } from './status.ts';
import { mountAt, parseMountinfo, type MountEntry } from './mountinfo.ts';

export interface DiskFacts {
  dataDir: string;
  /** realpath of dataDir, or undefined when it does not exist */
  realDir?: string;
  mount?: MountEntry;
  rootMount?: MountEntry;
  /** device-mapper facts of the mount's device, when it is one */
  dm?: { name: string; uuid: string; suspended: boolean };
  freeMiB?: number;
}

export interface DiskRules {
  mapperName: string;
  allowUnmounted: boolean;
  allowUnencrypted: boolean;
}

export type DiskVerdict = { ok: true; freeMiB: number; notes: string[] } | { ok: false; reason: string };

export function judgeDisk(f: DiskFacts, r: DiskRules): DiskVerdict {
  const notes: string[] = [];
  if (!f.realDir) return { ok: false, reason: `data dir ${f.dataDir} does not exist (is the backup disk mounted?)` };
  if (r.allowUnmounted) {
    notes.push('allowUnmountedDataDir: mount checks skipped (lab only)');
  } else {
    const m = f.mount;
    if (!m) return { ok: false, reason: `data dir ${f.dataDir} is not a mountpoint: the backup disk is not mounted` };
    if (f.rootMount && m.dev === f.rootMount.dev)
      return { ok: false, reason: `data dir ${f.dataDir} is on the root filesystem (${m.dev}), not the backup disk` };
    if (!m.options.includes('rw')) return { ok: false, reason: `data dir ${f.dataDir} is mounted read-only` };
    if (f.dm) {
      if (!f.dm.uuid.startsWith('CRYPT-'))
        return { ok: false, reason: `data dir ${f.dataDir} is on device-mapper ${f.dm.name}, which is not dm-crypt` };
      if (f.dm.suspended) return { ok: false, reason: `dm-crypt device ${f.dm.name} is suspended (locked)` };
      if (f.dm.name !== r.mapperName && !r.allowUnencrypted)
        return { ok: false, reason: `data dir ${f.dataDir} is on ${f.dm.name}, not the configured /dev/mapper/${r.mapperName}` };
    } else if (!r.allowUnencrypted) {
      return {
        ok: false,
        reason: `data dir ${f.dataDir} is mounted from ${m.source} (${m.fsType}), not the unlocked dm-crypt volume /dev/mapper/${r.mapperName}`,
      };
    } else {
      notes.push(`allowUnencryptedDataDir: accepting ${m.fsType} ${m.source} (lab only)`);
    }
  }
  if (f.freeMiB === undefined) return { ok: false, reason: `cannot read free space of ${f.dataDir}` };
  return { ok: true, freeMiB: f.freeMiB, notes };
}

function diskRules(config: RuntimeConfig): DiskRules {
  return {
    mapperName: dataMapperName(config.inventory.pi),
    allowUnmounted: config.allowUnmountedDataDir === true,
    allowUnencrypted: config.allowUnencryptedDataDir === true,
  };
}

const readText = (p: string) => readFile(p, 'utf8').then((s) => s.trim(), () => undefined);

async function gatherDiskFacts(dataDir: string): Promise<DiskFacts> {
  const f: DiskFacts = { dataDir };
  f.realDir = await realpath(dataDir).catch(() => undefined);
  if (!f.realDir) return f;
  const mounts = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
  f.mount = mountAt(mounts, f.realDir);
  f.rootMount = mountAt(mounts, '/');
  if (f.mount) {
    const sys = `/sys/dev/block/${f.mount.dev}/dm`;
    const uuid = await readText(`${sys}/uuid`);
    if (uuid !== undefined) {
      f.dm = { uuid, name: (await readText(`${sys}/name`)) ?? '?', suspended: (await readText(`${sys}/suspended`)) === '1' };
    }
  }
  f.freeMiB = await freeBytes(f.realDir).then((b) => Math.floor(b / MiB), () => undefined);
  return f;
}

const MiB = 1048576;

/** Bytes an unprivileged writer may still use on dir's filesystem: root may use ext4's reserved blocks too, so this errs low. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/** How much more than its last one a pull may write: ordinary growth between runs. */
export const PULL_SPACE_MARGIN = 1.25;

export interface SpaceRequirement {
  bytes: number;
  /** where the figure comes from, for the log and the refusal */
  why: string;
}

/**
 * Free space a server's next pull needs: max(last need × margin, the configured floor). A last
 * need measured on a first copy (nothing to hard-link against) says nothing about a pull that
 * links against a snapshot, so only the floor applies then.
 */
export function requiredSpace(last: PullNeed | undefined, willLink: boolean, floorMiB: number): SpaceRequirement {
  const floor = floorMiB * MiB;
  const floorWhy = `pi.dataDisk.minFreeMiB ${floorMiB}`;
  if (!last) return { bytes: floor, why: `${floorWhy}; no earlier pull measured` };
  if (willLink && !last.linked) return { bytes: floor, why: `${floorWhy}; the last pull measured was a first full copy` };
  const wrote = last.lowerBound ? `the last pull ran out of ${formatBytes(last.bytes)} free` : `the last pull wrote ${formatBytes(last.bytes)}`;
  const grown = Math.ceil(last.bytes * PULL_SPACE_MARGIN);
  if (grown <= floor) return { bytes: floor, why: `${floorWhy}; ${wrote}` };
  return { bytes: grown, why: `${wrote}, × ${PULL_SPACE_MARGIN} for growth` };
}

/** The message of a server refused for space: every number a user needs to act on it. */
export function spaceRefusal(o: {
  server: string;
  dataDir: string;
  required: SpaceRequirement;
  room: RoomResult;
  /** what the retention rules allowed deleting */
  candidates: string[];
  /** --no-prune: nothing was deleted */
  pruneSkipped: boolean;
  /** snapshots still there, oldest first */
  kept: string[];
}): string {
  const { room } = o;
  const won = room.pruned.reduce((n, p) => n + p.wonBytes, 0);
  const what = o.pruneSkipped
    ? 'nothing pruned (--no-prune)'
    : room.pruned.length
      ? `pruned ${room.pruned.map((p) => p.name).join(', ')} by the retention rules (won ${formatBytes(won)})`
      : o.candidates.length
        ? `deleting what the retention rules allow (${o.candidates.join(', ')}) would win only ${formatBytes(room.wouldWinBytes ?? 0)}, so nothing was deleted`
        : 'the retention rules allow pruning nothing';
  const kept = o.kept.length ? `; kept ${o.kept.length} snapshot(s), newest ${o.kept[o.kept.length - 1]}` : '';
  return (
    `not enough space on ${o.dataDir} to pull ${o.server}: ${formatBytes(o.required.bytes)} required (${o.required.why}), ` +
    `${formatBytes(room.freeBytes)} free; ${what}${kept}. Not pulled: make room on the disk, keep fewer snapshots (retention) or use a bigger disk`
  );
}

export async function preflight(config: RuntimeConfig): Promise<DiskVerdict> {
  return judgeDisk(await gatherDiskFacts(config.paths.dataDir), diskRules(config));
}
