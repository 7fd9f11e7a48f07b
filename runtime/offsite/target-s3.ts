// An S3 bucket (or an S3-compatible store) as the offsite store, written with the writer's
// write-once credentials: every object is created with If-None-Match: * (a single PUT or a
// multipart upload's completion), which the bucket policy requires, so nothing is ever replaced.
import type { Readable } from 'node:stream';
import { OFFSITE_KINDS } from '../../contract/offsite-kinds.ts';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { s3Client } from '../../lib/s3-client.ts';
import type { S3TargetSpec } from '../../contract/inventory-schema.ts';
import { checkKey, hashTap, MissingObjectError, ObjectExistsError, whenAborted, type ListedObject, type OffsiteTargetKind, type PutResult, type Target } from './target.ts';

export interface S3TargetOptions {
  client: S3Client;
  bucket: string;
  prefix: string;
  storageClass?: string;
  /** multipart part size (bytes) and parallel parts: memory is about partSize × (queueSize + 1) */
  partSize?: number;
  queueSize?: number;
  /** objects per ListObjectsV2 page (MaxKeys) */
  listPageSize?: number;
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
      const r = await this.o.client.send(new ListObjectsV2Command({ Bucket: this.o.bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: this.o.listPageSize }));
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

export const s3TargetKind: OffsiteTargetKind<S3TargetSpec> = {
  type: 's3',
  credentials: OFFSITE_KINDS.s3.credentials,
  argForm: 's3://BUCKET/PREFIX/',
  parseArg(arg, o) {
    const m = /^s3:\/\/([^/]+)\/(.*)$/.exec(arg);
    if (!m) return undefined;
    const prefix = m[2] === '' || m[2].endsWith('/') ? m[2] : `${m[2]}/`;
    return { type: 's3', bucket: m[1], prefix, region: o.region ?? 'us-east-1', retentionDays: { full: 1, incremental: 1 }, ...(o.endpoint ? { endpoint: o.endpoint } : {}) };
  },
  withEndpoint: (spec, endpoint) => ({ ...spec, endpoint }),
  open(spec, creds, tuning) {
    const { timeouts, ...sizes } = tuning;
    const s3 = s3Client({
      region: spec.region,
      endpoint: spec.endpoint ?? creds?.endpoint,
      timeouts,
      credentials: creds ? { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey, sessionToken: creds.sessionToken } : undefined,
    });
    return new S3Target({ client: s3, bucket: spec.bucket, prefix: spec.prefix, storageClass: spec.storageClass, ...sizes });
  },
};
