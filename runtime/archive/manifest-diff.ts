// An incremental's manifest as a change: a diff (the "normal" format of diff(1), which GNU
// `patch` applies) of the snapshot's manifest.jsonl against its base's. Both manifests are sorted
// by path bytes, so the diff is a merge-join of the two files, streamed: a line that is the same
// in both is context, a path only in the base is a deletion, only in the new one an addition, in
// both with other fields a change. Applying streams too (the base's lines, the diff's lines, out
// come the new lines), checking every line the diff removes against the base: a diff applied to
// another base fails instead of giving a wrong manifest. Nothing is held whole: a hunk is cut at
// HUNK_LINES lines (adjacent hunks are still a valid diff).
import type { ManifestEntry } from '../../contract/disk-layout.ts';
import { BatchedWriter } from './batched-writer.ts';
import { fileLines, manifestKey } from './manifest-stream.ts';

/** the `manifest` field of a manifest object's header (absent in objects before it: whole) */
export type ManifestForm = 'whole' | 'diff';

/** The archive member of an incremental that holds its manifest diff (docs/restore-by-hand.md §4). */
export const MANIFEST_DIFF_MEMBER = '.pullvault/manifest.diff';

const HUNK_LINES = 4096;

/** Lines to a file, written in batches. */
export class LineWriter extends BatchedWriter {
  line(l: string): void {
    this.push(Buffer.from(l + '\n', 'utf8'));
  }
}

/**
 * A manifest's lines, each one's key parsed only when asked (a line the same in both manifests
 * needs none: most of them), the keys asked checked to ascend (a merge of unsorted input would be wrong).
 */
class LineCursor {
  private it: Iterator<string>;
  line: string | undefined;
  private k: string | undefined;
  private prev: string | undefined;
  constructor(lines: Iterable<string>, private readonly what: string) {
    this.it = lines[Symbol.iterator]();
    this.next();
  }
  next(): void {
    const r = this.it.next();
    this.line = r.done ? undefined : r.value;
    this.k = undefined;
  }
  key(): string {
    if (this.k === undefined) {
      const k = manifestKey(JSON.parse(this.line!) as ManifestEntry);
      if (this.prev !== undefined && !(this.prev < k)) throw new Error(`${this.what}: not sorted by path at ${JSON.stringify(Buffer.from(k, 'latin1').toString())} (a damaged manifest?)`);
      this.prev = this.k = k;
    }
    return this.k;
  }
  close(): void {
    this.it.return?.(undefined);
  }
}

export interface DiffStats {
  /** base lines removed (deleted or changed) and new lines added */
  removed: number;
  added: number;
}

const range = (from: number, n: number) => (n === 1 ? `${from}` : `${from},${from + n - 1}`);

/** Writes the diff from the manifest file `baseFile` to `curFile` into `out`. */
export function writeManifestDiff(baseFile: string, curFile: string, out: string): DiffStats {
  const w = new LineWriter(out);
  const stats: DiffStats = { removed: 0, added: 0 };
  try {
    const x = new LineCursor(fileLines(baseFile), 'base manifest');
    const y = new LineCursor(fileLines(curFile), 'manifest');
    /** lines of each side consumed; where the open hunk starts */
    let na = 0;
    let nb = 0;
    let startA = 0;
    let startB = 0;
    let del: string[] = [];
    let add: string[] = [];
    const flush = () => {
      if (del.length && add.length) w.line(`${range(startA + 1, del.length)}c${range(startB + 1, add.length)}`);
      else if (del.length) w.line(`${range(startA + 1, del.length)}d${startB}`);
      else if (add.length) w.line(`${startA}a${range(startB + 1, add.length)}`);
      else return;
      for (const l of del) w.line(`< ${l}`);
      if (del.length && add.length) w.line('---');
      for (const l of add) w.line(`> ${l}`);
      stats.removed += del.length;
      stats.added += add.length;
      del = [];
      add = [];
    };
    const open = () => {
      if (!del.length && !add.length) {
        startA = na;
        startB = nb;
      }
    };
    try {
      while (x.line !== undefined || y.line !== undefined) {
        if (x.line !== undefined && x.line === y.line) {
          flush();
          na++;
          nb++;
          x.next();
          y.next();
          continue;
        }
        const c = x.line === undefined ? 1 : y.line === undefined ? -1 : x.key() < y.key() ? -1 : x.key() > y.key() ? 1 : 0;
        open();
        if (c <= 0) {
          del.push(x.line!);
          na++;
          x.next();
        }
        if (c >= 0) {
          add.push(y.line!);
          nb++;
          y.next();
        }
        if (del.length + add.length >= HUNK_LINES) flush();
      }
      flush();
    } finally {
      x.close();
      y.close();
    }
  } finally {
    w.close();
  }
  return stats;
}

