// A year of the Pi's offsite schedule against the bucket's lifecycle rules, on plain data: the
// real decision (schedule.ts), the real key names (naming.ts), the real lifecycle rules
// (provision/aws/lifecycle.ts) and the real restore planning (chain.ts). Runs every 4 hours, late by up to
// 3 hours, uploads that take minutes to hours, 10 days with the Pi off, a full that fails five
// days running (one attempt leaving an archive without its manifest), and uploads that reached
// the store but were never recorded on the Pi.
//
// The stand-in for S3 lifecycle: an object matched by an "Expiration: Days" rule (longest
// matching prefix) is gone from (creation + Days). AWS rounds that time up to the next midnight
// UTC and may delete later still; both only lengthen a life, so the exact time is the worst case.
import { describe, expect, it } from 'vitest';
import type { S3TargetSpec } from '../../contract/inventory-schema.ts';
import { lifecycleRules, maxChainDays, type LifecycleRule } from '../../provision/aws/lifecycle.ts';
import { dateOfSnapshotId, snapshotIdFor } from '../../contract/disk-layout.ts';
import { reachable, readListing, type Step } from '../../runtime/offsite/chain.ts';
import { archiveKey, manifestObjectKey, newChainId, type ArchiveName } from '../../contract/offsite-naming.ts';
import { decide } from '../../runtime/offsite/schedule.ts';
import type { UploadRecord } from '../../runtime/offsite/uploads.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const START = Date.UTC(2025, 0, 1);

interface StoredObject {
  key: string;
  created: number;
}

/** deterministic pseudo-random numbers in [0, 1) (mulberry32) */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Scenario {
  fullEveryDays: number;
  incrementalEveryDays: number;
  /** days (from START) with the Pi switched off */
  offDays: Set<number>;
  /** the first full due after this day fails, and every full attempt for `days` after it; the first attempt leaves its archive in the store without a manifest */
  failingFull: { afterDay: number; days: number };
  /** the upload on these days reaches the store but the Pi fails to record it (disk full) */
  unrecordedOnDays: Set<number>;
}

/** Runs the Pi's schedule for a year; returns what reached the store and the Pi's records. */
function simulateUploads(s: Scenario, prefix: string): { objects: StoredObject[]; records: UploadRecord[]; failedFrom: number } {
  const rand = rng(14);
  const objects: StoredObject[] = [];
  const records: UploadRecord[] = [];
  let tag = 0;
  const nextTag = () => (++tag).toString(16).padStart(8, '0');
  let failedFrom = Infinity;
  for (let t = START; t < START + 365 * DAY; t += 4 * HOUR) {
    const day = Math.floor((t - START) / DAY);
    if (s.offDays.has(day)) continue;
    const now = t + 17 * 60_000 + Math.floor(rand() * 3 * HOUR);
    const snapshot = snapshotIdFor(new Date(now));
    const d = decide({ records, snapshot, now: new Date(now), fullEveryDays: s.fullEveryDays, incrementalEveryDays: s.incrementalEveryDays, haveSnapshot: () => true });
    if (d.kind === 'skipped') continue;
    const name: ArchiveName = {
      kind: d.kind,
      server: 'web1',
      chainId: d.kind === 'full' ? newChainId(snapshot, nextTag()) : d.base.chainId,
      snapshot,
      ...(d.kind === 'incremental' ? { base: d.base.snapshot } : {}),
      tag: nextTag(),
    };
    const key = archiveKey(prefix, name);
    const manifestKey = manifestObjectKey(prefix, name);
    // an incremental takes minutes to 6 hours, a full up to 20 hours
    const took = d.kind === 'full' ? HOUR + rand() * 19 * HOUR : 5 * 60_000 + rand() * 6 * HOUR;
    if (d.kind === 'full' && day > s.failingFull.afterDay && now < failedFrom + s.failingFull.days * DAY) {
      if (failedFrom === Infinity) {
        failedFrom = now;
        objects.push({ key, created: now + took });
      }
      continue;
    }
    objects.push({ key, created: now + took }, { key: manifestKey, created: now + took + 60_000 });
    if (s.unrecordedOnDays.has(day)) {
      s.unrecordedOnDays.delete(day);
      continue;
    }
    records.push({
      v: 1, server: 'web1', snapshot, kind: d.kind, chainId: name.chainId, ...(name.base ? { base: name.base } : {}),
      key, manifestKey, bytes: 1, manifestBytes: 1, sha256: '', uploadedAt: new Date(now).toISOString(), seconds: took / 1000,
    });
  }
  return { objects, records, failedFrom };
}

function expiryOf(rules: LifecycleRule[], key: string, created: number): number {
  const rule = rules
    .filter((r) => r.Status === 'Enabled' && r.Expiration?.Days !== undefined && key.startsWith(r.Filter.Prefix))
    .sort((a, b) => b.Filter.Prefix.length - a.Filter.Prefix.length)[0];
  return rule ? created + rule.Expiration!.Days! * DAY : Infinity;
}

interface Point {
  key: string;
  snapshot: string;
  /** when its last object reached the store */
  from: number;
  /** the first time it could no longer be restored */
  until: number;
  steps: Step[];
}

