// What each server's last pull wrote to the backup disk, kept in <disk>/pullvault/state/pull-needs.json
// so the next run can make room before it pulls (runtime/space.ts).
//
// Measured as the drop of the filesystem's free space over the pull (statfs before and after).
// That counts everything a pull costs — new and changed files, the new snapshot's directories
// (never hard-linked), dumps, the manifest, filesystem metadata — and nothing it shares with the
// previous snapshot through --link-dest. The alternative, the new snapshot's blocks not shared
// with another snapshot, costs a walk over every inode after each pull and misses filesystem
// metadata. The drop is exact while nothing else writes to or frees space on the disk during a
// pull, which holds (one server at a time, under the run's lock) but for one case that reads low
// once: a pull that resumes an interrupted copy (part of it was written by the earlier run).
import { readFile } from 'node:fs/promises';
import { vaultLayout } from '../contract/disk-layout.ts';
import { writeFileAtomic } from './state.ts';

export interface PullNeed {
  /** bytes the pull took from the disk's free space */
  bytes: number;
  /** when it was measured (ISO) */
  at: string;
  /** the snapshot the pull made; absent when it failed */
  snapshot?: string;
  /** the pull had a previous snapshot to hard-link against (a first copy costs far more than later ones) */
  linked: boolean;
  /** the pull ran out of space: it needed more than `bytes`, the free space it started with */
  lowerBound?: boolean;
}

export interface PullNeedsDoc {
  version: 1;
  servers: Record<string, PullNeed>;
}

const pullNeedsFile = (dataDir: string) => vaultLayout(dataDir).pullNeeds;

/** The recorded needs; an absent or unreadable file is no record (the next pull measures again). */
export async function readPullNeeds(dataDir: string): Promise<PullNeedsDoc> {
  try {
    const doc = JSON.parse(await readFile(pullNeedsFile(dataDir), 'utf8')) as PullNeedsDoc;
    if (doc?.version === 1 && doc.servers && typeof doc.servers === 'object') return doc;
  } catch {
    /* no record */
  }
  return { version: 1, servers: {} };
}

export async function recordPullNeed(dataDir: string, server: string, need: PullNeed): Promise<void> {
  const doc = await readPullNeeds(dataDir);
  doc.servers[server] = need;
  await writeFileAtomic(pullNeedsFile(dataDir), JSON.stringify(doc, null, 2) + '\n', 0o600);
}
