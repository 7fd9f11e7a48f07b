// Offsite targets behind one interface: an S3 bucket written with write-once credentials
// (If-None-Match: *) or a folder (a second disk, the demo). Same keys, same bytes in both.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

export interface ListedObject {
  key: string;
  size: number;
  /** when the store took it (S3 LastModified, a folder's mtime): a clock the Pi does not set */
  modified?: Date;
}

export interface PutResult {
  key: string;
  bytes: number;
  sha256: string;
  etag?: string;
  checksum?: string;
}

export interface Target {
  /** for messages: "s3://bucket/prefix" or "dir:/path" */
  readonly label: string;
  /** the key prefix the layout starts at ('' for a folder) */
  readonly prefix: string;
  /**
   * stores a new object; never replaces one: ObjectExistsError if the key is taken. When `signal`
   * aborts, the upload is abandoned and put rejects with the signal's reason at once.
   */
  put(key: string, body: Readable, onProgress?: (bytes: number) => void, signal?: AbortSignal): Promise<PutResult>;
  list(prefix: string): Promise<ListedObject[]>;
  get(key: string): Promise<Readable>;
  /** lets go of connections (requests still in flight fail) */
  close(): void;
}

/** Rejects with the signal's reason when it aborts (never resolves otherwise). */
export function whenAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

export class ObjectExistsError extends Error {
  constructor(readonly key: string, where: string) {
    super(`${where}: object ${key} already exists; refusing to overwrite it`);
  }
}

export class MissingObjectError extends Error {
  constructor(readonly key: string, where: string) {
    super(`${where}: object ${key} is missing`);
  }
}

/** Counts and hashes (sha256) what passes through: the stored bytes on upload, the fetched bytes on restore. */
export function hashTap(onProgress?: (n: number) => void): Transform & { bytes: () => number; digest: () => string } {
  const h = createHash('sha256');
  let n = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      n += chunk.length;
      onProgress?.(n);
      cb(null, chunk);
    },
  }) as Transform & { bytes: () => number; digest: () => string };
  let d: string | undefined;
  t.bytes = () => n;
  t.digest = () => (d ??= h.digest('hex'));
  return t;
}

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

function checkKey(key: string): void {
  if (key.startsWith('/') || key.split('/').some((c) => c === '' || c === '.' || c === '..')) throw new Error(`bad object key: ${key}`);
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

export interface S3TargetOptions {
  client: S3Client;
  bucket: string;
  prefix: string;
  storageClass?: string;
  /** multipart part size (bytes) and parallel parts: memory is about partSize × (queueSize + 1) */
  partSize?: number;
  queueSize?: number;
}

export class S3Target implements Target {
  readonly label: string;
  readonly prefix: string;
  private closed = false;
  constructor(private readonly o: S3TargetOptions) {
    this.prefix = o.prefix;
    this.label = `s3://${o.bucket}/${o.prefix}`;
    // once closed, no request starts, retries included: after an abort, lib-storage still sends
    // AbortMultipartUpload, which a silent store would hold for the idle timeout × attempts
    o.client.middlewareStack.add(
      (next) => async (args) => {
        if (this.closed) throw Object.assign(new Error(`${this.label}: closed; request not sent`), { name: 'TargetClosed' });
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low' },
    );
  }

  async put(key: string, body: Readable, onProgress?: (bytes: number) => void, signal?: AbortSignal): Promise<PutResult> {
    checkKey(key);
    signal?.throwIfAborted();
    const t = hashTap(onProgress);
    body.on('error', (e) => t.destroy(e));
    body.pipe(t);
    const up = new Upload({
      client: this.o.client,
      params: {
        Bucket: this.o.bucket,
        Key: key,
        Body: t,
        IfNoneMatch: '*',
        ...(this.o.storageClass ? { StorageClass: this.o.storageClass as never } : {}),
        ChecksumAlgorithm: 'SHA256',
        ContentType: 'application/octet-stream',
      },
      partSize: this.o.partSize ?? 16 * 1024 * 1024,
      queueSize: this.o.queueSize ?? 2,
      // an upload that fails is aborted: no half object, no parts left to pay for
      leavePartsOnError: false,
    });
    let failed: unknown;
    t.on('error', (e) => {
      failed ??= e;
      void up.abort();
    });
    const onAbort = () => {
      failed ??= signal!.reason;
      void up.abort();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    // after an abort, done() may still wait for AbortMultipartUpload from a store that does not
    // answer: put rejects at once instead (the lifecycle rule removes parts left behind)
    const done = up.done();
    done.catch(() => undefined);
    try {
      const r = await (signal ? Promise.race([done, whenAborted(signal)]) : done);
      if (failed) throw failed;
      return { key, bytes: t.bytes(), sha256: t.digest(), etag: r.ETag?.replace(/"/g, ''), checksum: r.ChecksumSHA256 };
    } catch (e) {
      body.destroy();
      t.destroy();
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (err.$metadata?.httpStatusCode === 412 || err.name === 'PreconditionFailed') throw new ObjectExistsError(key, this.label);
      throw failed ?? e;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async list(prefix: string): Promise<ListedObject[]> {
    const out: ListedObject[] = [];
    let token: string | undefined;
    do {
      const r = await this.o.client.send(new ListObjectsV2Command({ Bucket: this.o.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of r.Contents ?? []) if (o.Key) out.push({ key: o.Key, size: o.Size ?? 0, ...(o.LastModified ? { modified: o.LastModified } : {}) });
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async get(key: string): Promise<Readable> {
    try {
      const r = await this.o.client.send(new GetObjectCommand({ Bucket: this.o.bucket, Key: key }));
      return r.Body as Readable;
    } catch (e) {
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404) throw new MissingObjectError(key, this.label);
      throw e;
    }
  }

  close(): void {
    this.closed = true;
    this.o.client.destroy();
  }
}
