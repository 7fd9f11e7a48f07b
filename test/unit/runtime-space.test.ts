import { describe, expect, it } from 'vitest';
import { snapshotIdFor } from '../../contract/disk-layout.ts';
import { requiredSpace, spaceRefusal, PULL_SPACE_MARGIN } from '../../runtime/preflight.ts';
import { FreedTally, makeRoom, type RoomCandidate } from '../../runtime/prune.ts';
import { planRoomFor, type SnapshotRef } from '../../runtime/retention.ts';
import { isNoSpace, roomCandidates } from '../../runtime/space.ts';

const MiB = 1048576;
const id = (iso: string) => snapshotIdFor(new Date(iso));
const refs = (isos: string[], partial: string[] = []): SnapshotRef[] => isos.map((s) => ({ id: id(s), partial: partial.includes(s) }));
const R = (hourly = 0, daily = 0, weekly = 0, monthly = 0) => ({ hourly, daily, weekly, monthly });
const NOW = new Date('2024-06-30T12:00:05Z');
const NEW = id('2024-06-30T12:00:00Z');
const names = (c: { id: string }[]) => c.map((x) => x.id);

describe('roomCandidates: the order of deletion, and what an upload needs is never in it', () => {
  const hours = ['2024-06-30T08:00:00Z', '2024-06-30T09:00:00Z', '2024-06-30T10:00:00Z', '2024-06-30T11:00:00Z'];
  it('interrupted copies first, then what the rules drop, less every pinned snapshot', () => {
    const pins = new Map([[`web/${id(hours[0])}`, 'being uploaded (pid 42)']]);
    const c = roomCandidates(['x.partial'], refs(hours), R(3), NEW, NOW, 'web', pins);
    expect(c.map((x) => x.name)).toEqual(['x.partial', id(hours[1])]);
    // a pin of another server's snapshot of the same id keeps nothing here
    expect(roomCandidates([], refs(hours), R(3), NEW, NOW, 'web', new Map([[`db/${id(hours[0])}`, 'x']])).map((x) => x.name)).toEqual([id(hours[0]), id(hours[1])]);
  });
});

describe('planRoomFor: what may go before a pull', () => {
  const hours = ['2024-06-30T08:00:00Z', '2024-06-30T09:00:00Z', '2024-06-30T10:00:00Z', '2024-06-30T11:00:00Z'];

  it('what the rules drop once the new snapshot exists, oldest first, saying so', () => {
    // hourly 3 keeps 09, 10, 11 now (08 already dropped by the rules); with 12:00 it keeps 10, 11, 12
    const c = planRoomFor(refs(hours), R(3), NEW, NOW);
    expect(names(c)).toEqual([id(hours[0]), id(hours[1])]);
    expect(c[0].reason).toBe('no rule keeps it');
    expect(c[1].reason).toBe(`no rule keeps it once ${NEW} exists`);
  });

  it('nothing the rules keep even with the new snapshot', () => {
    expect(planRoomFor(refs(hours), R(5), NEW, NOW)).toEqual([]);
    expect(planRoomFor(refs(hours), R(0, 0, 0, 12), NEW, NOW)).toEqual([id(hours[1]), id(hours[2])].map((x) => expect.objectContaining({ id: x })));
  });

  it('never the newest complete snapshot, even when the rules would drop it for the new one', () => {
    // all counts zero: with the new snapshot the rules keep only it; the pull may still fail
    const c = planRoomFor(refs(hours), R(), NEW, NOW);
    expect(names(c)).toEqual([hours[0], hours[1], hours[2]].map(id));
  });

  it('never the only snapshot', () => {
    expect(planRoomFor(refs([hours[3]]), R(), NEW, NOW)).toEqual([]);
  });

  it('a partial newest (what latest points at) and the newest complete both stay', () => {
    const c = planRoomFor(refs(hours, [hours[3]]), R(), NEW, NOW);
    expect(names(c)).toEqual([hours[0], hours[1]].map(id));
  });

  it('snapshots dated after now stay (a clock that jumped back costs nothing)', () => {
    const c = planRoomFor(refs([...hours, '2024-07-09T00:00:00Z']), R(), NEW, NOW);
    expect(names(c)).toEqual([hours[0], hours[1], hours[2]].map(id));
  });
});