/** Every restore point the store ever held, and how long it stayed restorable under `rules`. */
function restorability(objects: StoredObject[], rules: LifecycleRule[], prefix: string): { points: Point[]; oldestByDay: (string | null)[] } {
  const live = objects.map((o) => ({ ...o, gone: expiryOf(rules, o.key, o.created) }));
  const pointsAt = (t: number) => reachable(readListing(live.filter((o) => o.created <= t && o.gone > t).map((o) => ({ key: o.key, size: 1 })), prefix, 'web1').archives);
  // adding objects never breaks a chain: every point is reachable in the listing of everything
  // ever stored, from the moment its last object (archive or manifest) was created; it can only
  // stop being restorable when an object expires, so looking right at each expiry sees every loss
  const createdAt = new Map(live.map((o) => [o.key, o.created]));
  const points = new Map<string, Point>();
  for (const r of reachable(readListing(live.map((o) => ({ key: o.key, size: 1 })), prefix, 'web1').archives)) {
    const from = Math.max(...r.steps.flatMap((st) => [createdAt.get(st.key)!, createdAt.get(st.manifestKey)!]));
    const key = r.steps[r.steps.length - 1].key;
    points.set(key, { key, snapshot: r.snapshot, from, until: Infinity, steps: r.steps });
  }
  const expiries = [...new Set(live.map((o) => o.gone).filter(Number.isFinite))].sort((a, b) => a - b);
  for (const t of expiries) {
    const now = new Set(pointsAt(t).map((r) => r.steps[r.steps.length - 1].key));
    for (const p of points.values()) if (p.until === Infinity && p.from <= t && !now.has(p.key)) p.until = t;
  }
  const oldestByDay: (string | null)[] = [];
  for (let day = 0; day < 365 + 200; day++) {
    const t = START + day * DAY;
    const snaps = [...points.values()].filter((p) => p.from <= t && p.until > t).map((p) => p.snapshot).sort();
    oldestByDay.push(snaps[0] ?? null);
  }
  return { points: [...points.values()], oldestByDay };
}

const target: S3TargetSpec = { type: 's3', bucket: 'b-example', region: 'eu-central-1', prefix: 'pi01/', retentionDays: { full: 120, incremental: 60, manifest: 120 } };
const scenario = (): Scenario => ({
  fullEveryDays: 30,
  incrementalEveryDays: 1,
  offDays: new Set(Array.from({ length: 10 }, (_, i) => 40 + i)),
  failingFull: { afterDay: 85, days: 5 },
  unrecordedOnDays: new Set([150, 211]),
});
const days = (ms: number) => ms / DAY;

describe('offsite retention over a simulated year', () => {
  const { objects, records, failedFrom } = simulateUploads(scenario(), target.prefix);

  it('the year has what it claims: missed days, a failing full, unrecorded uploads, branches', () => {
    const fulls = records.filter((r) => r.kind === 'full');
    expect(fulls.length).toBeGreaterThanOrEqual(12);
    // no upload at all while the Pi is off, nor while the full keeps failing
    const uploadDays = new Set(records.map((r) => Math.floor((Date.parse(r.uploadedAt) - START) / DAY)));
    for (const d of scenario().offDays) expect(uploadDays.has(d)).toBe(false);
    expect(failedFrom).toBeLessThan(START + 100 * DAY);
    const after = records.filter((r) => Date.parse(r.uploadedAt) >= failedFrom);
    expect(Date.parse(after[0].uploadedAt) - failedFrom).toBeGreaterThanOrEqual(5 * DAY);
    expect(after[0].kind).toBe('full');
    // an orphan archive and two unrecorded uploads are in the store but not in the records
    expect(objects.filter((o) => /\.tar\.zst\.gpg$/.test(o.key)).length).toBe(records.length + 3);
  });

  it('no chain spans more than the lifecycle assumes (maxChainDays), even with the full failing', () => {
    const listing = readListing(objects.map((o) => ({ key: o.key, size: 1 })), target.prefix, 'web1');
    const created = new Map(objects.map((o) => [o.key, o.created]));
    const spans = reachable(listing.archives).map((r) => created.get(r.steps[r.steps.length - 1].key)! - created.get(r.steps[0].key)!);
    expect(days(Math.max(...spans))).toBeLessThan(maxChainDays(30));
    // the failing full let the chain before it reach its full length, and no further
    expect(days(Math.max(...spans))).toBeGreaterThan(28);
  });

  it(`every restore point stays restorable for retentionDays.incremental (${target.retentionDays.incremental}) days; the oldest point each day is at least that old`, () => {
    const { points, oldestByDay } = restorability(objects, lifecycleRules(target, 'pi01', 30), target.prefix);
    expect(points.length).toBeGreaterThan(300);
    const shortest = Math.min(...points.map((p) => p.until - p.from));
    expect(days(shortest)).toBeGreaterThanOrEqual(60);
    // each day, the oldest restorable point is at least as old as every point of the last 60 days
    oldestByDay.forEach((snap, day) => {
      const t = START + day * DAY;
      const recent = points.filter((p) => p.from <= t && p.from >= t - 60 * DAY).map((p) => p.snapshot).sort();
      if (recent.length === 0) return;
      expect(snap, `day ${day}`).not.toBeNull();
      expect(snap! <= recent[0], `day ${day}: oldest restorable point ${snap}, but ${recent[0]} is younger than 60 days`).toBe(true);
    });
    const ages = oldestByDay.slice(90, 365).map((snap, i) => days(START + (90 + i) * DAY - dateOfSnapshotId(snap!).getTime()));
    expect(Math.min(...ages)).toBeGreaterThanOrEqual(60);
  });

  it('with incrementals expiring after retentionDays.incremental (the rule before), the last points of a chain last about 32 days', () => {
    const before = lifecycleRules(target, 'pi01', 30).map((r) => (r.ID.endsWith('-incr') ? { ...r, Expiration: { Days: target.retentionDays.incremental } } : r));
    const { points } = restorability(objects, before, target.prefix);
    const short = points.filter((p) => days(p.until - p.from) < 60);
    expect(short.length).toBeGreaterThan(100);
    expect(days(Math.min(...points.map((p) => p.until - p.from)))).toBeLessThan(33);
  });
});
