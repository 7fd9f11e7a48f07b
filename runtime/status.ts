// Run status, decided and rendered purely: the status.json document, the text `pullvault
// status` prints, and the Prometheus textfile (node_exporter textfile collector format).
import type { PullResult } from './pull/snapshot.ts';
import type { RunRecord, RunState } from './run-record.ts';

export interface ServerStatus {
  lastRunAt: string;
  ok: boolean;
  error?: string;
  lastSnapshot?: string;
  lastSnapshotAt?: string;
  /** last time a pull ended ok */
  lastSuccessAt?: string;
  partial?: boolean;
  unreadable?: string[];
  files?: number;
  bytes?: number;
  hashedFiles?: number;
  /** bytes read anew by the pull (the rest hard-linked from the previous snapshot) */
  hashedBytes?: number;
  seconds?: number;
  snapshots?: number;
}

/** Per-server state, on the backup disk next to the snapshots it describes; the run itself is in the run record. */
export interface StatusDoc {
  version: 1;
  servers: Record<string, ServerStatus>;
}

export const emptyStatus = (): StatusDoc => ({ version: 1, servers: {} });

export function nextStatus(
  prev: StatusDoc,
  run: { finishedAt: Date },
  results: PullResult[],
  snapshotCounts: Record<string, number> = {},
): StatusDoc {
  const servers: Record<string, ServerStatus> = { ...prev.servers };
  for (const r of results) {
    const old = prev.servers[r.server];
    const s: ServerStatus = { lastRunAt: run.finishedAt.toISOString(), ok: r.ok };
    if (r.error) s.error = r.error;
    const snap = r.snapshot;
    if (snap) {
      s.lastSnapshot = snap.id;
      s.lastSnapshotAt = snap.info.finishedAt;
      s.partial = snap.info.partial;
      if (snap.info.unreadable.length) s.unreadable = snap.info.unreadable.slice(0, 50);
      s.files = snap.info.stats.files;
      s.bytes = snap.info.stats.bytes;
      s.hashedFiles = snap.info.stats.hashedFiles;
      s.hashedBytes = snap.info.stats.hashedBytes;
      s.seconds = snap.info.stats.seconds;
    } else if (old) {
      // keep what the last snapshot was
      for (const k of ['lastSnapshot', 'lastSnapshotAt', 'partial', 'files', 'bytes', 'hashedFiles', 'hashedBytes', 'seconds'] as const) {
        if (old[k] !== undefined) (s as unknown as Record<string, unknown>)[k] = old[k];
      }
    }
    s.lastSuccessAt = r.ok ? run.finishedAt.toISOString() : old?.lastSuccessAt;
    if (s.lastSuccessAt === undefined) delete s.lastSuccessAt;
    if (snapshotCounts[r.server] !== undefined) s.snapshots = snapshotCounts[r.server];
    servers[r.server] = s;
  }
  return { version: 1, servers };
}

/** The first line of `pullvault status`: what the run record says, never more. */
export function renderLastRun(rec: RunRecord | undefined, state: RunState, now: Date): string {
  if (!rec || state === 'never') return 'last run: never';
  const ago = (iso: string) => `${formatAge(now.getTime() - Date.parse(iso))} ago`;
  if (state === 'running') return `last run: running since ${rec.startedAt} (${ago(rec.startedAt)}), pid ${rec.pid}`;
  if (!rec.finishedAt) return `last run: INTERRUPTED: started ${rec.startedAt} (${ago(rec.startedAt)}), pid ${rec.pid}, never finished (killed or crashed)`;
  const head = `last run: ${rec.finishedAt} (${ago(rec.finishedAt)}), exit ${rec.exitCode}`;
  if (state === 'interrupted') return `${head}, INTERRUPTED${rec.reason ? ` by ${rec.reason}` : ''}`;
  if (state === 'refused') return `${head}, REFUSED: ${rec.reason ?? 'pre-flight check failed'}`;
  if (state === 'failed') return `${head}, failed: ${rec.failed?.join(', ') || rec.reason || 'see the log'}`;
  return `${head}, ${state}`;
}

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s}s`;
  if (s < 90 * 60) return `${Math.round(s / 60)}m`;
  if (s < 36 * 3600) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86400).toFixed(1)}d`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

