// The local record of what reached the offsite target: <dataDir>/pullvault/state/uploads.jsonl,
// one line per archive whose archive AND manifest objects were both stored; appended + fsynced.
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { vaultLayout } from '../../contract/disk-layout.ts';
import type { Kind } from '../../contract/offsite-naming.ts';

export interface UploadRecord {
  v: 1;
  server: string;
  snapshot: string;
  kind: Kind;
  chainId: string;
  base?: string;
  key: string;
  manifestKey: string;
  /** ciphertext bytes stored */
  bytes: number;
  manifestBytes: number;
  /** sha256 (hex) of the stored archive bytes, computed while streaming */
  sha256: string;
  /** what the store returned (S3: ETag and the composite SHA-256 checksum) */
  etag?: string;
  checksum?: string;
  uploadedAt: string;
  seconds: number;
}

export function uploadsFile(dataDir: string): string {
  return vaultLayout(dataDir).uploads;
}

export async function readUploads(file: string): Promise<UploadRecord[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: UploadRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as UploadRecord);
    } catch {
      // a torn last line (power cut mid-append) is not a record
    }
  }
  return out;
}

export async function appendUpload(file: string, rec: UploadRecord): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const fh = await open(file, 'a', 0o600);
  try {
    await fh.write(JSON.stringify(rec) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
}
