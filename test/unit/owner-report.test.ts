// The run history (what a run appends, the bound, reading it back) and the report's pure parts:
// the figures from either source, and a page that holds everything and runs no markup from data.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildRuntime } from '../../provision/build-runtime.ts';
import { appendHistory, historyEntry, readHistory, type HistoryEntry } from '../../runtime/history.ts';
import type { UploadRecord } from '../../runtime/offsite/uploads.ts';
import { fromPiHistory, fromStore } from '../../runtime/owner/report/data.ts';
import { renderReportHtml } from '../../runtime/owner/report/render.ts';
import { chartAssets } from '../../lib/chart-assets.ts';
import type { StatusDoc } from '../../runtime/status.ts';

const work = mkdtempSync(join(tmpdir(), 'pv-report-unit-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('run history', () => {
  const run = { version: 1 as const, pid: 1, startedAt: '2024-01-02T02:00:00.000Z', finishedAt: '2024-01-02T02:03:00.000Z', exitCode: 1, outcome: 'failed' as const };
  const doc: StatusDoc = {
    version: 1,
    servers: {
      web1: { lastRunAt: '2024-01-02T02:02:00.000Z', ok: true, lastSnapshot: '20240102T020000Z', partial: true, files: 10, bytes: 100, hashedBytes: 40, seconds: 7 },
      // failed this run: the status keeps the last snapshot's figures, which are not this run's
      db1: { lastRunAt: '2024-01-02T02:02:30.000Z', ok: false, error: 'ssh: connection refused', lastSnapshot: '20240101T020000Z', files: 5, bytes: 50 },
      // not pulled by this run (--server web1 db1)
      old: { lastRunAt: '2024-01-01T02:01:00.000Z', ok: true, lastSnapshot: '20240101T020000Z' },
    },
  };

  it('one entry per finished run: the servers it pulled, their figures when this run made their snapshot', () => {
    expect(historyEntry(run, doc)).toEqual({
      v: 1, startedAt: run.startedAt, finishedAt: run.finishedAt, exitCode: 1, outcome: 'failed',
      servers: [
        { server: 'db1', ok: false, error: 'ssh: connection refused' },
        { server: 'web1', ok: true, snapshot: '20240102T020000Z', partial: true, files: 10, bytes: 100, hashedBytes: 40, seconds: 7 },
      ],
    });
    // a refusal pulls nothing
    expect(historyEntry({ ...run, outcome: 'refused', exitCode: 3, reason: 'backup disk not mounted', startedAt: '2024-01-03T00:00:00.000Z', finishedAt: '2024-01-03T00:00:01.000Z' }, doc))
      .toMatchObject({ outcome: 'refused', reason: 'backup disk not mounted', servers: [] });
  });

  it('appended, bounded (rotated to .1 past the limit), read back oldest first, a torn line skipped', async () => {
    const f = join(work, 'history.jsonl');
    const entry = (i: number): HistoryEntry => ({ v: 1, startedAt: new Date(Date.UTC(2024, 0, 1, 0, i)).toISOString(), finishedAt: new Date(Date.UTC(2024, 0, 1, 1, i)).toISOString(), outcome: 'ok', servers: [] });
    const line = JSON.stringify(entry(0)).length + 1;
    const max = line * 10;
    for (let i = 0; i < 25; i++) await appendHistory(f, entry(i), max);
    expect(statSync(f).size).toBeLessThanOrEqual(max);
    expect(statSync(`${f}.1`).size).toBeLessThanOrEqual(max);
    const back = await readHistory(f);
    // 25 written: the first 10 went with the second rotation; the rest in order
    expect(back.map((e) => new Date(e.startedAt).getUTCMinutes())).toEqual(Array.from({ length: 15 }, (_, k) => k + 10));
    writeFileSync(f, readFileSync(f, 'utf8') + '{"v":1,"startedAt":"2024-01-0');
    expect(await readHistory(f)).toHaveLength(15);
    expect(await readHistory(join(work, 'none.jsonl'))).toEqual([]);
  });
});

