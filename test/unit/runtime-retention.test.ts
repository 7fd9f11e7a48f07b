import { describe, expect, it } from 'vitest';
import { snapshotIdFor } from '../../contract/disk-layout.ts';
import { isoWeek, periodOf, planRetention, type SnapshotRef } from '../../runtime/retention.ts';

const id = (iso: string) => snapshotIdFor(new Date(iso));
const refs = (isos: string[], partial: string[] = []): SnapshotRef[] => isos.map((s) => ({ id: id(s), partial: partial.includes(s) }));
const R = (hourly = 0, daily = 0, weekly = 0, monthly = 0) => ({ hourly, daily, weekly, monthly });
const kept = (d: { id: string; keep: boolean }[]) => d.filter((x) => x.keep).map((x) => x.id);
const NOW = new Date('2024-06-30T23:59:59Z');

/** one snapshot every `stepH` hours, going back `n` steps from `end` */
function series(end: string, n: number, stepH: number): string[] {
  const t = Date.parse(end);
  return Array.from({ length: n }, (_, i) => new Date(t - i * stepH * 3600_000).toISOString());
}

describe('retention periods', () => {
  it('ISO weeks cross years correctly', () => {
    expect(isoWeek(new Date('2021-01-03T12:00:00Z'))).toBe('2020-W53');
    expect(isoWeek(new Date('2021-01-04T00:00:00Z'))).toBe('2021-W01');
    expect(isoWeek(new Date('2024-12-30T00:00:00Z'))).toBe('2025-W01');
    expect(isoWeek(new Date('2024-06-30T23:00:00Z'))).toBe('2024-W26');
  });
  it('periods are UTC', () => {
    const d = new Date('2024-03-05T07:08:09Z');
    expect([periodOf('hourly', d), periodOf('daily', d), periodOf('monthly', d)]).toEqual(['2024-03-05T07', '2024-03-05', '2024-03']);
  });
});

