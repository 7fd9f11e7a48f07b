// The watchdog's decision, on plain data: a listing, the manifests and archives it read, the
// schedule and the time → findings. Each case is one way a store goes wrong while the Pi may
// still report success.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { readListing, type Listing } from '../../runtime/offsite/chain.ts';
import { archiveKey, manifestObjectKey, type ArchiveName } from '../../contract/offsite-naming.ts';
import type { ManifestHeader } from '../../runtime/offsite/restore.ts';
import { failureLines, renderWatch, type WatchReport } from '../../runtime/owner/watch.ts';
import { main as pullvault } from '../../runtime/cli.ts';

const watchMain = (args: string[]) => pullvault(['watch', ...args]);
import { judge, watchPlan, type ManifestCheck, type ServerEvidence, type WatchPolicy } from '../../runtime/owner/watch-judge.ts';

const P = 'pi01/';
const CHAIN = '20240101T020000Z-aaaa';
const full: ArchiveName = { kind: 'full', server: 'web1', chainId: CHAIN, snapshot: '20240101T020000Z', tag: 'a1' };
const inc = (day: number, base: string, chainId = CHAIN): ArchiveName => ({ kind: 'incremental', server: 'web1', chainId, snapshot: `202401${String(day).padStart(2, '0')}T020000Z`, base, tag: `b${day}` });
const i2 = inc(2, full.snapshot);
const i3 = inc(3, i2.snapshot);
const i4 = inc(4, i3.snapshot);
const policy: WatchPolicy = { fullEveryDays: 30, incrementalEveryDays: 1, slackHours: 12, dropRatio: 0.5 };
const at = (iso: string) => new Date(iso);

function listingOf(names: ArchiveName[], opts: { withoutManifest?: ArchiveName[]; withoutArchive?: ArchiveName[]; modified?: Date } = {}): Listing {
  const objs = names.flatMap((n) => [
    ...(opts.withoutArchive?.includes(n) ? [] : [{ key: archiveKey(P, n), size: 1000, ...(opts.modified ? { modified: opts.modified } : {}) }]),
    ...(opts.withoutManifest?.includes(n) ? [] : [{ key: manifestObjectKey(P, n), size: 100 }]),
  ]);
  return readListing(objs, P, 'web1');
}

/** What gatherServer would have read, all good: every manifest of the plan, totals of newest and previous. */
function evidence(listing: Listing, totals: Record<string, { files: number; bytes: number }> = {}, over: Partial<ServerEvidence> = {}): { ev: ServerEvidence; plan: ReturnType<typeof watchPlan> } {
  const plan = watchPlan(listing, { readData: false, sample: 2, pick: () => 0 });
  const heads = [...plan.chain, ...(plan.previous && !plan.chain.includes(plan.previous) ? [plan.previous] : [])];
  const manifests: ManifestCheck[] = heads.map((s) => ({
    key: s.manifestKey,
    archive: s.key,
    header: { pullvault: 'manifest', v: 1, kind: s.kind, server: s.server, snapshot: s.snapshot, base: s.base ?? null, chainId: s.chainId, archive: { key: s.key, bytes: s.size, sha256: 'x' }, deletions: 0 } as ManifestHeader,
    ...(totals[s.snapshot] ? { totals: totals[s.snapshot] } : {}),
  }));
  return { ev: { server: 'web1', listing, manifests, data: plan.data.map((s) => ({ key: s.key })), ...over }, plan };
}

const errors = (v: ReturnType<typeof judge>) => v.findings.filter((f) => f.level === 'error').map((f) => `${f.check}: ${f.message}`);

