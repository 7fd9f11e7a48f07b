// A folder as the offsite store: a second disk, a mounted share, the demo. Write-once by link()
// (never replaces), durable by fsync of the object and its folder before it is listed.
import { createHash } from 'node:crypto';
import { OFFSITE_KINDS } from '../../contract/offsite-kinds.ts';
import { createReadStream } from 'node:fs';
import { link, mkdir, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import type { DirTargetSpec } from '../../contract/inventory-schema.ts';
import { checkKey, MissingObjectError, ObjectExistsError, type ListedObject, type OffsiteTargetKind, type PutResult, type Target } from './target.ts';

const WRITE_BATCH = 1 << 20;
const SYNC_EVERY = 32 << 20;

/** writev until every byte is written (a regular file may take fewer bytes than asked). */
async function writeAll(fh: FileHandle, bufs: Buffer[]): Promise<void> {
  while (bufs.length) {
    let { bytesWritten: n } = await fh.writev(bufs);
    while (bufs.length && n >= bufs[0].length) n -= bufs.shift()!.length;
    if (bufs.length && n > 0) bufs[0] = bufs[0].subarray(n);
  }
}

export class DirTarget implements Target {
  readonly prefix = '';
  readonly label: string;
  constructor(readonly root: string) {
    this.label = `dir:${root}`;
  }

  async put(key: string, body: Readable, onProgress?: (bytes: number) => void, signal?: AbortSignal): Promise<PutResult> {
    checkKey(key);
    signal?.throwIfAborted();
    signal?.addEventListener('abort', () => body.destroy(signal.reason), { once: true });
    const final = join(this.root, key);
    await mkdir(dirname(final), { recursive: true });
    const tmp = join(dirname(final), `.incoming-${process.pid}-${Math.random().toString(16).slice(2)}`);
    const h = createHash('sha256');
    let bytes = 0;
    const fh = await open(tmp, 'wx', 0o600);
    try {
      // one pass: hash, count, and write in batches of ≥ 1 MiB (writev, no copies; 'data' events
      // rather than async iteration, which joins buffered chunks into a new buffer); one fsync
      let batch: Buffer[] = [];
      let size = 0;
      // the disk writes overlap with compression and encryption: an fdatasync (in the
      // background, writes go on) every SYNC_EVERY bytes, so the fsync at the end that makes
      // the object durable before link() only waits for the last few MiB
      let unsynced = 0;
      let syncing: Promise<void> | undefined;
      let syncError: unknown;
      const flush = async () => {
        const bufs = batch;
        const n = size;
        batch = [];
        size = 0;
        await writeAll(fh, bufs);
        unsynced += n;
        if (unsynced >= SYNC_EVERY && !syncing) {
          unsynced = 0;
          syncing = fh.datasync().then(
            () => void (syncing = undefined),
            (e) => void ((syncError ??= e), (syncing = undefined)),
          );
        }
      };
      await new Promise<void>((resolve, reject) => {
        let failed = false;
        const fail = (e: unknown) => {
          if (failed) return;
          failed = true;
          body.destroy();
          reject(e);
        };
        let writing: Promise<void> = Promise.resolve();
        body.on('data', (c: Buffer) => {
          h.update(c);
          bytes += c.length;
          batch.push(c);
          size += c.length;
          onProgress?.(bytes);
          if (size >= WRITE_BATCH) {
            body.pause();
            writing = flush();
            writing.then(() => body.resume(), fail);
          }
        });
        body.once('end', () => writing.then(resolve, fail));
        body.once('error', fail);
        body.once('close', () => {
          if (!body.readableEnded) fail(signal?.aborted ? signal.reason : new Error('archive stream closed before its end'));
        });
      });
      if (batch.length) await flush();
      await syncing;
      if (syncError) throw syncError;
      await fh.sync();
      await fh.close();
      try {
        // link() never replaces: the no-clobber rename
        await link(tmp, final);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new ObjectExistsError(key, this.label);
        throw e;
      }
      const dfh = await open(dirname(final), 'r');
      await dfh.sync().finally(() => dfh.close());
    } finally {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
    }
    return { key, bytes, sha256: h.digest('hex') };
  }

  async list(prefix: string): Promise<ListedObject[]> {
    const out: ListedObject[] = [];
    const walk = async (dir: string): Promise<void> => {
      let names;
      try {
        names = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      for (const d of names) {
        const p = join(dir, d.name);
        if (d.isDirectory()) await walk(p);
        else if (d.isFile() && !d.name.startsWith('.incoming-')) {
          const key = relative(this.root, p).split(sep).join('/');
          if (key.startsWith(prefix)) {
            const st = await stat(p);
            out.push({ key, size: st.size, modified: st.mtime });
          }
        }
      }
    };
    await walk(this.root);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async get(key: string): Promise<Readable> {
    checkKey(key);
    const p = join(this.root, key);
    try {
      await stat(p);
    } catch {
      throw new MissingObjectError(key, this.label);
    }
    return createReadStream(p, { highWaterMark: 1 << 20 });
  }

  close(): void {}
}

export const dirTargetKind: OffsiteTargetKind<DirTargetSpec> = {
  type: 'dir',
  credentials: OFFSITE_KINDS.dir.credentials,
  argForm: 'dir:PATH',
  parseArg: (arg) => (arg.startsWith('dir:') ? { type: 'dir', path: arg.slice(4) } : undefined),
  open: (spec) => new DirTarget(spec.path),
};
