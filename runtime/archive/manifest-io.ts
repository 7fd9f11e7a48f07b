// Reading JSON lines (manifest.jsonl: contract/disk-layout.ts) from a stream, one at a time: never a whole manifest in memory.
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

export async function* readJsonLines<T>(input: Readable): AsyncGenerator<T> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const line of rl) if (line.trim() !== '') yield JSON.parse(line) as T;
}