describe('watch: the decision', () => {
  const healthy = listingOf([full, i2, i3, i4]);
  const totals = { [i3.snapshot]: { files: 100, bytes: 10_000 }, [i4.snapshot]: { files: 101, bytes: 10_100 } };

  it('a healthy store: ok, newest and full ages, a complete chain of 4, totals', () => {
    const { ev, plan } = evidence(healthy, totals);
    const v = judge(ev, plan, policy, at('2024-01-04T20:00:00Z'));
    expect(errors(v)).toEqual([]);
    expect(v.ok).toBe(true);
    expect(v.newest).toMatchObject({ snapshot: i4.snapshot, kind: 'incremental' });
    expect(v.newest!.ageHours).toBeCloseTo(18, 5);
    expect(v.full!.snapshot).toBe(full.snapshot);
    expect(v.chain).toEqual({ chainId: CHAIN, archives: 4, complete: true });
    expect(v.totals).toEqual({ files: 101, bytes: 10_100, previous: { files: 100, bytes: 10_000 } });
    // the plan reads the newest and one other of the path; --read-data every one
    expect(plan.data.map((s) => s.snapshot)).toEqual([i4.snapshot, full.snapshot]);
    expect(watchPlan(healthy, { readData: true, sample: 2 }).data.map((s) => s.snapshot)).toEqual([full, i2, i3, i4].map((n) => n.snapshot));
  });

  it('the Pi stops uploading: stale once the newest is a day + slack old', () => {
    const { ev, plan } = evidence(healthy, totals);
    expect(judge(ev, plan, policy, at('2024-01-05T13:59:00Z')).ok).toBe(true);
    const v = judge(ev, plan, policy, at('2024-01-06T02:00:00Z'));
    expect(v.ok).toBe(false);
    expect(errors(v)).toEqual([expect.stringMatching(/^age: stale: the newest archive \(20240104T020000Z\) is 2\.0 days old; one is due every 1 day\(s\)/)]);
    // fulls only: the interval is fullEveryDays
    expect(judge(ev, plan, { ...policy, incrementalEveryDays: undefined }, at('2024-01-06T02:00:00Z')).ok).toBe(true);
  });

  it('a Pi that names its archives in the future is judged by when the store took them', () => {
    const l = listingOf([full, i2, i3, i4], { modified: at('2024-01-01T03:00:00Z') });
    const { ev, plan } = evidence(l, totals);
    const v = judge(ev, plan, policy, at('2024-01-04T20:00:00Z'));
    expect(v.newest!.at).toBe('2024-01-01T03:00:00.000Z');
    expect(errors(v)).toEqual([expect.stringMatching(/^age: stale/)]);
  });

  it('no full within fullEveryDays + slack, even while incrementals keep coming', () => {
    const days = Array.from({ length: 31 }, (_, k) => k + 2);
    const chain: ArchiveName[] = [full];
    for (const d of days) chain.push({ ...inc(0, chain[chain.length - 1].snapshot), snapshot: new Date(Date.UTC(2024, 0, d, 2)).toISOString().replace(/[-:]|\.\d+/g, ''), tag: `c${d}` });
    const { ev, plan } = evidence(listingOf(chain));
    const v = judge(ev, plan, policy, at('2024-02-01T12:00:00Z'));
    expect(errors(v)).toEqual([expect.stringMatching(/^full: the newest full archive \(20240101T020000Z\) is 31\.4 days old; one is due every 30 days/)]);
  });

  it('an incremental missing from the chain (archive and manifest gone, or only its archive)', () => {
    for (const l of [listingOf([full, i2, i4]), listingOf([full, i2, i3, i4], { withoutArchive: [i3] })]) {
      const { ev, plan } = evidence(l, totals);
      const v = judge(ev, plan, policy, at('2024-01-04T20:00:00Z'));
      expect(v.chain!.complete).toBe(false);
      expect(errors(v)).toContain(`chain: chain ${CHAIN} is broken: ${i4.snapshot} builds on ${i3.snapshot}, which is not in the store; the newest point (${i4.snapshot}) cannot be restored`);
    }
    expect(errors(judge(...Object.values(evidence(listingOf([full, i2, i3, i4], { withoutArchive: [i3] }), totals)) as [ServerEvidence, ReturnType<typeof watchPlan>], policy, at('2024-01-04T20:00:00Z'))))
      .toContainEqual(expect.stringMatching(/^chain: the archive of manifest .*20240103T020000Z\.from-20240102T020000Z\.b3\.jsonl\.zst\.gpg is missing/));
    // an upload that did not finish (no manifest) is a warning, the chain still restores to i3
    const { ev, plan } = evidence(listingOf([full, i2, i3, i4], { withoutManifest: [i4] }), { [i3.snapshot]: totals[i3.snapshot] });
    const v = judge(ev, plan, policy, at('2024-01-03T20:00:00Z'));
    expect(v.ok).toBe(true);
    expect(v.findings).toEqual([expect.objectContaining({ level: 'warning', check: 'chain', message: expect.stringMatching(/archive without a manifest/) })]);
  });

  it('a manifest or an archive that does not decrypt or match is named', () => {
    const { ev, plan } = evidence(healthy, totals);
    ev.manifests[1] = { ...ev.manifests[1], error: 'not encrypted to this key', header: undefined };
    ev.data[0] = { key: ev.data[0].key, error: 'checksum mismatch (store has 1000 bytes sha256 y, uploaded 1000 bytes sha256 x)' };
    const v = judge(ev, plan, policy, at('2024-01-04T20:00:00Z'));
    expect(errors(v)).toEqual([`manifest: ${manifestObjectKey(P, i2)}: not encrypted to this key`, `data: ${archiveKey(P, i4)}: checksum mismatch (store has 1000 bytes sha256 y, uploaded 1000 bytes sha256 x)`]);
    // a stored size other than the uploaded one (the manifest says) is a truncated or replaced archive
    const e2 = evidence(healthy, totals);
    e2.ev.manifests[0].header!.archive.bytes = 999;
    expect(errors(judge(e2.ev, e2.plan, policy, at('2024-01-04T20:00:00Z')))).toEqual([`manifest: ${archiveKey(P, full)}: 1000 bytes in the store, 999 uploaded (truncated or replaced)`]);
  });

  it('a manifest that shrinks: more than half the files or bytes gone is flagged, a small drop is not', () => {
    const run = (files: number, bytes: number) => {
      const { ev, plan } = evidence(healthy, { [i3.snapshot]: { files: 100, bytes: 10_000 }, [i4.snapshot]: { files, bytes } });
      return errors(judge(ev, plan, policy, at('2024-01-04T20:00:00Z')));
    };
    expect(run(60, 6000)).toEqual([]);
    expect(run(0, 0)).toEqual([
      'totals: the newest manifest (20240104T020000Z) lists 0 files, 20240103T020000Z listed 100 (−100%): data vanished on the server or the pull read nothing',
      'totals: the newest manifest (20240104T020000Z) holds 0 bytes, 20240103T020000Z held 10000 (−100%)',
    ]);
    expect(run(100, 4000)).toEqual([expect.stringMatching(/^totals: .* holds 4000 bytes, .* held 10000 \(−60%\)$/)]);
  });

  it('an empty store, or one that cannot be listed, fails', () => {
    const empty = evidence(listingOf([]));
    expect(errors(judge(empty.ev, empty.plan, policy, at('2024-01-04T20:00:00Z')))).toEqual(['store: no complete archive (archive + manifest) in the store']);
    expect(errors(judge({ ...empty.ev, listError: 'AccessDenied' }, empty.plan, policy, at('2024-01-04T20:00:00Z')))).toEqual(['store: cannot list the store: AccessDenied']);
  });

  it('renders a table and one failure line per failing server', () => {
    const good = evidence(healthy, totals);
    const bad = evidence(listingOf([full, i2, i4]), totals);
    const r: WatchReport = {
      pullvault: 'watch', v: 1, at: '2024-01-04T20:00:00.000Z', store: 'dir:/s', ok: false,
      servers: [judge(good.ev, good.plan, policy, at('2024-01-04T20:00:00Z')), { ...judge(bad.ev, bad.plan, policy, at('2024-01-04T20:00:00Z')), server: 'db1' }],
    };
    const text = renderWatch(r);
    expect(text).toMatch(/^SERVER +STATE +NEWEST/m);
    expect(text).toMatch(/^web1 +ok +20240104T020000Z incr +18\.0h +3\.8d +4 +101 /m);
    expect(text).toMatch(/^db1 +FAILED +20240104T020000Z incr .* 0 BROKEN/m);
    expect(failureLines(r)).toEqual([expect.stringMatching(/^db1: chain: chain .* is broken/)]);
  });
});

