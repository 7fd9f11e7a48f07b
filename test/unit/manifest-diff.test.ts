// The incremental's manifest as a diff (runtime/archive/manifest-diff.ts): what it writes turns
// the base into the new manifest byte for byte, applied streaming by the runtime and by GNU patch
// (the by-hand route), and a diff refuses a base it was not made for.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pathFields, type ManifestEntry } from '../../contract/disk-layout.ts';
import { compareBytesText } from '../../runtime/archive/external-sort.ts';
import { applyManifestDiff, diffTotals, entryTotals, writeManifestDiff } from '../../runtime/archive/manifest-diff.ts';
import { fileLines } from '../../runtime/archive/manifest-stream.ts';
import { composeManifest, objectTotals, openManifestObject } from '../../runtime/offsite/manifest-chain.ts';

let tmp: string;
beforeEach(() => (tmp = mkdtempSync(join(tmpdir(), 'mdiff-'))));
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

const line = (raw: string, s: number, t: 'f' | 'd' = 'f') => JSON.stringify({ ...pathFields(Buffer.from(raw, 'latin1')), m: 1, mode: 420, u: 0, g: 0, t, s, ...(t === 'f' ? { h: 'ab' } : {}) } as ManifestEntry);
/** a manifest file of [raw latin1 path, size] pairs, sorted by path bytes */
function manifest(name: string, entries: [string, number][]): string {
  const f = join(tmp, name);
  writeFileSync(f, entries.sort((a, b) => compareBytesText(a[0], b[0])).map(([p, s]) => line(p, s, s < 0 ? 'd' : 'f') + '\n').join(''));
  return f;
}

function roundTrip(base: [string, number][], cur: [string, number][]) {
  const a = manifest('a.jsonl', base);
  const b = manifest('b.jsonl', cur);
  const d = join(tmp, 'd.diff');
  const stats = writeManifestDiff(a, b, d);
  const applied = [...applyManifestDiff(fileLines(a), fileLines(d), 'test')];
  expect(applied.map((l) => l + '\n').join('')).toEqual(readFileSync(b, 'utf8'));
  if (readFileSync(d).length) {
    const out = join(tmp, 'patched');
    execFileSync('patch', ['-s', '-f', '-r', '-', '-o', out, a, d]);
    expect(readFileSync(out)).toEqual(readFileSync(b));
  }
  return { a, b, d, stats };
}

describe('manifest diff', () => {
  const base: [string, number][] = Array.from({ length: 200 }, (_, i) => [`files/d${i % 7}/f${i}`, i]);
  it('deletions, additions, changes, odd names, at the ends too; GNU patch gives the same file', () => {
    const cur = base.filter(([p]) => !/f(0|1|5\d|199)$/.test(p)).map(([p, s]): [string, number] => (/f1\d$/.test(p) ? [p, s + 1000] : [p, s]));
    cur.push(['files/d0/new\nline', 5], ['files/d3/caf\xe9', 7], ['a-first', 1], ['zz-last', 2], ['files/d9', -1]);
    const { d, stats } = roundTrip(base, cur);
    expect(stats.added).toBe(15);
    expect(stats.removed).toBe(2 + 10 + 10 + 1);
    const t = diffTotals(fileLines(d));
    const whole = (f: [string, number][]) => entryTotals(fileLines(manifest('t.jsonl', f)));
    expect({ files: whole(base).files + t.files, bytes: whole(base).bytes + t.bytes }).toEqual(whole(cur));
  });
  it('no change is an empty diff; from nothing and to nothing', () => {
    expect(readFileSync(roundTrip(base, base).d, 'utf8')).toBe('');
    roundTrip([], base);
    roundTrip(base, []);
  });
  it('a change larger than a hunk goes as adjacent hunks', () => {
    const big: [string, number][] = Array.from({ length: 10000 }, (_, i) => [`p${String(i).padStart(6, '0')}`, 1]);
    const { d } = roundTrip(big, big.map(([p]) => [p, 2]));
    expect(readFileSync(d, 'utf8').split('\n').filter((l) => /^\d/.test(l)).length).toBe(Math.ceil(20000 / 4096));
  });
  it('refuses a base it was not made for, and so does patch', () => {
    const cur = base.map(([p, s]): [string, number] => [p, p.endsWith('f100') ? 9 : s]);
    const { d } = roundTrip(base, cur);
    const other = manifest('other.jsonl', base.map(([p, s]) => [p, p.endsWith('f100') ? 8 : s]));
    expect(() => [...applyManifestDiff(fileLines(other), fileLines(d), 'x')]).toThrow(/does not fit its base/);
    expect(spawnSync('patch', ['-s', '-f', '-r', '-', '-o', join(tmp, 'o'), other, d]).status).not.toBe(0);
  });
  it('a chain of manifest objects composes to the last point; an incremental from before diffs (v1, whole) restarts it', async () => {
    const states: [string, number][][] = [base, base.slice(10), [...base.slice(10), ['files/d1/x', 3]], base.slice(50), [...base.slice(50), ['zz', 1]]];
    const files = states.map((st, i) => manifest(`s${i}.jsonl`, st));
    /** a decrypted manifest object: the header frame, then the body, zstd */
    const object = (i: number, form: 'whole' | 'diff' | undefined) => {
      const body = form === 'diff' ? (writeManifestDiff(files[i - 1], files[i], join(tmp, `d${i}`)), readFileSync(join(tmp, `d${i}`))) : readFileSync(files[i]);
      const f = join(tmp, `o${i}.zst`);
      writeFileSync(f, execFileSync('zstd', ['-q', '-c'], { input: Buffer.concat([Buffer.from(JSON.stringify({ pullvault: 'manifest', v: form ? 2 : 1, ...(form ? { manifest: form } : {}) }) + '\n'), body]) }));
      return openManifestObject(f, join(tmp, `o${i}.plain`));
    };
    const objs = [await object(0, 'whole'), await object(1, 'diff'), await object(2, 'diff'), await object(3, undefined), await object(4, 'diff')];
    const out = join(tmp, 'composed');
    composeManifest(objs, objs.map((_, i) => `o${i}`), out);
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(files[4], 'utf8'));
    composeManifest(objs.slice(0, 3), ['o0', 'o1', 'o2'], out);
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(files[2], 'utf8'));
    // totals: the whole one's, plus each diff's change
    const t = objs.slice(0, 3).map(objectTotals);
    expect(t.map((x) => x.form)).toEqual(['whole', 'diff', 'diff']);
    expect(t[0].totals.files + t[1].totals.files + t[2].totals.files).toBe(states[2].length);
    expect(() => composeManifest(objs.slice(1, 3), ['o1', 'o2'], out)).toThrow(/no whole manifest/);
    for (const o of objs) await o.dispose();
  });
});
