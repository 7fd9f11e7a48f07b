// The OffsiteTarget seam: what a store of archives must do (put once, list, get, close), and
// what a kind of store brings with it (its credentials, how to open it, its --target form; its
// schema fragment is its member of the inventory's `offsite` union, in the contract, where the
// admin side validates it — the Pi's bundle carries no schema library). The kinds:
// target-dir.ts (a folder: a second disk, the demo) and target-s3.ts (a bucket written with
// write-once credentials); the registry is open-target.ts; every kind passes
// test/conformance/offsite-target.ts. Same keys, same bytes in all.
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import type { AwsTimeouts } from '../../lib/s3-client.ts';

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

/** {accessKeyId, secretAccessKey} and where they apply: the file install-runtime puts on the Pi (0600). */
export interface CredentialsFile {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  region?: string;
  bucket?: string;
  prefix?: string;
  endpoint?: string;
}

export interface TargetTuning {
  partSize?: number;
  queueSize?: number;
  /** objects per list request (S3: MaxKeys; default the store's, 1000) */
  listPageSize?: number;
  /** default AWS_TIMEOUTS (lib/s3-client.ts) */
  timeouts?: Partial<AwsTimeouts>;
}

/** A kind of offsite store. */
export interface OffsiteTargetKind<S extends { type: string } = { type: string }> {
  /** the `type` of its member of the inventory's `offsite` union */
  type: S['type'];
  /** 'file': it needs the credentials file (paths.awsCredentialsFile on the Pi, --credentials for restore) */
  credentials: 'none' | 'file';
  /** its `--target` form, for messages: "dir:PATH" */
  argForm: string;
  /** the spec a `--target` string names, when it is this kind's ("dir:/path", "s3://bucket/prefix/") */
  parseArg(arg: string, o: { region?: string; endpoint?: string }): S | undefined;
  /** the spec with --endpoint applied, where the kind has one */
  withEndpoint?(spec: S, endpoint: string): S;
  open(spec: S, creds: CredentialsFile | undefined, tuning: TargetTuning): Target;
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

/** Keys are relative paths without empty, '.' or '..' parts, the same for every kind of store. */
export function checkKey(key: string): void {
  if (key.startsWith('/') || key.split('/').some((c) => c === '' || c === '.' || c === '..')) throw new Error(`bad object key: ${key}`);
}