describe('watch: usage', () => {
  const run = async (args: string[]) => {
    let err = '';
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((err += String(c)), true));
    const o = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      return { code: await watchMain(args), err };
    } finally {
      e.mockRestore();
      o.mockRestore();
    }
  };
  it('says what is wrong and exits 2, before reading any store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pv-watch-usage-'));
    const inv = join(dir, 'inventory.json');
    writeFileSync(inv, JSON.stringify({ servers: [{ name: 'web1' }], schedule: { offsite: { fullEveryDays: 30 } }, offsite: { type: 'dir', path: '/nonexistent' } }));
    expect(await run([])).toEqual({ code: 2, err: expect.stringContaining('--config FILE is required') });
    expect(await run(['--config', inv, '--now', 'yesterday'])).toEqual({ code: 2, err: expect.stringContaining('--now: not a time: yesterday') });
    expect(await run(['--config', inv, '--server', 'db9'])).toEqual({ code: 2, err: expect.stringContaining('--server db9: not in') });
    expect(await run(['--config', inv, '--sample', '0'])).toEqual({ code: 2, err: expect.stringContaining('--sample: expected a number ≥ 1, got 0') });
    expect(await run(['--config', inv, '--bogus'])).toEqual({ code: 2, err: expect.stringContaining("Unknown option '--bogus'") });
    rmSync(dir, { recursive: true });
  });
});
