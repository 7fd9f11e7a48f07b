// A manifest (contract/disk-layout.ts: one JSON entry a line, sorted by path bytes) read as a
// stream, never held whole: a chunk of the file at a time, each entry with its key (the path's
// raw bytes as a latin1 string, so string order is byte order).
import { closeSync, openSync, readSync } from 'node:fs';
import type { ManifestEntry } from '../../contract/disk-layout.ts';

const ASCII = /^[\x20-\x7e]*$/;

/** latin1 key (raw path bytes) of a manifest entry. */
export function manifestKey(e: Pick<ManifestEntry, 'p' | 'pb'>): string {
  if (e.p !== undefined) return ASCII.test(e.p) ? e.p : Buffer.from(e.p, 'utf8').toString('latin1');
  return Buffer.from(e.pb ?? '', 'base64').toString('latin1');
}

/** Non-empty lines of a file, read in chunks (a missing file has none when `missingOk`). */
export function* fileLines(path: string, missingOk = false): Generator<string> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if (missingOk) return;
    throw e;
  }
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let rest = Buffer.alloc(0);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const chunk = rest.length ? Buffer.concat([rest, buf.subarray(0, n)]) : buf.subarray(0, n);
      const last = chunk.lastIndexOf(10);
      if (last < 0) {
        rest = Buffer.from(chunk);
        continue;
      }
      for (const l of chunk.toString('utf8', 0, last).split('\n')) if (l.trim()) yield l;
      rest = Buffer.from(chunk.subarray(last + 1));
    }
    if (rest.length && rest.toString('utf8').trim()) yield rest.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The entries of a manifest file, re-readable: each iteration reads the file again. */
export function manifestEntries(path: string): Iterable<ManifestEntry> {
  return {
    *[Symbol.iterator]() {
      for (const l of fileLines(path)) yield JSON.parse(l) as ManifestEntry;
    },
  };
}

/** Entries with their keys, checked to ascend strictly (a merge-join of unsorted input would be wrong). */
export function* keyedInOrder(entries: Iterable<ManifestEntry>, what: string): Generator<[string, ManifestEntry]> {
  let prev: string | undefined;
  for (const e of entries) {
    const k = manifestKey(e);
    if (prev !== undefined && !(prev < k)) throw new Error(`${what}: not sorted by path at ${JSON.stringify(Buffer.from(k, 'latin1').toString())} (a damaged manifest?)`);
    prev = k;
    yield [k, e];
  }
}
