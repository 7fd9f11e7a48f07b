// Hash new files while rsync is still pulling, so the manifest has little left to hash.
// rsync runs with --out-format='%b %i %n' and prints each item once its transfer is done (the %b
// makes it log after the transfer, not before); the names of regular files (%i's type letter f)
// are hints only. A hint is hashed (open O_NOFOLLOW|O_NONBLOCK → fstat: regular file → read
// exactly its size), and the hash is kept for that inode in the state fstat saw: dev, ino, size,
// mtime and ctime.
// The manifest uses it only when its own walk (walk.ts: find's stat of the path) finds the very
// same inode in the very same state; anything else (a wrong or garbled name, a file replaced or
// touched since, a link added to it: all change ctime) is hashed again there. A wrong hint costs
// time, never a wrong hash.
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

export class PreHasher {
  private pool: HashPool;
  private cache = new Map<string, HashedFile>();
  private batch: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pending = new Set<Promise<void>>();
  private closed = false;
  readonly stats: PreHashStats = { hinted: 0, hashed: 0 };

  /** one thread hashes while rsync runs (at nice 19: rsync comes first); all `threads` at finish(). */
  constructor(private readonly threads = hashThreads()) {
    this.pool = new HashPool(threads, WHILE_RUNNING, NICE);
  }

  /** A stream of rsync's `--out-format='%b %i %n'` output for a transfer into `destDir`. */
  feed(destDir: string): { write(chunk: Buffer): void; end(): void } {
    const lines = new RsyncNameLines();
    const base = Buffer.from(destDir.replace(/\/+$/, '')).toString('latin1');
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
        for (const r of rs) {
          if (!r) continue;
          this.cache.set(`${r.dev}:${r.ino}`, r);
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
  }

  /** The hash of this inode in this state, if it was hashed in exactly this state. */
  lookup = (id: InodeState): string | undefined => {
    const c = this.cache.get(`${id.dev}:${id.ino}`);
    return c && c.size === id.size && c.mtimeMs === id.mtimeMs && c.ctimeMs === id.ctimeMs ? c.sha : undefined;
  };

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.batch = [];
    await this.pool.close();
  }
}
