// sha256 of files in worker threads, for the manifest (a list known up front) and for the
// pre-hasher (names trickling in while rsync runs). One worker script for both; how many
// workers may run at once can be raised while jobs are queued (1 while rsync needs the CPU,
// all of them once it is done).
import os from 'node:os';
import { Worker } from 'node:worker_threads';

// Small enough that what read() copied in is still in the core's L2 cache when sha256 reads it
// (figures in bench/README.md).
export const HASH_CHUNK = 128 << 10;

/** An inode in one state, as (l)stat gives it: a file changed or replaced since no longer matches. */
export interface InodeState {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** What a worker learnt about one file: its hash and the identity of the inode it read. */
export interface HashedFile extends InodeState {
  sha: string;
}

// A plain CommonJS script (eval'ed), so it survives bundling into the single-file runtime.
// "strict" jobs (the manifest: paths its walk found to be regular files) fail on any error and
// read to EOF. "hint" jobs (the pre-hasher: names rsync itemized as regular files) skip a path
// that vanished or is not a regular file after all, read exactly the size fstat gave, and return
// the identity fstat saw before reading. No second fstat: a change while (or after) it was read
// moves ctime on (and size or mtime), so the manifest's own walk (a later stat) no longer matches that identity
// and hashes the file again; a second fstat would catch nothing more (it cost about 0.2 s CPU per
// 50 000 files: the profile gave 0.44 s for both).
// Files are opened O_NOFOLLOW|O_NONBLOCK|O_NOCTTY, so a symlink is never followed and a FIFO or
// device that took a file's place would not block or become a terminal; it is never read.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
// Linux nice values are per thread: this lowers only this hashing thread
if (workerData && workerData.nice) try { require('node:os').setPriority(workerData.nice); } catch {}
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync, fstatSync, constants: C } = require('node:fs');
const buf = Buffer.allocUnsafe(${HASH_CHUNK});
const FLAGS = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK | C.O_NOCTTY;
function one(p, strict) {
  const fd = openSync(Buffer.from(p, 'latin1'), FLAGS);
  try {
    const before = fstatSync(fd);
    if (!before.isFile()) {
      if (strict) throw new Error(p + ': not a regular file');
      return null;
    }
    const h = createHash('sha256');
    let n, total = 0;
    while ((strict || total < before.size) && (n = readSync(fd, buf, 0, strict ? buf.length : Math.min(buf.length, before.size - total), null)) > 0) {
      h.update(n === buf.length ? buf : buf.subarray(0, n));
      total += n;
    }
    if (!strict && total !== before.size) return null;
    return [h.digest('hex'), before.dev, before.ino, before.size, before.mtimeMs, before.ctimeMs];
  } finally {
    closeSync(fd);
  }
}
parentPort.on('message', (job) => {
  const out = [];
  try {
    for (const p of job.paths) {
      if (job.strict) out.push(one(p, true));
      else {
        let r = null;
        try { r = one(p, false); } catch {}
        out.push(r);
      }
    }
    parentPort.postMessage({ results: out });
  } catch (e) {
    parentPort.postMessage({ error: String((e && e.message) || e) });
  }
});
`;

type Row = [string, number, number, number, number, number] | null;
const fromRow = (r: Row): HashedFile | null => (r ? { sha: r[0], dev: r[1], ino: r[2], size: r[3], mtimeMs: r[4], ctimeMs: r[5] } : null);

export function hashThreads(): number {
  const n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(4, n));
}

interface Job {
  paths: string[];
  strict: boolean;
  resolve: (r: (HashedFile | null)[]) => void;
  reject: (e: Error) => void;
}

/** A pool of hashing threads, started lazily, at most `limit` busy at once. */
export class HashPool {
  private workers: Worker[] = [];
  private idle: Worker[] = [];
  private queue: Job[] = [];
  private running = new Map<Worker, Job>();
  private failed: Error | undefined;

  /** `nice`: the workers' nice value (Linux: per thread), so they use only CPU time rsync leaves over */
  constructor(
    private readonly threads: number,
    private limit = threads,
    private readonly nice = 0,
  ) {}

  /** Let more (or fewer) workers run at once; queued jobs start at once. */
  setLimit(n: number): void {
    this.limit = Math.max(1, Math.min(this.threads, n));
    this.pump();
  }

  /** Hash `paths` (latin1 strings of raw bytes) in one worker; results in the same order. */
  submit(paths: string[], strict: boolean): Promise<(HashedFile | null)[]> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ paths, strict, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length && this.running.size < this.limit) {
      let w = this.idle.pop();
      if (!w) {
        if (this.workers.length >= this.threads) return;
        w = this.spawn();
      }
      const job = this.queue.shift()!;
      this.running.set(w, job);
      w.postMessage({ paths: job.paths, strict: job.strict });
    }
  }

  private spawn(): Worker {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { nice: this.nice } });
    this.workers.push(w);
    const fail = (e: Error) => {
      this.failed ??= e;
      const job = this.running.get(w);
      this.running.delete(w);
      job?.reject(e);
      for (const q of this.queue.splice(0)) q.reject(e);
    };
    w.on('message', (m: { results?: Row[]; error?: string }) => {
      const job = this.running.get(w)!;
      this.running.delete(w);
      this.idle.push(w);
      if (m.error !== undefined) job.reject(new Error(`hashing: ${m.error}`));
      else job.resolve(m.results!.map(fromRow));
      this.pump();
    });
    w.on('error', fail);
    w.on('exit', (code) => code !== 0 && fail(new Error(`hashing thread exited ${code}`)));
    return w;
  }

  async close(): Promise<void> {
    const ws = this.workers.splice(0);
    this.idle = [];
    await Promise.all(ws.map((w) => w.terminate()));
  }
}