/** The table `pullvault status` prints. `names`: configured servers (shown even if never run). */
export function renderStatus(doc: StatusDoc, names: string[], now: Date, last: { record?: RunRecord; state: RunState }): string {
  const lines = [renderLastRun(last.record, last.state, now)];
  const rows = [['SERVER', 'STATE', 'LAST SNAPSHOT', 'AGE', 'FILES', 'SIZE', 'FLAGS']];
  for (const name of names) {
    const s = doc.servers[name];
    if (!s) {
      rows.push([name, 'never', '-', '-', '-', '-', '']);
      continue;
    }
    const flags = [s.partial ? `partial(${s.unreadable?.length ?? 0} unreadable)` : '', s.ok ? '' : 'failed'].filter(Boolean).join(' ');
    rows.push([
      name,
      s.ok ? 'ok' : 'FAILED',
      s.lastSnapshot ?? '-',
      s.lastSnapshotAt ? formatAge(now.getTime() - Date.parse(s.lastSnapshotAt)) : '-',
      s.files !== undefined ? String(s.files) : '-',
      s.bytes !== undefined ? formatBytes(s.bytes) : '-',
      flags,
    ]);
  }
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) lines.push(r.map((cell, c) => cell.padEnd(w[c])).join('  ').trimEnd());
  for (const name of names) {
    const s = doc.servers[name];
    if (s?.error) lines.push(`${name}: ${s.error}`);
  }
  return lines.join('\n') + '\n';
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const ts = (iso?: string) => (iso ? Math.floor(Date.parse(iso) / 1000) : undefined);

/** node_exporter textfile collector format. */
export function prometheusText(doc: StatusDoc, run?: RunRecord): string {
  const out: string[] = [];
  const metric = (name: string, help: string, type: string, samples: [Record<string, string>, number | undefined][]) => {
    const present = samples.filter(([, v]) => v !== undefined);
    if (!present.length) return;
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of present) {
      const l = Object.entries(labels).map(([k, x]) => `${k}="${esc(x)}"`).join(',');
      out.push(`${name}${l ? `{${l}}` : ''} ${v}`);
    }
  };
  // A run that started and never finished shows as finished 0 with no exit code: never as a success.
  const done = run?.finishedAt ? run : undefined;
  metric('pullvault_last_run_start_timestamp_seconds', 'When the last pullvault run started.', 'gauge', [[{}, ts(run?.startedAt)]]);
  metric('pullvault_last_run_finished', '1 once the last run recorded its end; 0 while it runs or if it was killed.', 'gauge', [[{}, run ? (done ? 1 : 0) : undefined]]);
  metric('pullvault_last_run_timestamp_seconds', 'When the last pullvault run finished.', 'gauge', [[{}, ts(done?.finishedAt)]]);
  metric('pullvault_last_run_exit_code', 'Exit code of the last pullvault run.', 'gauge', [[{}, done?.exitCode]]);
  metric('pullvault_last_run_duration_seconds', 'Duration of the last run.', 'gauge', [
    [{}, done ? (Date.parse(done.finishedAt!) - Date.parse(done.startedAt)) / 1000 : undefined],
  ]);
  metric('pullvault_last_run_outcome', 'Outcome of the last finished run (ok, partial, failed, refused, interrupted).', 'gauge',
    done?.outcome ? [[{ outcome: done.outcome }, 1]] : []);
  const servers = Object.entries(doc.servers).sort(([a], [b]) => (a < b ? -1 : 1));
  const per = (f: (s: ServerStatus) => number | undefined) => servers.map(([n, s]) => [{ server: n }, f(s)] as [Record<string, string>, number | undefined]);
  metric('pullvault_server_up', '1 if the last pull of the server succeeded.', 'gauge', per((s) => (s.ok ? 1 : 0)));
  metric('pullvault_server_last_success_timestamp_seconds', 'Last successful pull of the server.', 'gauge', per((s) => ts(s.lastSuccessAt)));
  metric('pullvault_snapshot_timestamp_seconds', 'When the newest snapshot was finished.', 'gauge', per((s) => ts(s.lastSnapshotAt)));
  metric('pullvault_snapshot_partial', '1 if the newest snapshot is flagged partial.', 'gauge', per((s) => (s.lastSnapshot ? (s.partial ? 1 : 0) : undefined)));
  metric('pullvault_snapshot_files', 'Files in the newest snapshot.', 'gauge', per((s) => s.files));
  metric('pullvault_snapshot_bytes', 'Bytes of file content in the newest snapshot.', 'gauge', per((s) => s.bytes));
  metric('pullvault_snapshot_hashed_files', 'Files hashed (not reused) for the newest snapshot.', 'gauge', per((s) => s.hashedFiles));
  metric('pullvault_snapshot_duration_seconds', 'Time the newest snapshot took.', 'gauge', per((s) => s.seconds));
  metric('pullvault_snapshots', 'Local snapshots kept.', 'gauge', per((s) => s.snapshots));
  return out.join('\n') + '\n';
}
