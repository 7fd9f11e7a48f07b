// The access keys provision-aws hands out, in state/aws/*.json (0600 in a 0700 dir), read by
// provision-pi (writer, copied onto the Pi) and by restore on the admin machine (restore).
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  userName: string;
  region: string;
  bucket: string;
  prefix: string;
  endpoint?: string;
  /** the storage class uploads go straight into (offsite.storageClass), when not STANDARD */
  storageClass?: string;
}

export type CredentialsRole = 'writer' | 'restore';

export function credentialsFile(stateDir: string, role: CredentialsRole): string {
  return path.join(stateDir, 'aws', `${role}-credentials.json`);
}

export function readCredentials(file: string): S3Credentials | null {
  if (!existsSync(file)) return null;
  try {
    const c = JSON.parse(readFileSync(file, 'utf8')) as S3Credentials;
    return typeof c.accessKeyId === 'string' && typeof c.secretAccessKey === 'string' ? c : null;
  } catch {
    return null;
  }
}

/** Writes atomically (temp + rename), 0600, in a 0700 directory (the state root too). */
export function writeCredentials(file: string, c: S3Credentials): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  chmodSync(path.dirname(dir), 0o700);
  const tmp = `${file}.tmp-${process.pid}`;
  const ordered: S3Credentials = {
    accessKeyId: c.accessKeyId,
    secretAccessKey: c.secretAccessKey,
    userName: c.userName,
    region: c.region,
    bucket: c.bucket,
    prefix: c.prefix,
    ...(c.endpoint ? { endpoint: c.endpoint } : {}),
    ...(c.storageClass ? { storageClass: c.storageClass } : {}),
  };
  writeFileSync(tmp, JSON.stringify(ordered, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}
