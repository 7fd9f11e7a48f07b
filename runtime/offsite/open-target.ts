// Builds a Target from the inventory's offsite spec (or a --target string) and credentials.
import { readFile } from 'node:fs/promises';
import { s3Client, type AwsCredentials, type AwsTimeouts } from '../../lib/s3-client.ts';
import type { OffsiteSpec } from '../../contract/inventory-schema.ts';
import { DirTarget, S3Target, type Target } from './target.ts';

export interface CredentialsFile extends AwsCredentials {
  region?: string;
  bucket?: string;
  prefix?: string;
  endpoint?: string;
}

export async function readCredentials(file: string): Promise<CredentialsFile> {
  const c = JSON.parse(await readFile(file, 'utf8')) as CredentialsFile;
  if (!c.accessKeyId || !c.secretAccessKey) throw new Error(`${file}: needs accessKeyId and secretAccessKey`);
  return c;
}

export interface TargetTuning {
  partSize?: number;
  queueSize?: number;
  /** default AWS_TIMEOUTS (lib/s3-client.ts) */
  timeouts?: Partial<AwsTimeouts>;
}

export function openTarget(spec: OffsiteSpec, creds?: CredentialsFile, tuning: TargetTuning = {}): Target {
  if (spec.type === 'dir') return new DirTarget(spec.path);
  const endpoint = spec.endpoint ?? creds?.endpoint;
  const { timeouts, ...sizes } = tuning;
  const s3 = s3Client({
    region: spec.region,
    endpoint,
    timeouts,
    credentials: creds ? { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey, sessionToken: creds.sessionToken } : undefined,
  });
  return new S3Target({ client: s3, bucket: spec.bucket, prefix: spec.prefix, storageClass: spec.storageClass, ...sizes });
}

/** "dir:/path" or "s3://bucket/prefix/" → an offsite spec. */
export function parseTargetArg(arg: string, region?: string, endpoint?: string): OffsiteSpec {
  if (arg.startsWith('dir:')) return { type: 'dir', path: arg.slice(4) };
  const m = /^s3:\/\/([^/]+)\/(.*)$/.exec(arg);
  if (!m) throw new Error(`--target: expected dir:PATH or s3://BUCKET/PREFIX/, got ${arg}`);
  const prefix = m[2] === '' || m[2].endsWith('/') ? m[2] : `${m[2]}/`;
  return { type: 's3', bucket: m[1], prefix, region: region ?? 'us-east-1', retentionDays: { full: 1, incremental: 1 }, ...(endpoint ? { endpoint } : {}) };
}
