// Sorting more records than memory should hold: records (latin1 strings, one char per byte, so any
// bytes including NUL and newline) are kept in memory up to a byte budget, then sorted and
// written to a run file; the sorted output is a k-way merge of the runs (a binary heap), read
// back a chunk at a time. Memory is the budget plus one read buffer per run, whatever the count.
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { BatchedWriter } from './batched-writer.ts';
import { join } from 'node:path';

export type CompareText = (a: string, b: string) => number;

/** Byte order of latin1 strings (JS string order is code-unit order, and latin1 code units are the bytes). */
export const compareBytesText: CompareText = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/** compareTreeOrder (tar-format.ts) on latin1 strings: "/" sorts below every byte, so a subtree stays together. */
export const compareTreeText: CompareText = (a, b) => {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return (x === 0x2f ? -1 : x) - (y === 0x2f ? -1 : y);
  }
  return a.length - b.length;
};

/** V8's cost of a short string beyond its characters, for the budget */
const PER_RECORD = 40;
const READ_CHUNK = 1 << 16;

/** Length-prefixed (uint32 LE) latin1 records written to a file in batches. */
class RecordWriter extends BatchedWriter {
  write(rec: string): void {
    const b = Buffer.allocUnsafe(4 + rec.length);
    b.writeUInt32LE(rec.length, 0);
    b.write(rec, 4, 'latin1');
    this.push(b);
  }
}

/** The records of a RecordWriter's file, in order. */
export function* readRecords(path: string): Generator<string> {
  const fd = openSync(path, 'r');
  try {
    let buf = Buffer.allocUnsafe(READ_CHUNK);
    let have = 0;
    let at = 0;
    for (;;) {
      if (have - at >= 4) {
        const len = buf.readUInt32LE(at);
        if (have - at >= 4 + len) {
          yield buf.toString('latin1', at + 4, at + 4 + len);
          at += 4 + len;
          continue;
        }
        if (4 + len > buf.length) {
          const bigger = Buffer.allocUnsafe(4 + len + READ_CHUNK);
          buf.copy(bigger, 0, at, have);
          buf = bigger;
          have -= at;
          at = 0;
        }
      }
      if (at > 0) {
        buf.copy(buf, 0, at, have);
        have -= at;
        at = 0;
      }
      const n = readSync(fd, buf, have, buf.length - have, null);
      if (n === 0) {
        if (have !== 0) throw new Error(`${path}: truncated record`);
        return;
      }
      have += n;
    }
  } finally {
    closeSync(fd);
  }
}

/** A list of records on disk that can be read any number of times. */
export interface RecordList extends Iterable<string> {
  readonly count: number;
}

export class ExternalSorter {
  private mem: string[] = [];
  private memBytes = 0;
  private runs: string[] = [];
  private dir: string | undefined;
  count = 0;
  /** `tmpParent`: where the run files go (a directory of its own is made there and removed by dispose) */
  constructor(
    private readonly tmpParent: string,
    private readonly cmp: CompareText = compareBytesText,
    private readonly runBytes = 8 << 20,
  ) {}

  add(rec: string): void {
    this.mem.push(rec);
    this.memBytes += rec.length + PER_RECORD;
    this.count++;
    if (this.memBytes >= this.runBytes) this.spill();
  }

  private tmp(name: string): string {
    this.dir ??= mkdtempSync(join(this.tmpParent, '.sort-'));
    return join(this.dir, name);
  }

  private spill(): void {
    this.mem.sort(this.cmp);
    const path = this.tmp(`run-${this.runs.length}`);
    const w = new RecordWriter(path);
    try {
      for (const r of this.mem) w.write(r);
    } finally {
      w.close();
    }
    this.runs.push(path);
    this.mem = [];
    this.memBytes = 0;
  }

  /** Every record added, in order; `unique` drops records equal to the one before. Once only. */
  *sorted(unique = false): Generator<string> {
    let last: string | undefined;
    const emit = (r: string) => {
      if (unique && last !== undefined && this.cmp(last, r) === 0) return false;
      last = r;
      return true;
    };
    if (!this.runs.length) {
      this.mem.sort(this.cmp);
      const mem = this.mem;
      this.mem = [];
      for (const r of mem) if (emit(r)) yield r;
      return;
    }
    if (this.mem.length) this.spill();
    const its = this.runs.map((p) => readRecords(p));
    // heap of [record, run index]
    const heap: [string, number][] = [];
    const less = (a: [string, number], b: [string, number]) => {
      const c = this.cmp(a[0], b[0]);
      return c < 0 || (c === 0 && a[1] < b[1]);
    };
    const down = (i: number) => {
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
        if (m === i) return;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    };
    try {
      its.forEach((it, k) => {
        const n = it.next();
        if (!n.done) heap.push([n.value, k]);
      });
      for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i);
      while (heap.length) {
        const top = heap[0]!;
        if (emit(top[0])) yield top[0];
        const n = its[top[1]]!.next();
        if (n.done) {
          const lastEl = heap.pop()!;
          if (heap.length) heap[0] = lastEl;
        } else top[0] = n.value;
        if (heap.length) down(0);
      }
    } finally {
      for (const it of its) it.return(undefined);
    }
  }

  /** The sorted records written to one file, readable again and again (until dispose). */
  toList(unique = false): RecordList {
    const path = this.tmp('sorted');
    const w = new RecordWriter(path);
    let count = 0;
    try {
      for (const r of this.sorted(unique)) {
        w.write(r);
        count++;
      }
    } finally {
      w.close();
    }
    for (const r of this.runs) rmSync(r, { force: true });
    this.runs = [];
    return { count, [Symbol.iterator]: () => readRecords(path) };
  }

  dispose(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
    this.mem = [];
    this.runs = [];
  }
}
