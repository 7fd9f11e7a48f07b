// Walk a snapshot tree (arbitrary bytes in names; walk.ts) and write its manifest.
// Hashes of files hard-linked from the previous snapshot are reused (hash-reuse.ts); files
// hard-linked to each other inside the snapshot are hashed once and carry `hl`.
//
// Cost model (what this file is shaped by): one stat per entry of the new tree (by GNU find, in
// C, relative to each directory: walk.ts); one lstat of the
// previous snapshot's path only for a file that can still be the very same inode (more than one
// link, and size and mtime equal to the previous manifest's); the previous manifest is read as a
// stream merged with the sorted walk (both are in path-byte order), never held whole; files that
// must be hashed are hashed by a few worker threads (in this thread when there is little to hash);
// the manifest is written as it is produced. Paths are kept as latin1 strings (one char per byte:
// lossless, and JS string order is byte order).
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readlinkSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeAllSync } from '../archive/batched-writer.ts';
import { fileLines, manifestKey } from '../archive/manifest-stream.ts';
import { pathFields, type ManifestEntry } from '../../contract/disk-layout.ts';
import { HASH_CHUNK, HashPool, hashThreads, type InodeState } from './hash-pool.ts';
import { reusableHash } from './hash-reuse.ts';
import type { KnownHashes } from './prehash.ts';
import { inodeOf, T_DIR, T_FILE, T_LINK, walkSorted, type Id, type WalkRec } from './walk.ts';

export const MANIFEST_FILE = 'manifest.jsonl';
export const INFO_FILE = 'snapshot.json';
const TOP_LEVEL_SKIP = new Set([MANIFEST_FILE, INFO_FILE]);

export interface ManifestStats {
  files: number;
  bytes: number;
  hashedFiles: number;
  hashedBytes: number;
  /** of hashedFiles, how many were hashed while rsync still ran (pre-hasher) */
  prehashedFiles: number;
}

const bytesOf = (latin1: string) => Buffer.from(latin1, 'latin1');
const ASCII = /^[\x20-\x7e]*$/;

/**
 * The previous manifest as a cursor: `get(key)` for keys asked in ascending order. The manifest
 * is sorted by path bytes; if it is not (damaged), lookups miss and files are hashed: never a wrong hit.
 */
class PrevCursor {
  private it: Generator<string>;
  private cur: ManifestEntry | undefined;
  private curKey = '';
  constructor(path: string | undefined) {
    this.it = path ? fileLines(path, true) : (function* () {})();
    this.advance();
  }
  private advance(): void {
    const n = this.it.next();
    if (n.done) {
      this.cur = undefined;
      return;
    }
    this.cur = JSON.parse(n.value) as ManifestEntry;
    this.curKey = manifestKey(this.cur);
  }
  get(key: string): ManifestEntry | undefined {
    while (this.cur && this.curKey < key) this.advance();
    return this.cur && this.curKey === key ? this.cur : undefined;
  }
  close(): void {
    this.it.return(undefined);
  }
}

// --- hashing ---------------------------------------------------------------------------------

