// Hash new files while rsync is still pulling, so the manifest has little left to hash.
// rsync runs with --out-format='%b %i %n' and prints each item once its transfer is done (the %b
// makes it log after the transfer, not before); the names of regular files (%i's type letter f)
// are hints only. A hint is hashed (open O_NOFOLLOW|O_NONBLOCK → fstat: regular file → read
// exactly its size), and the hash is kept for that inode in the state fstat saw: dev, ino, size,
// mtime and ctime, in an external sort by path on the backup disk (external-sort.ts), so the
// manifest's walk, which comes in path order too, meets them as a merge-join: nothing per file is
// held in memory.
// The manifest uses it only when its own walk (walk.ts: find's stat of the path) finds the very
// same inode in the very same state; anything else (a wrong or garbled name, a file replaced or
// touched since, a link added to it: all change ctime) is hashed again there. A wrong hint costs
// time, never a wrong hash.
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { compareBytesText, ExternalSorter, type RecordList } from '../archive/external-sort.ts';
import { HashPool, hashThreads, type HashedFile, type InodeState } from './hash-pool.ts';

/** rsync's escape for bytes it will not print: `\#ooo` (octal). A literal `\#` is itself escaped, so this is lossless. */
export function unescapeRsyncName(s: string): string {
  return s.replace(/\\#([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8) & 0xff));
}

/** Splits rsync's stdout (bytes) into lines of raw name bytes (latin1 strings), across chunk boundaries. */
export class RsyncNameLines {
  private rest = '';
  /** the complete lines in `chunk` (plus what was left over before it) */
  push(chunk: Buffer): string[] {
    const text = this.rest + chunk.toString('latin1');
    const parts = text.split('\n');
    this.rest = parts.pop()!;
    return parts;
  }
  end(): string[] {
    const r = this.rest;
    this.rest = '';
    return r ? [r] : [];
  }
}

/** A name worth hashing: a file (not `dir/`), relative, with no `..` component. */
export function hashableName(name: string): boolean {
  if (!name || name.endsWith('/') || name.startsWith('/')) return false;
  return !name.split('/').includes('..');
}

const BATCH = 256;
const FLUSH_MS = 100;
/** the hashing threads yield to rsync, ssh and everything else while the pull runs */
const NICE = 19;
/** hashing threads busy while rsync runs (all of them at the end) */
const WHILE_RUNNING = 1;

export interface PreHashStats {
  hinted: number;
  hashed: number;
}

/**
 * Hashes known before the manifest's walk, asked for in ascending path order (absolute paths as
 * latin1 strings: raw bytes): the hash when `path` was hashed as exactly the inode in state `id`.
 */
export interface KnownHashes {
  get(path: string, id: InodeState): string | undefined;
  close(): void;
}

/** "path NUL sha dev ino size mtimeMs ctimeMs": NUL sorts below every byte, so records sort as their paths do */
const recordOf = (path: string, r: HashedFile): string => `${path}\0${r.sha} ${r.dev} ${r.ino} ${r.size} ${r.mtimeMs} ${r.ctimeMs}`;

/** A merge-join cursor over the sorted records. */
function cursorOver(list: Iterable<string>): KnownHashes {
  const it = list[Symbol.iterator]() as Iterator<string>;
  let path: string | undefined;
  let f: string[] = [];
  const next = () => {
    const n = it.next();
    if (n.done) path = undefined;
    else {
      const z = n.value.indexOf('\0');
      path = n.value.slice(0, z);
      f = n.value.slice(z + 1).split(' ');
    }
  };
  next();
  return {
    get(p, id) {
      while (path !== undefined && path < p) next();
      let hit: string | undefined;
      // the same name hinted more than once: any record in exactly this state will do
      for (; path === p; next())
        if (Number(f[1]) === id.dev && Number(f[2]) === id.ino && Number(f[3]) === id.size && Number(f[4]) === id.mtimeMs && Number(f[5]) === id.ctimeMs) hit = f[0];
      return hit;
    },
    close: () => void it.return?.(),
  };
}

export class PreHasher {
  private pool: HashPool;
  private sorter: ExternalSorter;
  private list: RecordList | undefined;
  private batch: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pending = new Set<Promise<void>>();
  private closed = false;
  readonly stats: PreHashStats = { hinted: 0, hashed: 0 };

  private readonly threads: number;
  /**
   * One thread hashes while rsync runs (at nice 19: rsync comes first); all `threads` at finish().
   * `sortDir`: where the sorted hashes go (the backup disk: /tmp may be RAM).
   */
  constructor(o: { threads?: number; sortDir?: string } = {}) {
    this.threads = o.threads ?? hashThreads();
    this.pool = new HashPool(this.threads, WHILE_RUNNING, NICE);
    this.sorter = new ExternalSorter(o.sortDir ?? tmpdir(), compareBytesText, 4 << 20);
  }

  /** A stream of rsync's `--out-format='%b %i %n'` output for a transfer into `destDir`. */
  feed(destDir: string): { write(chunk: Buffer): void; end(): void } {
    const lines = new RsyncNameLines();
    // normalized as the manifest's walk names it, or the lookups miss
    const base = Buffer.from(resolve(destDir)).toString('latin1');
    const take = (ls: string[]) => {
      for (const l of ls) {
        // "<bytes> <itemize> <name>": YXcstpoguax, X the type (f file, d dir, L link, D device, S special)
        const m = /^\d+ [^ ]([^ ])[^ ]* (.*)$/s.exec(l);
        if (!m || m[1] !== 'f') continue;
        const name = unescapeRsyncName(m[2]);
        if (hashableName(name)) this.add(`${base}/${name}`);
      }
    };
    return { write: (chunk) => take(lines.push(chunk)), end: () => take(lines.end()) };
  }

  /** an absolute path (latin1) to hash */
  private add(path: string): void {
    if (this.closed) return;
    this.stats.hinted++;
    this.batch.push(path);
    if (this.batch.length >= BATCH) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.batch.length) return;
    const paths = this.batch;
    this.batch = [];
    const p = this.pool.submit(paths, false).then(
      (rs) => {
        for (const [k, r] of rs.entries()) {
          if (!r || this.list) continue;
          this.sorter.add(recordOf(paths[k]!, r));
          this.stats.hashed++;
        }
      },
      () => {}, // a broken pool only means the manifest hashes these itself
    );
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** rsync is done: hash what is queued with every thread. */
  async finish(): Promise<void> {
    this.pool.setLimit(this.threads);
    this.flush();
    while (this.pending.size) await Promise.all([...this.pending]);
    this.list ??= this.sorter.toList();
  }

  /** After finish(): a cursor over what was hashed (each call starts a new one; before finish(), one that knows nothing). */
  lookup = (): KnownHashes => cursorOver(this.list ?? []);

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.batch = [];
    await this.pool.close();
    this.sorter.dispose();
  }
}