describe('planRetention (borg prune semantics)', () => {
  it('empty list → empty plan', () => {
    expect(planRetention([], R(1, 1, 1, 1), NOW)).toEqual([]);
  });

  it('hourly keeps the newest of each hour, newest first, up to n', () => {
    const s = ['2024-06-30T10:05:00Z', '2024-06-30T10:45:00Z', '2024-06-30T11:10:00Z', '2024-06-30T12:00:00Z', '2024-06-30T12:30:00Z'];
    const d = planRetention(refs(s), R(2), NOW);
    expect(d.map((x) => x.id)).toEqual([...s].reverse().map(id)); // newest first
    expect(kept(d)).toEqual([id('2024-06-30T12:30:00Z'), id('2024-06-30T11:10:00Z')]);
    expect(d.find((x) => x.id === id('2024-06-30T12:30:00Z'))!.reason).toBe('hourly #1');
    expect(d.find((x) => x.id === id('2024-06-30T10:05:00Z'))).toMatchObject({ keep: false, reason: 'no rule keeps it' });
  });

  it('daily over 10 days of hourly snapshots keeps the last of each day', () => {
    const s = series('2024-06-30T23:00:00Z', 240, 1);
    const d = planRetention(refs(s), R(0, 7), NOW);
    expect(kept(d)).toEqual(Array.from({ length: 7 }, (_, i) => id(`2024-06-${30 - i}T23:00:00Z`)));
  });

  it('a snapshot kept by an earlier rule uses its period but does not count for the later rule', () => {
    // hourly 1 keeps 06-30 23:00; daily 2 then skips day 06-30 (already kept) and keeps 06-29 and 06-28
    const s = series('2024-06-30T23:00:00Z', 72, 1);
    const d = planRetention(refs(s), R(1, 2), NOW);
    expect(kept(d)).toEqual([id('2024-06-30T23:00:00Z'), id('2024-06-29T23:00:00Z'), id('2024-06-28T23:00:00Z')]);
    expect(d.find((x) => x.id === id('2024-06-29T23:00:00Z'))!.reason).toBe('daily #1');
  });

  it('weekly and monthly over a year of daily snapshots', () => {
    const s = series('2024-06-30T03:00:00Z', 366, 24);
    const d = planRetention(refs(s), R(0, 0, 4, 6), NOW);
    const k = kept(d);
    // weekly: Sundays 06-30, 06-23, 06-16, 06-09; monthly then: May 31, Apr 30, Mar 31, Feb 29, Jan 31, Dec 31 (June's is taken by weekly)
    expect(k).toEqual(['2024-06-30', '2024-06-23', '2024-06-16', '2024-06-09', '2024-05-31', '2024-04-30', '2024-03-31', '2024-02-29', '2024-01-31', '2023-12-31'].map((x) => id(`${x}T03:00:00Z`)));
  });

  it('keeps the oldest when a rule is not filled (borg "[oldest]")', () => {
    const s = ['2024-06-01T00:00:00Z', '2024-06-15T00:00:00Z', '2024-06-30T00:00:00Z'];
    const d = planRetention(refs(s), R(0, 0, 0, 12), NOW);
    // all in June: monthly #1 is the newest; the rule is short, so the oldest is kept too
    expect(kept(d)).toEqual([id(s[2]), id(s[0])]);
    expect(d.find((x) => x.id === id(s[0]))!.reason).toBe('monthly[oldest] #2');
  });

  it('all counts zero: only the newest complete snapshot survives', () => {
    const s = series('2024-06-30T10:00:00Z', 5, 1);
    const d = planRetention(refs(s), R(), NOW);
    expect(kept(d)).toEqual([id(s[0])]);
    expect(d[0].reason).toBe('newest complete');
  });

  it('never deletes the newest complete snapshot even when newer ones are partial', () => {
    const s = ['2024-06-30T10:00:00Z', '2024-06-30T11:00:00Z', '2024-06-30T12:00:00Z'];
    const d = planRetention(refs(s, ['2024-06-30T12:00:00Z', '2024-06-30T11:00:00Z']), R(), NOW);
    // the newest (partial, what `latest` points at) and the newest complete
    expect(kept(d).sort()).toEqual([id(s[0]), id(s[2])].sort());
    expect(d.find((x) => x.id === id(s[0]))!.reason).toBe('newest complete');
    expect(d.find((x) => x.id === id(s[2]))!.reason).toBe('newest (partial)');
    expect(d.find((x) => x.id === id(s[1]))!.keep).toBe(false);
  });

  it('snapshots dated after now are kept and do not take rule slots', () => {
    const s = ['2024-06-30T10:00:00Z', '2024-06-30T11:00:00Z', '2024-07-05T00:00:00Z'];
    const d = planRetention(refs(s), R(1), NOW);
    expect(d.find((x) => x.id === id(s[2]))).toMatchObject({ keep: true, reason: 'in the future' });
    expect(d.find((x) => x.id === id(s[1]))).toMatchObject({ keep: true });
    expect(d.find((x) => x.id === id(s[0]))).toMatchObject({ keep: false });
  });

  it('input order does not matter; decisions are deterministic', () => {
    const s = series('2024-06-30T23:00:00Z', 100, 5);
    const a = planRetention(refs(s), R(3, 4, 2, 2), NOW);
    const b = planRetention(refs([...s].reverse()), R(3, 4, 2, 2), NOW);
    expect(b).toEqual(a);
    // ~21 days, all in June: monthly finds no second month, so it keeps only the oldest ([oldest])
    expect(kept(a).length).toBe(3 + 4 + 2 + 1);
    expect(a.find((x) => x.id === id(s[99]))!.reason).toBe('monthly[oldest] #1');
  });

  it('rejects ids that are not snapshot ids', () => {
    expect(() => planRetention([{ id: 'latest' }], R(1), NOW)).toThrow(/not a snapshot id/);
  });
});
