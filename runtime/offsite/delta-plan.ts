// Pure: which changed files of an incremental travel as a zstd patch against their version in
// the base snapshot, the memory cap that bounds `zstd --patch-from`, and the archive's delta
// index (.pullvault/deltas.json). The effects (staging, zstd) are deltas.ts and delta-apply.ts.
import { entryPath, pathFields, type ManifestEntry } from '../../contract/disk-layout.ts';

/** The members under which an archive carries its patches, and the index that lists them. */
export const DELTA_DIR = '.pullvault/delta';
export const DELTA_INDEX = '.pullvault/deltas.json';
/** a patch of the file's own bytes: `zstd -d --patch-from=OLD PATCH` gives the new file */
export const RAW_SUFFIX = '.zst-patch';
/** a patch of a zstd file's decompressed content (dumps/…sql.zst): decompress OLD, patch, recompress */
export const UNZST_SUFFIX = '.unzst-patch';
/** how a restore recompresses the content an unzst patch rebuilds (what runtime/pull/dumps.ts writes) */
export const RECOMPRESS_ARGV = ['zstd', '-q', '-c', '-3'];
/** decompression accepts any window the Pi may have used (this is a limit, not a cost) */
export const APPLY_LONG = 31;

export interface DeltaSettings {
  /** files smaller than this go whole (default 1 MiB) */
  minBytes: number;
  /** largest reference (and new version) zstd --patch-from may hold in memory */
  capBytes: number;
  /** a patch is used only when it is smaller than this fraction of the file (default 0.5) */
  margin: number;
}

export const DEFAULT_MIN_BYTES = 1 << 20;
export const DEFAULT_MARGIN = 0.5;
/** what the runtime and the rest of the Pi keep for themselves */
export const MEMORY_RESERVE_BYTES = 300e6;
/** zstd --patch-from's peak RSS per byte of reference, measured (bench/DELTAS.md) */
export const CREATE_RSS_FACTOR = 3.2;

/** The memory cap for a machine with `memTotalBytes` of RAM: (RAM − reserve) / 3.2, never below 0. */
export function memoryCap(memTotalBytes: number): number {
  return Math.max(0, Math.floor((memTotalBytes - MEMORY_RESERVE_BYTES) / CREATE_RSS_FACTOR));
}

/** MemTotal of /proc/meminfo's text, in bytes (undefined when absent). */
export function memTotalOf(meminfo: string): number | undefined {
  const m = /^MemTotal:\s+(\d+)\s+kB$/m.exec(meminfo);
  return m ? Number(m[1]) * 1024 : undefined;
}

export type WholeReason = 'no previous version' | 'above the memory cap' | 'not smaller' | 'not a zstd file' | 'recompression differs' | 'no staging space' | 'zstd failed';

export type Plan =
  /** not a candidate at all: small, unchanged content, not a regular file */
  | { kind: 'none' }
  | { kind: 'whole'; reason: WholeReason }
  | { kind: 'patch'; mode: 'raw' | 'unzst' };

/** A dump that is a zstd file of its own: patched on the decompressed content. */
export const isZstdDump = (path: Buffer): boolean => {
  const s = path.toString('latin1');
  return s.startsWith('dumps/') && s.endsWith('.zst');
};

/**
 * The decision for one entry of an incremental, given its entry in the base snapshot (same
 * path). Hard-linked files travel whole (tar links members of one archive; a group goes
 * together); the cap is checked here against the sizes the manifests know (for an unzst
 * patch again against the decompressed size once known: capCheck).
 */
export function planDelta(old: ManifestEntry | undefined, cur: ManifestEntry, s: DeltaSettings): Plan {
  if (cur.t !== 'f' || cur.s < s.minBytes || cur.hl !== undefined) return { kind: 'none' };
  if (!old || old.t !== 'f' || old.hl !== undefined) return { kind: 'whole', reason: 'no previous version' };
  if (old.h !== undefined && old.h === cur.h) return { kind: 'none' };
  const mode = isZstdDump(entryPath(cur)) ? 'unzst' : 'raw';
  if (mode === 'raw' && !capCheck(old.s, cur.s, s)) return { kind: 'whole', reason: 'above the memory cap' };
  return { kind: 'patch', mode };
}

/** zstd --patch-from holds the reference and windows over the new content: both bounded by the cap. */
export const capCheck = (refBytes: number, newBytes: number, s: DeltaSettings): boolean => Math.max(refBytes, newBytes) <= s.capBytes;

/** The patch is worth it only when smaller than `margin` of what it replaces. */
export const patchPays = (patchBytes: number, wholeBytes: number, s: DeltaSettings): boolean => patchBytes < wholeBytes * s.margin;

/** --long=N for creating: a window that covers the whole reference and the new content. */
export function windowLog(refBytes: number, newBytes: number): number {
  const n = Math.max(refBytes, newBytes, 1);
  return Math.min(APPLY_LONG, Math.max(10, Math.ceil(Math.log2(n))));
}

/** The member an entry's patch is stored as, relative to the archive root. */
export function patchMember(path: Buffer, mode: 'raw' | 'unzst'): Buffer {
  return Buffer.concat([Buffer.from(`${DELTA_DIR}/`), path, Buffer.from(mode === 'raw' ? RAW_SUFFIX : UNZST_SUFFIX)]);
}

export interface DeltaRecord {
  /** the entry's path (p, or pb for bytes that are not UTF-8) */
  p?: string;
  pb?: string;
  mode: 'raw' | 'unzst';
  /** the member holding the patch, for reading (restore derives it from the path: patchMember) */
  patch: string;
  /** size and sha256 of the version the patch applies to (the file in the base snapshot; unzst: its decompressed content) */
  refBytes: number;
  refSha256: string;
  /** size and sha256 of what applying the patch gives (unzst: the decompressed content) */
  bytes: number;
  sha256: string;
  patchBytes: number;
  /** --long used to create it (apply with any --long ≥ this) */
  long: number;
}

export interface WholeRecord {
  p?: string;
  pb?: string;
  bytes: number;
  reason: WholeReason;
}

export interface DeltaIndex {
  v: 1;
  /** the snapshot the patches apply to: the incremental's base */
  base: string;
  capBytes: number;
  deltas: DeltaRecord[];
  whole: WholeRecord[];
}

export const recordPath = (r: { p?: string; pb?: string }): Buffer => entryPath(r);
export const pathRecord = (p: Buffer): { p?: string; pb?: string } => pathFields(p);

/** The index read back from an archive: the shape checked, every path safe and matching its member. */
export function parseDeltaIndex(text: string, isSafe: (p: Buffer) => boolean): DeltaIndex {
  const x = JSON.parse(text) as DeltaIndex;
  if (x?.v !== 1 || !Array.isArray(x.deltas) || !Array.isArray(x.whole) || typeof x.base !== 'string') throw new Error('not a pullvault delta index (v 1)');
  for (const d of x.deltas) {
    const p = recordPath(d);
    if (!isSafe(p)) throw new Error(`unsafe path in the delta index: ${JSON.stringify(p.toString('latin1'))}`);
    if (d.mode !== 'raw' && d.mode !== 'unzst') throw new Error(`${p.toString('utf8')}: unknown delta mode ${JSON.stringify(d.mode)}`);
    if (!/^[0-9a-f]{64}$/.test(d.sha256) || !/^[0-9a-f]{64}$/.test(d.refSha256)) throw new Error(`${p.toString('utf8')}: bad sha256 in the delta index`);
  }
  return x;
}