describe('requiredSpace: max(last pull x margin, floor)', () => {
  const need = (MiBs: number, o: { linked?: boolean; lowerBound?: boolean } = {}) => ({ bytes: MiBs * MiB, at: '2024-06-30T11:00:00Z', linked: o.linked ?? true, ...(o.lowerBound ? { lowerBound: true } : {}) });
  it('no record: the floor', () => {
    expect(requiredSpace(undefined, true, 16)).toEqual({ bytes: 16 * MiB, why: 'pi.dataDisk.minFreeMiB 16; no earlier pull measured' });
  });
  it('the last pull grown by the margin, when above the floor', () => {
    const r = requiredSpace(need(100), true, 16);
    expect(r.bytes).toBe(Math.ceil(100 * MiB * PULL_SPACE_MARGIN));
    expect(r.why).toBe(`the last pull wrote 100.0 MiB, × ${PULL_SPACE_MARGIN} for growth`);
  });
  it('the floor when the last pull was small', () => {
    expect(requiredSpace(need(4), true, 16).bytes).toBe(16 * MiB);
  });
  it('a first full copy does not predict a pull that hard-links against a snapshot', () => {
    expect(requiredSpace(need(5000, { linked: false }), true, 16).bytes).toBe(16 * MiB);
    expect(requiredSpace(need(5000, { linked: false }), false, 16).bytes).toBe(Math.ceil(5000 * MiB * PULL_SPACE_MARGIN));
  });
  it('a pull that ran out of space asks for more than it got', () => {
    const r = requiredSpace(need(40, { lowerBound: true }), true, 16);
    expect(r.bytes).toBeGreaterThan(40 * MiB);
    expect(r.why).toBe(`the last pull ran out of 40.0 MiB free, × ${PULL_SPACE_MARGIN} for growth`);
  });
});

describe('FreedTally: what deleting snapshots in order frees, hard links counted', () => {
  it('a file frees its blocks only when its last link goes; directories and single-link files always', () => {
    const t = new FreedTally();
    // oldest: its own dir, a file only it holds, a file shared with the next one (2 links), one shared with the newest (2 links)
    t.entry('d', '10', 2, 4096);
    t.entry('f', '11', 1, 100);
    t.entry('f', '12', 2, 1000);
    t.entry('f', '13', 2, 7000);
    t.endCandidate();
    // next: its dir and its link to 12
    t.entry('d', '20', 2, 4096);
    t.entry('f', '12', 2, 1000);
    t.endCandidate();
    // 13's other link is in a snapshot that stays: never freed
    expect(t.freed).toEqual([4196, 4196 + 4096 + 1000]);
  });
  it('a file hard-linked inside one snapshot (rsync -H) is freed with it', () => {
    const t = new FreedTally();
    t.entry('f', '5', 2, 512);
    t.entry('f', '5', 2, 512);
    t.endCandidate();
    expect(t.freed).toEqual([512]);
  });
});

