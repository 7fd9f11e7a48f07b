// The Pi's run history: one JSON line per finished run (ok, partial, failed, refused, interrupted
// by an internal error), appended next to the run record, for `pullvault report`. Bounded: once
// the file would pass HISTORY_MAX_BYTES it becomes history.jsonl.1 (the previous .1 goes) and a
// new one starts, so the two hold at most twice that. A torn last line is skipped when read.
import { appendFile, readFile, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { RuntimeConfig } from '../contract/runtime-config.ts';
import { snapshotIdFor } from '../contract/disk-layout.ts';
import { runRecordFile, type RunOutcome, type RunRecord } from './run-record.ts';
import type { Notifier } from './notifier.ts';
import type { StatusDoc } from './status.ts';

const HISTORY_MAX_BYTES = 1 << 20;

export interface HistoryServer {
  server: string;
  ok: boolean;
  error?: string;
  snapshot?: string;
  partial?: boolean;
  files?: number;
  bytes?: number;
  /** bytes read anew by this pull (the rest hard-linked from the previous snapshot) */
  hashedBytes?: number;
  seconds?: number;
}

export interface HistoryEntry {
  v: 1;
  startedAt: string;
  finishedAt: string;
  exitCode?: number;
  outcome?: RunOutcome;
  reason?: string;
  /** the servers this run pulled (or tried to) */
  servers: HistoryServer[];
}

export const historyFile = (config: RuntimeConfig): string => join(dirname(runRecordFile(config)), 'history.jsonl');

/** Pure: the finished run and the servers' status after it; a server belongs to the run if it was pulled since its start. */
export function historyEntry(run: RunRecord & { finishedAt: string }, doc: StatusDoc): HistoryEntry {
  const since = Date.parse(run.startedAt);
  const servers: HistoryServer[] = [];
  for (const [server, s] of Object.entries(doc.servers).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!(Date.parse(s.lastRunAt) >= since)) continue;
    // the run names its snapshots by its start (cycle.ts); a failed pull keeps the last one's figures
    const ran = s.lastSnapshot === snapshotIdFor(new Date(run.startedAt));
    servers.push({
      server,
      ok: s.ok,
      ...(s.error ? { error: s.error.slice(0, 500) } : {}),
      ...(ran ? { snapshot: s.lastSnapshot, partial: s.partial, files: s.files, bytes: s.bytes, hashedBytes: s.hashedBytes, seconds: s.seconds } : {}),
    });
  }
  const { startedAt, finishedAt, exitCode, outcome, reason } = run;
  return { v: 1, startedAt, finishedAt, ...(exitCode !== undefined ? { exitCode } : {}), ...(outcome ? { outcome } : {}), ...(reason ? { reason } : {}), servers };
}

/** The history as a channel of the run's event stream: every finished run, this one's or a superseded one's. */
export function historyChannel(file: string): Notifier {
  return {
    name: `run history ${file}`,
    kinds: ['refused', 'ok', 'partial', 'failed'],
    timeoutMs: 10_000,
    secrets: [],
    async deliver(event) {
      const { run } = event;
      if (run.finishedAt) await appendHistory(file, historyEntry({ ...run, finishedAt: run.finishedAt }, event.status));
    },
  };
}

/** Always on: `pullvault report` draws from it. */
export const historyNotifier = (config: RuntimeConfig): Notifier => historyChannel(historyFile(config));

export async function appendHistory(file: string, entry: HistoryEntry, maxBytes = HISTORY_MAX_BYTES): Promise<void> {
  const line = JSON.stringify(entry) + '\n';
  const size = await stat(file).then((s) => s.size, () => 0);
  if (size > 0 && size + line.length > maxBytes) await rename(file, `${file}.1`);
  await appendFile(file, line, { mode: 0o644 });
}

function parseLines(text: string): HistoryEntry[] {
  const out: HistoryEntry[] = [];
  for (const l of text.split('\n')) {
    if (!l.trim()) continue;
    try {
      const e = JSON.parse(l) as HistoryEntry;
      if (e?.v === 1 && typeof e.startedAt === 'string' && Array.isArray(e.servers)) out.push(e);
    } catch {
      // a torn line (power cut mid-append)
    }
  }
  return out;
}

/** The rotated file, then the current one: oldest first. */
export async function readHistory(file: string): Promise<HistoryEntry[]> {
  const read = (f: string) => readFile(f, 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? '' : Promise.reject(e)));
  return [...parseLines(await read(`${file}.1`)), ...parseLines(await read(file))];
}
