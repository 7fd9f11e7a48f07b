// docs/grafana-dashboard.json against what the runtime writes: every metric its PromQL queries
// (panels and template variables) name is one prometheusText emits, and every emitted metric is
// on the dashboard. A metric renamed on either side fails here.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { prometheusText, type StatusDoc } from '../../runtime/status.ts';

const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as {
  panels: { title: string; type: string; targets?: { expr: string }[]; panels?: unknown[] }[];
  templating: { list: { name: string; definition: string; query: { query: string } }[] };
};

const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);

/** Metric names a PromQL expression reads: identifiers that are not functions, keywords, labels or strings. */
function metricsIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const out: string[] = [];
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = bare.slice(m.index! + m[0].length).trimStart();
    if (after.startsWith('(') || KEYWORDS.has(m[0].toLowerCase())) continue;
    out.push(m[0]);
  }
  return out;
}

/** label_values(metric, label) / label_values(metric{…}, label): the metric. */
const variableMetric = (q: string) => /label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(q)?.[1];

function emitted(): Set<string> {
  // every field set, so every metric is written
  const doc: StatusDoc = {
    version: 1,
    servers: {
      web1: { lastRunAt: '2024-01-01T02:05:00Z', ok: true, lastSnapshot: '20240101T020000Z', lastSnapshotAt: '2024-01-01T02:04:00Z', lastSuccessAt: '2024-01-01T02:05:00Z', partial: false, files: 10, bytes: 100, hashedFiles: 2, seconds: 3, snapshots: 4 },
    },
  };
  const text = prometheusText(doc, { version: 1, pid: 1, startedAt: '2024-01-01T02:00:00Z', finishedAt: '2024-01-01T02:06:00Z', exitCode: 0, outcome: 'ok' });
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
}

describe('Grafana dashboard (docs/grafana-dashboard.json)', () => {
  it('reads metric names out of PromQL, and only them', () => {
    expect(metricsIn('time() - pullvault_a{instance=~"$instance", x="y(z)"} and on(instance) pullvault_b == 0')).toEqual(['pullvault_a', 'pullvault_b']);
    expect(metricsIn('max by (server) (max_over_time(pullvault_c[1h])) > bool 1')).toEqual(['pullvault_c']);
    expect(variableMetric('label_values(pullvault_d{instance=~"$instance"}, server)')).toBe('pullvault_d');
  });

  it('every metric it queries is one the runtime emits, and every emitted metric is on it', () => {
    const have = emitted();
    expect(have.size).toBeGreaterThanOrEqual(15);
    const used = new Map<string, string[]>();
    const note = (metric: string, where: string) => used.set(metric, [...(used.get(metric) ?? []), where]);
    const panels = dashboard.panels.flatMap((p) => [p, ...((p.panels ?? []) as typeof dashboard.panels)]);
    for (const p of panels) for (const t of p.targets ?? []) for (const m of metricsIn(t.expr)) note(m, `panel "${p.title}"`);
    for (const v of dashboard.templating.list) {
      for (const q of [v.definition, v.query.query]) {
        const m = variableMetric(q);
        expect(m, `variable ${v.name}: ${q}`).toBeDefined();
        note(m!, `variable $${v.name}`);
      }
    }
    const unknown = [...used].filter(([m]) => !have.has(m)).map(([m, where]) => `${m} (${where.join(', ')})`);
    expect(unknown, 'queried but not emitted by prometheusText').toEqual([]);
    expect([...have].filter((m) => !used.has(m)), 'emitted but on no panel').toEqual([]);
    // every data panel queries something
    for (const p of panels.filter((x) => x.type !== 'row')) expect(p.targets?.length, p.title).toBeGreaterThan(0);
  });
});