const HUNK = /^(\d+)(?:,(\d+))?([acd])(\d+)(?:,(\d+))?$/;

/** The new manifest's lines: `base`'s lines with `diff` applied, streamed; throws on a diff that does not fit `base`. */
export function* applyManifestDiff(base: Iterable<string>, diff: Iterable<string>, what: string): Generator<string> {
  const bi = base[Symbol.iterator]();
  const di = diff[Symbol.iterator]();
  let n = 0;
  let written = 0;
  const bad = (why: string) => new Error(`${what}: the manifest diff does not fit its base (${why})`);
  const baseLine = () => {
    const r = bi.next();
    if (r.done) throw bad(`the base has only ${n} lines`);
    n++;
    return r.value;
  };
  const diffLine = (prefix: string) => {
    const r = di.next();
    if (r.done || !r.value.startsWith(prefix)) throw bad(`expected "${prefix}" after line ${n}`);
    return r.value.slice(prefix.length);
  };
  try {
    for (let h = di.next(); !h.done; h = di.next()) {
      const m = HUNK.exec(h.value);
      if (!m) throw bad(`not a hunk header: ${JSON.stringify(h.value.slice(0, 80))}`);
      const a1 = Number(m[1]);
      const a2 = m[2] !== undefined ? Number(m[2]) : a1;
      const op = m[3];
      const b1 = Number(m[4]);
      const b2 = m[5] !== undefined ? Number(m[5]) : b1;
      // copy the unchanged lines up to the hunk
      const upTo = op === 'a' ? a1 : a1 - 1;
      if (upTo < n) throw bad(`hunks out of order at ${h.value}`);
      while (n < upTo) {
        yield baseLine();
        written++;
      }
      if ((op === 'd' ? written : written + 1) !== b1) throw bad(`hunk ${h.value} at new line ${written + 1}`);
      if (op !== 'a') for (let i = a1; i <= a2; i++) if (diffLine('< ') !== baseLine()) throw bad(`line ${i} differs`);
      if (op === 'c') diffLine('---');
      if (op !== 'd')
        for (let i = b1; i <= b2; i++) {
          yield diffLine('> ');
          written++;
        }
    }
    for (let r = bi.next(); !r.done; r = bi.next()) yield r.value;
  } finally {
    bi.return?.(undefined);
    di.return?.(undefined);
  }
}

export interface Totals {
  files: number;
  bytes: number;
}

/** Files and bytes of file content of whole-manifest lines. */
export function entryTotals(lines: Iterable<string>): Totals {
  const t: Totals = { files: 0, bytes: 0 };
  for (const l of lines) {
    const e = JSON.parse(l) as ManifestEntry;
    if (e.t !== 'f') continue;
    t.files++;
    t.bytes += e.s;
  }
  return t;
}

/** What a diff changes in the files and bytes: the lines it adds minus the lines it removes. */
export function diffTotals(lines: Iterable<string>): Totals {
  const t: Totals = { files: 0, bytes: 0 };
  for (const l of lines) {
    const sign = l.startsWith('> ') ? 1 : l.startsWith('< ') ? -1 : 0;
    if (!sign) continue;
    const e = JSON.parse(l.slice(2)) as ManifestEntry;
    if (e.t !== 'f') continue;
    t.files += sign;
    t.bytes += sign * e.s;
  }
  return t;
}
