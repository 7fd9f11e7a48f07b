// Pure offsite decisions: schedule, incremental selection, key naming, chain selection, tar order.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ManifestEntry } from '../../contract/disk-layout.ts';
import { compareTreeOrder, ustarMember } from '../../runtime/archive/tar-format.ts';
import { branchesOf, leaves, parseAt, planRestore, readListing, unreachable } from '../../runtime/offsite/chain.ts';
import { archiveKey, manifestObjectKey, parseObjectKey } from '../../contract/offsite-naming.ts';
import { decide } from '../../runtime/offsite/schedule.ts';
import { selectFull, selectIncremental, TooManyChanges } from '../../runtime/offsite/select.ts';
import type { UploadRecord } from '../../runtime/offsite/uploads.ts';

const f = (p: string, h = 'x', extra: Partial<ManifestEntry> = {}): ManifestEntry => ({ p, t: 'f', s: 1, m: 1, mode: 0o644, u: 0, g: 0, h, ...extra });
const d = (p: string, m = 1): ManifestEntry => ({ p, t: 'd', s: 0, m, mode: 0o755, u: 0, g: 0 });
const paths = (bs: Buffer[]) => bs.map((b) => b.toString());

describe('schedule', () => {
  const rec = (snapshot: string, kind: 'full' | 'incremental', at: string): UploadRecord =>
    ({ v: 1, server: 's', snapshot, kind, chainId: 'c', key: 'k', manifestKey: 'm', bytes: 1, manifestBytes: 1, sha256: '', uploadedAt: at, seconds: 1 });
  const base = { snapshot: '20240110T020000Z', fullEveryDays: 30, incrementalEveryDays: 1, haveSnapshot: () => true };
  it('full first, then incrementals, then a full when it is due', () => {
    expect(decide({ ...base, records: [], now: new Date('2024-01-10T02:01:00Z') }).kind).toBe('full');
    const recs = [rec('20240109T020000Z', 'full', '2024-01-09T02:01:30Z')];
    // a day minus a few seconds later (cron) still counts as a day
    expect(decide({ ...base, records: recs, now: new Date('2024-01-10T02:01:00Z') })).toMatchObject({ kind: 'incremental', base: { snapshot: '20240109T020000Z' } });
    expect(decide({ ...base, records: recs, now: new Date('2024-01-09T14:00:00Z') }).kind).toBe('skipped');
    expect(decide({ ...base, records: recs, now: new Date('2024-02-08T02:00:00Z') }).kind).toBe('full');
  });
  it('skips a snapshot already sent; fulls only without incrementalEveryDays; full when the base is gone', () => {
    const recs = [rec('20240110T020000Z', 'full', '2024-01-10T02:01:00Z')];
    expect(decide({ ...base, records: recs, now: new Date('2024-01-12T00:00:00Z') }).kind).toBe('skipped');
    const older = [rec('20240109T020000Z', 'full', '2024-01-09T02:01:00Z')];
    expect(decide({ ...base, incrementalEveryDays: undefined, records: older, now: new Date('2024-01-12T00:00:00Z') }).kind).toBe('skipped');
    expect(decide({ ...base, records: older, now: new Date('2024-01-12T00:00:00Z'), haveSnapshot: () => false }).kind).toBe('full');
  });
});