/** sha256 hex of a file, synchronously (the hashing threads' algorithm too: hash-pool.ts); `buf` reused across calls keeps GC out of a long run of small files. */
/** `size`: the file's size as just lstat'ed; the read stops there, sparing the read that would only find the end. */
export function sha256FileSync(path: Buffer | string, buf: Buffer = Buffer.allocUnsafe(HASH_CHUNK), size = Infinity): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    for (let left = size; left > 0; ) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, left), null);
      if (n === 0) break;
      left -= n;
      h.update(n === buf.length ? buf : buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Below this much work, starting threads costs more than it saves. */
const POOL_MIN_BYTES = 64 << 20;
const POOL_MIN_FILES = 4000;
/** one message to a worker: up to this many files or bytes */
const BATCH_FILES = 256;
const BATCH_BYTES = 8 << 20;

/**
 * sha256 of each absolute path (latin1), in order. Large jobs go to `threads` worker threads
 * (each reads with its own HASH_CHUNK buffer); small ones are done here.
 */
export async function hashFiles(paths: string[], sizes: number[], opts: { threads?: number; poolMinBytes?: number } = {}): Promise<string[]> {
  const total = sizes.reduce((a, b) => a + b, 0);
  const threads = opts.threads ?? hashThreads();
  const out: string[] = new Array(paths.length);
  if (threads <= 1 || (total < (opts.poolMinBytes ?? POOL_MIN_BYTES) && paths.length < POOL_MIN_FILES)) {
    const buf = Buffer.allocUnsafe(HASH_CHUNK);
    for (let i = 0; i < paths.length; i++) out[i] = sha256FileSync(bytesOf(paths[i]), buf);
    return out;
  }
  // batches: consecutive indices, bounded by count and bytes; big files first so no thread ends last with one
  const batches: { start: number; end: number; bytes: number }[] = [];
  for (let i = 0; i < paths.length; ) {
    let j = i;
    let b = 0;
    while (j < paths.length && j - i < BATCH_FILES && (j === i || b + sizes[j] <= BATCH_BYTES)) b += sizes[j++];
    batches.push({ start: i, end: j, bytes: b });
    i = j;
  }
  batches.sort((a, b) => b.bytes - a.bytes);
  const pool = new HashPool(Math.min(threads, batches.length));
  try {
    await Promise.all(
      batches.map(async (b) => {
        const got = await pool.submit(paths.slice(b.start, b.end), true);
        for (let k = 0; k < got.length; k++) out[b.start + k] = got[k]!.sha;
      }),
    );
  } finally {
    await pool.close();
  }
  return out;
}

// --- the manifest ----------------------------------------------------------------------------

export interface BuildManifestOptions {
  /** the previous complete snapshot's directory, for hash reuse */
  prevDir?: string;
  onProgress?: (done: number, total: number) => void;
  /** hashing threads (default: CPUs, at most 4; 1 = this thread only) */
  threads?: number;
  /**
   * Hashes computed earlier in this run (the pre-hasher, while rsync ran), each for exactly one
   * path as exactly one inode in one state (dev, ino, size, mtime and ctime as the walk's stat
   * gives them now); called once `knownReady` settles, then asked in path order.
   */
  known?: () => KnownHashes;
  /** `known` is complete once this settles: the walk runs meanwhile */
  knownReady?: Promise<unknown>;
}

const jsonPath = (latin1: string): string => {
  if (ASCII.test(latin1) && !latin1.includes('"') && !latin1.includes('\\')) return `"p":"${latin1}"`;
  const f = pathFields(bytesOf(latin1));
  return f.p !== undefined ? `"p":${JSON.stringify(f.p)}` : `"pb":"${f.pb}"`;
};
const hlValue = (latin1: string): string => {
  const f = pathFields(bytesOf(latin1));
  return JSON.stringify(f.p ?? f.pb);
};

/**
 * One manifest line, byte for byte what JSON.stringify gives for the ManifestEntry (fields in
 * the historical order: p|pb, m, mode, u, g, t, s, then h and hl, or l|lb), built without the object.
 */
function entryLine(r: WalkRec, h: string | undefined, hlOf: string | undefined, link: Buffer | undefined): string {
  const head = `{${jsonPath(r.rel)},"m":${r.mtime},"mode":${r.mode},"u":${r.uid},"g":${r.gid}`;
  if (r.type === T_DIR) return `${head},"t":"d","s":0}`;
  if (r.type === T_LINK) {
    const f = pathFields(link!);
    return `${head},"t":"l","s":0,${f.p !== undefined ? `"l":${JSON.stringify(f.p)}` : `"lb":"${f.pb}"`}}`;
  }
  return `${head},"t":"f","s":${r.size}${h !== undefined ? `,"h":"${h}"` : ''}${hlOf !== undefined ? `,"hl":${hlValue(hlOf)}` : ''}}`;
}

/** entries decided, hashed and written together: bounds memory whatever the tree's size */
const WINDOW_ENTRIES = 16384;
const WINDOW_BYTES = 256 << 20;

/**
 * Build the manifest of the snapshot at `dir` and write `dir/manifest.jsonl` (fsynced). The walk
 * comes sorted from disk (walk.ts) and is merged with the previous manifest's stream; entries are
 * decided, hashed and written a window at a time, so memory does not grow with the tree.
 */
export async function buildManifest(dir: string, opts: BuildManifestOptions = {}): Promise<{ stats: ManifestStats }> {
  // the sort's files go next to the snapshot (the backup disk), not into it
  const [w] = await Promise.all([walkSorted(dir, dirname(dir), TOP_LEVEL_SKIP), opts.knownReady]);
  const dirL = Buffer.from(dir).toString('latin1');
  const prevL = opts.prevDir ? Buffer.from(opts.prevDir).toString('latin1') : undefined;
  const stats: ManifestStats = { files: 0, bytes: 0, hashedFiles: 0, hashedBytes: 0, prehashedFiles: 0 };
  /** the hash of each hard-link group's head, for members in later windows */
  const headHash = new Map<string, string>();
  const heads = new Set(w.links.values());
  const prev = new PrevCursor(prevL !== undefined ? `${opts.prevDir}/${MANIFEST_FILE}` : undefined);
  const known = opts.known?.();
  const fd = openSync(`${dir}/${MANIFEST_FILE}`, 'w', 0o644);
  let done = 0;
  try {
    let recs: WalkRec[] = [];
    let hashes: (string | undefined)[] = [];
    let toHash: number[] = [];
    let toHashBytes = 0;
    const flush = async () => {
      // hash what must be hashed
      const got = await hashFiles(toHash.map((i) => `${dirL}/${recs[i]!.rel}`), toHash.map((i) => recs[i]!.size), { threads: opts.threads });
      for (let k = 0; k < toHash.length; k++) {
        hashes[toHash[k]!] = got[k];
        stats.hashedFiles++;
        stats.hashedBytes += recs[toHash[k]!]!.size;
      }
      // write, in path order
      const lines: string[] = [];
      for (let i = 0; i < recs.length; i++) {
        const r = recs[i]!;
        const head = r.type === T_FILE ? w.links.get(r.rel) : undefined;
        if (r.type === T_FILE && head === undefined && heads.has(r.rel)) headHash.set(r.rel, hashes[i]!);
        lines.push(
          entryLine(
            r,
            r.type === T_FILE ? (head !== undefined ? headHash.get(head) : hashes[i]) : undefined,
            head,
            r.type === T_LINK ? readlinkSync(bytesOf(`${dirL}/${r.rel}`), { encoding: 'buffer' }) : undefined,
          ),
        );
      }
      const b = Buffer.from(lines.join('\n') + (lines.length ? '\n' : ''), 'utf8');
      writeAllSync(fd, b);
      done += recs.length;
      if (opts.onProgress) opts.onProgress(done, w.count);
      recs = [];
      hashes = [];
      toHash = [];
      toHashBytes = 0;
    };
    // decide, in path order: reuse the previous hash, follow a hard-link group, or hash
    for (const r of w.recs) {
      const i = recs.push(r) - 1;
      hashes.push(undefined);
      if (r.type === T_FILE) {
        stats.files++;
        stats.bytes += r.size;
        // a member of a group: its head (an earlier path) has the hash
        if (!w.links.has(r.rel)) {
          const pe = prevL !== undefined ? prev.get(r.rel) : undefined;
          // only a file with another link can be the previous snapshot's inode; the lstat is for those
          if (pe && r.nlink > 1 && pe.t === 'f' && pe.h && pe.s === r.size && pe.m === r.mtime) {
            let ps: { dev: Id; ino: Id } | undefined;
            try {
              ps = inodeOf(bytesOf(`${prevL}/${r.rel}`));
            } catch {
              /* gone from the previous snapshot */
            }
            hashes[i] = reusableHash({ dev: r.dev, ino: r.ino, size: r.size, mtime: r.mtime }, ps, pe);
          }
          if (hashes[i] === undefined && known && typeof r.dev === 'number' && typeof r.ino === 'number') {
            hashes[i] = known.get(`${dirL}/${r.rel}`, { dev: r.dev, ino: r.ino, size: r.size, mtimeMs: r.mtimeMs, ctimeMs: r.ctimeMs });
            if (hashes[i] !== undefined) {
              stats.hashedFiles++;
              stats.hashedBytes += r.size;
              stats.prehashedFiles++;
            }
          }
          if (hashes[i] === undefined) {
            toHash.push(i);
            toHashBytes += r.size;
          }
        }
      }
      if (recs.length >= WINDOW_ENTRIES || toHashBytes >= WINDOW_BYTES) await flush();
    }
    await flush();
    fsyncSync(fd);
  } finally {
    closeSync(fd);
    prev.close();
    known?.close();
    w.dispose();
  }
  return { stats };
}