describe('makeRoom: delete in order until the pull fits, measuring each', () => {
  // a disk where deleting a candidate frees exactly its unique bytes
  function disk(freeMiB: number, unique: Record<string, number>) {
    let free = freeMiB * MiB;
    const removed: string[] = [];
    return {
      removed,
      free: async () => free,
      freedBy: async (cs: RoomCandidate[]) => {
        let n = 0;
        return cs.map((c) => (n += (unique[c.name] ?? 0) * MiB));
      },
      remove: async (c: RoomCandidate) => {
        removed.push(c.name);
        free += (unique[c.name] ?? 0) * MiB;
      },
    };
  }
  const cands = (...n: string[]): RoomCandidate[] => n.map((name) => ({ name, reason: 'no rule keeps it' }));

  it('enough room already: deletes nothing', async () => {
    const d = disk(50, { a: 10 });
    const r = await makeRoom(cands('a'), 40 * MiB, d, () => {});
    expect(r).toEqual({ ok: true, freeBytes: 50 * MiB, pruned: [] });
    expect(d.removed).toEqual([]);
  });

  it('stops at the first delete that makes room, and reports what each won', async () => {
    const d = disk(10, { a: 5, b: 0, c: 20, e: 30 });
    const seen: string[] = [];
    const r = await makeRoom(cands('a', 'b', 'c', 'e'), 30 * MiB, d, (s) => seen.push(s.name));
    expect(r.ok).toBe(true);
    expect(d.removed).toEqual(['a', 'b', 'c']);
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(r.pruned.map((p) => p.wonBytes / MiB)).toEqual([5, 0, 20]);
    expect(r.freeBytes).toBe(35 * MiB);
  });

  it('when even all of them cannot make room, deletes none (no snapshot lost for a pull that will not happen)', async () => {
    const d = disk(10, { a: 5, b: 5 });
    const r = await makeRoom(cands('a', 'b'), 30 * MiB, d, () => {});
    expect(r).toEqual({ ok: false, freeBytes: 10 * MiB, pruned: [], wouldWinBytes: 10 * MiB });
    expect(d.removed).toEqual([]);
  });

  it('an estimate that was too high: keeps deleting the candidates, then says not ok', async () => {
    const d = { ...disk(10, { a: 1, b: 1 }), freedBy: async () => [10 * MiB, 25 * MiB] };
    const r = await makeRoom(cands('a', 'b'), 30 * MiB, d, () => {});
    expect(r.ok).toBe(false);
    expect(r.pruned.map((p) => p.name)).toEqual(['a', 'b']);
    expect(r.freeBytes).toBe(12 * MiB);
  });
});

describe('the refusal names required, free and what was pruned', () => {
  const required = { bytes: 125 * MiB, why: 'the last pull wrote 100.0 MiB, × 1.25 for growth' };
  const base = { server: 'alpha', dataDir: '/srv/backup', required, pruneSkipped: false, kept: ['20240630T100000Z', '20240630T110000Z'] };
  it('after pruning', () => {
    const m = spaceRefusal({
      ...base,
      candidates: ['20240630T080000Z'],
      room: { ok: false, freeBytes: 90 * MiB, pruned: [{ name: '20240630T080000Z', reason: 'no rule keeps it', wonBytes: 30 * MiB, freeBytes: 90 * MiB }] },
    });
    expect(m).toBe(
      'not enough space on /srv/backup to pull alpha: 125.0 MiB required (the last pull wrote 100.0 MiB, × 1.25 for growth), 90.0 MiB free; ' +
        'pruned 20240630T080000Z by the retention rules (won 30.0 MiB); kept 2 snapshot(s), newest 20240630T110000Z. ' +
        'Not pulled: make room on the disk, keep fewer snapshots (retention) or use a bigger disk',
    );
  });
  it('what pruning would have won, when it was not enough', () => {
    const m = spaceRefusal({ ...base, candidates: ['20240630T090000Z'], room: { ok: false, freeBytes: 20 * MiB, pruned: [], wouldWinBytes: 8 * MiB } });
    expect(m).toMatch(/125.0 MiB required .*, 20.0 MiB free; deleting what the retention rules allow \(20240630T090000Z\) would win only 8.0 MiB, so nothing was deleted; kept 2 snapshot/);
  });
  it('nothing the rules allow, or --no-prune', () => {
    const room = { ok: false, freeBytes: 1 * MiB, pruned: [] };
    expect(spaceRefusal({ ...base, candidates: [], room })).toMatch(/1.0 MiB free; the retention rules allow pruning nothing; kept 2 snapshot/);
    expect(spaceRefusal({ ...base, candidates: [], room, pruneSkipped: true })).toMatch(/nothing pruned \(--no-prune\)/);
  });
});

describe('isNoSpace', () => {
  it('rsync and node phrasings; not other failures', () => {
    expect(isNoSpace('/srv/data: error in file IO (code 11): rsync: [receiver] write failed on "/srv/backup/x": No space left on device (28)')).toBe(true);
    expect(isNoSpace("ENOSPC: no space left on device, write")).toBe(true);
    expect(isNoSpace('/srv/data: connection unexpectedly closed')).toBe(false);
    expect(isNoSpace(undefined)).toBe(false);
  });
});