describe('incremental selection', () => {
  it('changed and added entries, their directories, deletions (topmost only)', () => {
    const old = [d('files'), d('files/a'), f('files/a/edit', 'h1'), f('files/a/keep'), d('files/gone'), f('files/gone/x'), f('files/old')];
    const cur = [d('files'), d('files/a', 2), f('files/a/edit', 'h2'), f('files/a/keep'), f('files/a/new')];
    const s = selectIncremental(old, cur);
    expect(paths(s.include)).toEqual(['files', 'files/a', 'files/a/edit', 'files/a/new']);
    expect(paths(s.deletions)).toEqual(['files/gone', 'files/old']);
  });
  it('a type change is deleted first and included', () => {
    const s = selectIncremental([d('files'), d('files/x'), f('files/x/y')], [d('files'), f('files/x')]);
    expect(paths(s.deletions)).toEqual(['files/x']);
    expect(paths(s.include)).toContain('files/x');
  });
  it('a touched hard-link group travels whole', () => {
    const old = [f('files/a', 'h', { hl: 'files/a' }), f('files/b')];
    const cur = [f('files/a', 'h', { hl: 'files/a' }), f('files/b'), f('files/c', 'h', { hl: 'files/a' })];
    expect(paths(selectIncremental(old, cur).include)).toEqual(['files/a', 'files/c']);
  });
  it('more changed paths than it may hold: TooManyChanges (the phase sends a full instead)', () => {
    const old = [d('files'), f('files/a'), f('files/b'), f('files/c')];
    const cur = [d('files'), f('files/a', 'x2'), f('files/b', 'x2'), f('files/d')];
    expect(() => selectIncremental(old, cur, 2)).toThrow(TooManyChanges);
    expect(paths(selectIncremental(old, cur, 4).include)).toEqual(['files', 'files/a', 'files/b', 'files/d']);
  });
  it('a changed head takes its unchanged members along; an untouched group stays out', () => {
    const old = [f('files/a', 'h1'), f('files/b', 'h1', { hl: 'files/a' }), f('files/x', 'h3'), f('files/y', 'h3', { hl: 'files/x' })];
    const cur = [f('files/a', 'h2'), f('files/b', 'h1', { hl: 'files/a' }), f('files/x', 'h3'), f('files/y', 'h3', { hl: 'files/x' })];
    expect(paths(selectIncremental(old, cur).include)).toEqual(['files/a', 'files/b']);
  });
  it('non-UTF-8 paths (pb) are handled as bytes', () => {
    const raw = Buffer.from([0x66, 0x69, 0x6c, 0x65, 0x73, 0x2f, 0xe9]);
    const e: ManifestEntry = { pb: raw.toString('base64'), t: 'f', s: 1, m: 1, mode: 0o644, u: 0, g: 0, h: 'x' };
    const s = selectIncremental([], [e]);
    expect(s.include[0].equals(raw)).toBe(true);
    expect(selectIncremental([e], []).deletions[0].equals(raw)).toBe(true);
  });
  it('full: everything in tree order (a subtree stays together)', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'sel-'));
    try {
      const full = selectFull([d('a'), f('a-b'), f('a/x')], tmp);
      expect([...full.members]).toEqual(['a', 'a/x', 'a-b']);
      expect([...full.members]).toEqual(['a', 'a/x', 'a-b']); // re-readable (a retry reads it again)
      expect(full.changedFiles).toBe(2);
      full.dispose();
      expect(readdirSync(tmp)).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    expect(compareTreeOrder(Buffer.from('a/x'), Buffer.from('a-b'))).toBeLessThan(0);
  });
});

