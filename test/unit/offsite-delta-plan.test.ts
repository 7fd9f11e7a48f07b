// The pure decisions of delta incrementals: which changed files become patches, the memory cap,
// the window, the margin and the index a restore trusts.
import { describe, expect, it } from 'vitest';
import type { ManifestEntry } from '../../contract/disk-layout.ts';
import { capCheck, memTotalOf, memoryCap, parseDeltaIndex, patchMember, patchPays, planDelta, windowLog, type DeltaSettings } from '../../runtime/offsite/delta-plan.ts';
import { isSafeRelative } from '../../runtime/archive/tar-format.ts';

const MiB = 1 << 20;
const S: DeltaSettings = { minBytes: MiB, capBytes: 226e6, margin: 0.5 };
const f = (p: string, s: number, h: string, extra: Partial<ManifestEntry> = {}): ManifestEntry => ({ p, t: 'f', s, m: 1, mode: 0o644, u: 0, g: 0, h, ...extra });

describe('planDelta', () => {
  it('patches a changed big file that has a previous version at the same path', () => {
    expect(planDelta(f('files/a.img', 5 * MiB, 'a'), f('files/a.img', 5 * MiB, 'b'), S)).toEqual({ kind: 'patch', mode: 'raw' });
  });
  it('patches a zstd dump on its decompressed content (the cap is checked once that size is known)', () => {
    expect(planDelta(f('dumps/mariadb/app.sql.zst', 300e6, 'a'), f('dumps/mariadb/app.sql.zst', 300e6, 'b'), S)).toEqual({ kind: 'patch', mode: 'unzst' });
    // a .zst outside dumps/ is a file like any other
    expect(planDelta(f('files/x.zst', 2 * MiB, 'a'), f('files/x.zst', 2 * MiB, 'b'), S)).toEqual({ kind: 'patch', mode: 'raw' });
  });
  it('leaves small files, unchanged content, directories and hard-linked files alone', () => {
    expect(planDelta(f('files/s', MiB - 1, 'a'), f('files/s', MiB - 1, 'b'), S).kind).toBe('none');
    expect(planDelta(f('files/t', 2 * MiB, 'a'), f('files/t', 2 * MiB, 'a', { m: 5 }), S).kind).toBe('none');
    expect(planDelta(undefined, { p: 'files/d', t: 'd', s: 0, m: 1, mode: 0o755, u: 0, g: 0 }, S).kind).toBe('none');
    expect(planDelta(f('files/h', 2 * MiB, 'a'), f('files/h', 2 * MiB, 'b', { hl: 'files/h0' }), S).kind).toBe('none');
  });
  it('sends whole, with the reason, what has no usable previous version or is above the cap', () => {
    expect(planDelta(undefined, f('files/n', 2 * MiB, 'b'), S)).toEqual({ kind: 'whole', reason: 'no previous version' });
    expect(planDelta({ p: 'files/n', t: 'l', s: 0, m: 1, mode: 0, u: 0, g: 0, l: 'x' }, f('files/n', 2 * MiB, 'b'), S)).toEqual({ kind: 'whole', reason: 'no previous version' });
    expect(planDelta(f('files/n', 2 * MiB, 'a', { hl: 'files/m' }), f('files/n', 2 * MiB, 'b'), S)).toEqual({ kind: 'whole', reason: 'no previous version' });
    expect(planDelta(f('files/big', 100 * MiB, 'a'), f('files/big', 227e6, 'b'), S)).toEqual({ kind: 'whole', reason: 'above the memory cap' });
    expect(planDelta(f('files/big', 227e6, 'a'), f('files/big', 100 * MiB, 'b'), S)).toEqual({ kind: 'whole', reason: 'above the memory cap' });
  });
});

describe('the memory cap, window and margin', () => {
  it('is (RAM − 300 MB) / 3.2: about 226 MB on a 1 GB Pi, from /proc/meminfo', () => {
    expect(memoryCap(1e9)).toBe(Math.floor(700e6 / 3.2));
    expect(memoryCap(200e6)).toBe(0);
    const total = memTotalOf('MemTotal:        3884040 kB\nMemFree:         1000 kB\n');
    expect(total).toBe(3884040 * 1024);
    expect(memTotalOf('nothing')).toBeUndefined();
    expect(capCheck(226e6, 1, S)).toBe(true);
    expect(capCheck(1, 226e6 + 1, S)).toBe(false);
  });
  it('picks a window that covers the reference and the new version', () => {
    expect(windowLog(1, 1)).toBe(10);
    expect(windowLog(5 * MiB, 3 * MiB)).toBe(23);
    expect(windowLog(4 * MiB, 4 * MiB)).toBe(22);
    expect(windowLog(2 ** 40, 1)).toBe(31);
  });
  it('uses a patch only below the margin', () => {
    expect(patchPays(49, 100, S)).toBe(true);
    expect(patchPays(50, 100, S)).toBe(false);
  });
});

describe('the delta index', () => {
  const rec = { p: 'files/a.img', mode: 'raw', patch: '.pullvault/delta/files/a.img.zst-patch', refBytes: 1, refSha256: 'a'.repeat(64), bytes: 1, sha256: 'b'.repeat(64), patchBytes: 1, long: 10 };
  const text = (deltas: unknown[]) => JSON.stringify({ v: 1, base: '20240101T020000Z', capBytes: 1, deltas, whole: [] });
  it('names each patch by its path and mode', () => {
    expect(patchMember(Buffer.from('files/a.img'), 'raw').toString()).toBe('.pullvault/delta/files/a.img.zst-patch');
    expect(patchMember(Buffer.from('dumps/mariadb/x.sql.zst'), 'unzst').toString()).toBe('.pullvault/delta/dumps/mariadb/x.sql.zst.unzst-patch');
  });
  it('is read back checked: version, safe paths, modes, hashes', () => {
    expect(parseDeltaIndex(text([rec]), isSafeRelative).deltas).toHaveLength(1);
    expect(() => parseDeltaIndex(JSON.stringify({ v: 2, deltas: [], whole: [] }), isSafeRelative)).toThrow(/not a pullvault delta index/);
    expect(() => parseDeltaIndex(text([{ ...rec, p: '../etc/passwd' }]), isSafeRelative)).toThrow(/unsafe path/);
    expect(() => parseDeltaIndex(text([{ ...rec, p: '/etc/passwd' }]), isSafeRelative)).toThrow(/unsafe path/);
    expect(() => parseDeltaIndex(text([{ ...rec, mode: 'xdelta' }]), isSafeRelative)).toThrow(/unknown delta mode/);
    expect(() => parseDeltaIndex(text([{ ...rec, sha256: 'zz' }]), isSafeRelative)).toThrow(/bad sha256/);
  });
});