describe('report data and page', () => {
  const hist: HistoryEntry[] = [
    { v: 1, startedAt: '2024-01-01T02:00:00.000Z', finishedAt: '2024-01-01T02:01:40.000Z', outcome: 'ok', servers: [{ server: 'web1', ok: true, snapshot: '20240101T020000Z', files: 3, bytes: 300, hashedBytes: 300, seconds: 9 }] },
    { v: 1, startedAt: '2024-01-02T02:00:00.000Z', finishedAt: '2024-01-02T02:00:10.000Z', outcome: 'failed', servers: [{ server: 'web1', ok: false, error: '</script><img src=x onerror=alert(1)>' }] },
  ];
  const up: UploadRecord[] = [{ v: 1, server: 'web1', snapshot: '20240101T020000Z', kind: 'full', chainId: 'c', key: 'k', manifestKey: 'm', bytes: 1234, manifestBytes: 99, sha256: '', uploadedAt: '2024-01-01T02:01:30.000Z', seconds: 2 }];

  it('from the Pi: runs with duration and outcome, snapshots, failures, uploads by kind', () => {
    const d = fromPiHistory({ title: 't', generatedAt: new Date('2024-01-03T00:00:00Z'), servers: ['web1', 'db1'], history: hist, uploads: up });
    expect(d.runs).toEqual([
      { t: 1704074400, seconds: 100, outcome: 'ok' },
      { t: 1704160800, seconds: 10, outcome: 'failed', detail: 'failed: web1' },
    ]);
    expect(d.servers.map((s) => s.server)).toEqual(['web1', 'db1']);
    expect(d.servers[0]).toEqual({
      server: 'web1',
      snapshots: [{ t: 1704074400, snapshot: '20240101T020000Z', files: 3, bytes: 300, pulledBytes: 300, seconds: 9 }],
      uploads: [{ t: 1704074490, snapshot: '20240101T020000Z', kind: 'full', bytes: 1234, seconds: 2 }],
      failures: [{ t: 1704160800, error: '</script><img src=x onerror=alert(1)>' }],
    });
  });

  it('from the store: one point per archive, figures from its manifest header when it decrypted', () => {
    const info = { version: 1, server: 'web1', id: '20240102T020000Z', startedAt: '', finishedAt: '', partial: true, unreadable: [], dumps: [], stats: { files: 4, bytes: 400, hashedFiles: 1, hashedBytes: 100, seconds: 3 } } as never;
    const d = fromStore({ title: 't', generatedAt: new Date(), store: 'dir:/s', servers: ['web1'], archives: [
      { server: 'web1', snapshot: '20240102T020000Z', kind: 'incremental', bytes: 50, info },
      { server: 'web1', snapshot: '20240101T020000Z', kind: 'full', bytes: 500 },
    ] });
    expect(d.runs).toBeUndefined();
    expect(d.servers[0].snapshots).toEqual([
      { t: 1704074400, snapshot: '20240101T020000Z', files: undefined, bytes: undefined, pulledBytes: undefined, seconds: undefined, partial: undefined },
      { t: 1704160800, snapshot: '20240102T020000Z', files: 4, bytes: 400, pulledBytes: 100, seconds: 3, partial: true },
    ]);
    expect(d.servers[0].uploads.map((u) => [u.kind, u.bytes])).toEqual([['full', 500], ['incremental', 50]]);
  });

  it('the page holds everything, loads nothing, and carries data as inert JSON', () => {
    const page = renderReportHtml(fromPiHistory({ title: 'a <b> & c', generatedAt: new Date(0), servers: ['web1'], history: hist, uploads: up }), chartAssets());
    expect(page).toContain("default-src 'none'");
    // no element outside the scripts points anywhere
    expect(page.replace(/<script[^>]*>[\s\S]*?<\/script>/g, '')).not.toMatch(/\s(src|href|action)\s*=/i);
    expect(page).toContain('<title>a &lt;b&gt; &amp; c</title>');
    // the error text cannot end the data's script element
    expect(page).not.toContain('</script><img');
    expect(page).toContain('\\u003c/script>\\u003cimg src=x onerror=alert(1)>');
    // uPlot inlined, with its license notice
    expect(page).toContain('https://github.com/leeoniya/uPlot (v1.6.32)');
    expect(page).toContain('Permission is hereby granted, free of charge');
    expect(page.match(/<script[\s>]/g)).toHaveLength(4);
  });

  it('the runtime bundle carries uPlot (the Pi has no node_modules)', async () => {
    const b = await buildRuntime({ outFile: null });
    expect(b.content).toContain('Copyright (c) 2022 Leon Sorokin');
    expect(b.content).toContain('leeoniya/uPlot (v1.6.32)');
  }, 120_000);
});