describe('naming and chains', () => {
  const P = 'pi01/';
  const full = { kind: 'full' as const, server: 'web1', chainId: '20240101T000000Z-aa', snapshot: '20240101T000000Z', tag: '01' };
  const inc = (snapshot: string, base: string, tag: string) => ({ kind: 'incremental' as const, server: 'web1', chainId: full.chainId, snapshot, base, tag });
  const objs = (ns: Parameters<typeof archiveKey>[1][], withManifest = true) =>
    ns.flatMap((n) => [{ key: archiveKey(P, n), size: 10 }, ...(withManifest ? [{ key: manifestObjectKey(P, n), size: 1 }] : [])]);
  it('keys follow the s3 layout and parse back', () => {
    const k = archiveKey(P, inc('20240102T000000Z', '20240101T000000Z', 'ff'));
    expect(k).toBe('pi01/incr/web1/20240101T000000Z-aa/20240102T000000Z.from-20240101T000000Z.ff.tar.zst.gpg');
    expect(parseObjectKey(P, k)).toMatchObject({ object: 'archive', kind: 'incremental', base: '20240101T000000Z', tag: 'ff' });
    expect(parseObjectKey(P, manifestObjectKey(P, full))).toMatchObject({ object: 'manifest', kind: 'full' });
    expect(parseObjectKey(P, 'pi01/full/web1/c/notours.txt')).toBeNull();
  });
  it('follows bases, not listing order; ignores archives without a manifest; honours --at', () => {
    const i1 = inc('20240102T000000Z', '20240101T000000Z', '01');
    const orphan = inc('20240103T000000Z', '20240102T000000Z', '02'); // archive without manifest
    const i3 = inc('20240104T000000Z', '20240102T000000Z', '03'); // built on i1 after the failed run
    const listing = readListing([...objs([full, i1, i3]), ...objs([orphan], false)], P, 'web1');
    expect(listing.orphans).toEqual([archiveKey(P, orphan)]);
    const plan = planRestore(listing);
    expect(plan.snapshot).toBe('20240104T000000Z');
    expect(plan.steps.map((s) => s.snapshot)).toEqual(['20240101T000000Z', '20240102T000000Z', '20240104T000000Z']);
    expect(planRestore(listing, parseAt('2024-01-02T12:00:00Z')).snapshot).toBe('20240102T000000Z');
    expect(() => planRestore(listing, parseAt('2023-12-31'))).toThrow(/no snapshot at or before/);
  });
  it('an unrecorded upload is a branch: the newest point wins whatever the listing order; every branch tip is a leaf', () => {
    const i1 = inc('20240102T000000Z', '20240101T000000Z', '01');
    const unrecorded = inc('20240103T000000Z', '20240102T000000Z', 'ff'); // sorts after the newer one's tag
    const i3 = inc('20240104T000000Z', '20240102T000000Z', '03');
    for (const order of [[full, i1, unrecorded, i3], [i3, unrecorded, i1, full]]) {
      const listing = readListing(objs(order), P, 'web1');
      const plan = planRestore(listing);
      expect(plan.steps.map((s) => s.snapshot)).toEqual(['20240101T000000Z', '20240102T000000Z', '20240104T000000Z']);
      expect(leaves(listing.archives).map((l) => l.snapshot)).toEqual(['20240104T000000Z', '20240103T000000Z']);
      expect(branchesOf(listing.archives, plan)).toEqual([expect.stringContaining('branches after 20240102T000000Z: 20240103T000000Z is on another branch')]);
    }
    const second = { ...full, chainId: '20240201T000000Z-bb', snapshot: '20240201T000000Z' };
    expect(leaves(readListing(objs([full, i1, second]), P, 'web1').archives).map((l) => `${l.chainId}:${l.snapshot}`)).toEqual([
      '20240201T000000Z-bb:20240201T000000Z',
      '20240101T000000Z-aa:20240102T000000Z',
    ]);
  });
  it('reports missing archives and broken chains', () => {
    const i1 = inc('20240102T000000Z', '20240101T000000Z', '01');
    const i2 = inc('20240103T000000Z', '20240102T000000Z', '02');
    const listing = readListing([...objs([full, i2]), { key: manifestObjectKey(P, i1), size: 1 }], P, 'web1');
    expect(listing.missing).toEqual([manifestObjectKey(P, i1)]);
    expect(unreachable(listing.archives).map((s) => s.key)).toEqual([archiveKey(P, i2)]);
  });
});

describe('ustar member', () => {
  it('is a valid 512-byte-aligned header with a correct checksum', () => {
    const m = ustarMember('.pullvault/deleted', Buffer.from('a\0b\0'), 1700000000);
    expect(m.length).toBe(1024);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : m[i];
    expect(parseInt(m.subarray(148, 154).toString(), 8)).toBe(sum);
  });
});
