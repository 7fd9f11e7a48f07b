// Reading manifest.jsonl (the format is contract/disk-layout.ts) line by line.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { ManifestEntry } from '../../contract/disk-layout.ts';

export async function* readJsonLines<T>(input: Readable): AsyncGenerator<T> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const line of rl) if (line.trim() !== '') yield JSON.parse(line) as T;
}

export async function readManifestFile(file: string): Promise<ManifestEntry[]> {
  const out: ManifestEntry[] = [];
  for await (const e of readJsonLines<ManifestEntry>(createReadStream(file))) out.push(e);
  return out;
}
