// The stream pieces of flat memory: the external sort (tiny runs so every path merges from disk),
// the manifest stream reader and the merge-join incremental selection.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pathFields, type ManifestEntry } from '../../contract/disk-layout.ts';
import { compareBytesText, compareTreeText, ExternalSorter } from '../../runtime/archive/external-sort.ts';
import { manifestEntries, manifestKey } from '../../runtime/archive/manifest-stream.ts';
import { compareTreeOrder } from '../../runtime/archive/tar-format.ts';
import { selectIncremental } from '../../runtime/offsite/select.ts';

let tmp: string;
beforeEach(() => (tmp = mkdtempSync(join(tmpdir(), 'mstream-'))));
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

/** pseudo-random latin1 strings with the bytes that sort oddly: "/", NUL, newline, 0x7f–0xff, UTF-8 sequences */
function oddStrings(n: number, seed = 7): string[] {
  const alphabet = ['a', 'b', '/', '-', '\0', '\n', '\x7f', '\x80', '\xff', '\xc3\xa9', '\xe2\x82\xac', 'Z', '.'];
  let x = seed;
  const rnd = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff), x);
  return Array.from({ length: n }, () => Array.from({ length: 1 + (rnd() % 8) }, () => alphabet[rnd() % alphabet.length]).join(''));
}

describe('external sort', () => {
  it('many tiny runs merge to the same order as an in-memory sort, byte order and tree order', () => {
    const recs = oddStrings(3000);
    for (const cmp of [compareBytesText, compareTreeText]) {
      const s = new ExternalSorter(tmp, cmp, 200); // a run every few records
      for (const r of recs) s.add(r);
      expect([...s.sorted()]).toEqual([...recs].sort(cmp));
      s.dispose();
    }
    expect(readdirSync(tmp)).toEqual([]);
  });
  it('tree order on strings is compareTreeOrder on the bytes', () => {
    const recs = oddStrings(500, 3);
    const viaBuffers = recs.map((r) => Buffer.from(r, 'latin1')).sort(compareTreeOrder).map((b) => b.toString('latin1'));
    expect([...recs].sort(compareTreeText)).toEqual(viaBuffers);
  });
  it('unique drops duplicates across runs; toList is re-readable; empty input', () => {
    const s = new ExternalSorter(tmp, compareBytesText, 100);
    for (const r of ['b', 'a', 'b', 'c', 'a', 'a', 'b\n', 'b']) s.add(r);
    const list = s.toList(true);
    expect(list.count).toBe(4);
    expect([...list]).toEqual(['a', 'b', 'b\n', 'c']);
    expect([...list]).toEqual(['a', 'b', 'b\n', 'c']);
    s.dispose();
    const e = new ExternalSorter(tmp);
    expect([...e.sorted()]).toEqual([]);
    e.dispose();
  });
  it('a record larger than the read chunk', () => {
    const s = new ExternalSorter(tmp, compareBytesText, 10);
    const big = 'x'.repeat(200_000);
    for (const r of ['z', big, 'a']) s.add(r);
    expect([...s.sorted()]).toEqual(['a', big, 'z']);
    s.dispose();
  });
});

const ent = (raw: string, extra: Partial<ManifestEntry> = {}): ManifestEntry => ({ ...pathFields(Buffer.from(raw, 'latin1')), t: 'f', s: 1, m: 1, mode: 0o644, u: 0, g: 0, h: 'x', ...extra });
const keys = (bs: Buffer[]) => bs.map((b) => b.toString('latin1'));
const sortedEntries = (raws: string[], extra: (r: string) => Partial<ManifestEntry> = () => ({})) => [...raws].sort(compareBytesText).map((r) => ent(r, extra(r)));

describe('manifest stream and merge-join selection', () => {
  it('reads a manifest file lazily and re-readably, keys are raw bytes', () => {
    const es = sortedEntries(['files/a', 'files/\xe9', 'files/\xc3\xa9', 'files/new\nline']);
    const file = join(tmp, 'manifest.jsonl');
    writeFileSync(file, es.map((e) => JSON.stringify(e)).join('\n') + '\n');
    const m = manifestEntries(file);
    expect([...m].map(manifestKey)).toEqual(es.map(manifestKey));
    expect([...m].length).toBe(4);
  });
  it('equal manifests: nothing selected', () => {
    const es = sortedEntries(oddStrings(400).map((s) => `files/${s.replace(/\0/g, '')}`).filter((s, i, a) => a.indexOf(s) === i));
    const s = selectIncremental(es, es);
    expect(s.include).toEqual([]);
    expect(s.deletions).toEqual([]);
  });
  it('insertions and deletions at the ends, in the middle, and paths that sort oddly', () => {
    const old = sortedEntries(['files/b', 'files/c', 'files/\xff', 'files/a\n']);
    const cur = sortedEntries(['files/0', 'files/b', 'files/c-', 'files/\xc3\xa9', 'files/\xff', 'files/\xff\xff']);
    const s = selectIncremental(old, cur);
    expect(keys(s.include).sort()).toEqual(['files/0', 'files/c-', 'files/\xc3\xa9', 'files/\xff\xff'].sort());
    expect(keys(s.deletions).sort()).toEqual(['files/a\n', 'files/c'].sort());
    expect(s.changedFiles).toBe(4);
  });
  it('every change kind of a big pair matches a map-based reference', () => {
    const names = [...new Set(oddStrings(2000, 11).map((s) => s.replace(/[\0/]/g, '_')))];
    const old = sortedEntries(names.filter((_, i) => i % 5 !== 0), (r) => ({ h: r.length % 3 ? 'a' : 'b' }));
    const cur = sortedEntries(names.filter((_, i) => i % 7 !== 0), () => ({ h: 'a' }));
    const s = selectIncremental(old, cur);
    const om = new Map(old.map((e) => [manifestKey(e), e]));
    const nm = new Map(cur.map((e) => [manifestKey(e), e]));
    const want = [...nm.keys()].filter((k) => !om.has(k) || om.get(k)!.h !== nm.get(k)!.h);
    expect(keys(s.include).sort()).toEqual(want.sort());
    expect(keys(s.deletions).sort()).toEqual([...om.keys()].filter((k) => !nm.has(k)).sort());
  });
  it('unsorted input is refused, never half-compared', () => {
    expect(() => selectIncremental([ent('b'), ent('a')], [])).toThrow(/not sorted/);
    expect(() => selectIncremental([], [ent('a'), ent('a')])).toThrow(/not sorted/);
  });
  it('a deleted path whose directory is gone too: the directory is not included', () => {
    const d = (p: string): ManifestEntry => ({ p, t: 'd', s: 0, m: 1, mode: 0o755, u: 0, g: 0 });
    const s = selectIncremental([d('files'), d('files/x'), ent('files/x/y')], [d('files')]);
    expect(keys(s.deletions)).toEqual(['files/x']);
    expect(keys(s.include)).toEqual(['files']);
  });
});
