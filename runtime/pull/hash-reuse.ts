// Hash reuse and manifest comparison (pure). A file of the new snapshot that is the very same
// inode as the file at the same path in the previous snapshot (rsync --link-dest hard-linked it)
// has the same content: its sha256 is taken from the previous manifest, never recomputed.
import { entryPath, type ManifestEntry } from '../../contract/disk-layout.ts';

export interface FileIdentity {
  /** numbers when exact (< 2^53), else BigInt: the same id always has the same representation */
  dev: number | bigint;
  ino: number | bigint;
  size: number;
  /** whole seconds */
  mtime: number;
}

/** The previous hash, when `cur` is provably the same file; undefined means "hash it". */
export function reusableHash(cur: FileIdentity, prevStat: Pick<FileIdentity, 'dev' | 'ino'> | undefined, prevEntry: ManifestEntry | undefined): string | undefined {
  if (!prevStat || !prevEntry || prevEntry.t !== 'f' || !prevEntry.h) return undefined;
  if (prevStat.dev !== cur.dev || prevStat.ino !== cur.ino) return undefined;
  // same inode, so same content; size/mtime must agree with what the old manifest recorded
  if (prevEntry.s !== cur.size || prevEntry.m !== cur.mtime) return undefined;
  return prevEntry.h;
}

/** Map key for raw path bytes (latin1 is lossless for arbitrary bytes). */
const pathKey = (e: Pick<ManifestEntry, 'p' | 'pb'>): string => entryPath(e).toString('latin1');

export interface ManifestDiff {
  added: string[];
  removed: string[];
  /** same path, different type/content/metadata */
  changed: string[];
}

const sameEntry = (a: ManifestEntry, b: ManifestEntry) =>
  a.t === b.t && a.s === b.s && a.m === b.m && a.mode === b.mode && a.u === b.u && a.g === b.g && a.h === b.h &&
  a.l === b.l && a.lb === b.lb;

/** Paths (as latin1 keys) that differ between two manifests. Directory mtimes are ignored when `ignoreDirMtime`. */
export function diffManifests(a: ManifestEntry[], b: ManifestEntry[], opts: { ignoreDirMtime?: boolean } = {}): ManifestDiff {
  const am = new Map(a.map((e) => [pathKey(e), e]));
  const bm = new Map(b.map((e) => [pathKey(e), e]));
  const d: ManifestDiff = { added: [], removed: [], changed: [] };
  for (const [k, e] of bm) {
    const old = am.get(k);
    if (!old) d.added.push(k);
    else if (!sameEntry(opts.ignoreDirMtime && e.t === 'd' ? { ...old, m: e.m } : old, e)) d.changed.push(k);
  }
  for (const k of am.keys()) if (!bm.has(k)) d.removed.push(k);
  return d;
}
