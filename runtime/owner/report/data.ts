// Pure: what `pullvault report` draws, from either source it reads —
// - on the Pi: its run history (runtime/history.ts) and its upload records (uploads.jsonl);
// - on the owner's side: the store itself (each manifest's header: the snapshot's figures, the
//   archive's kind and size), plus the watchdog's latest verdicts.
import { dateOfSnapshotId, type SnapshotInfo } from '../../../contract/disk-layout.ts';
import type { HistoryEntry } from '../../history.ts';
import type { UploadRecord } from '../../offsite/uploads.ts';
import type { WatchReport } from '../watch.ts';

/** One snapshot of one server; t in unix seconds. */
export interface SnapshotPoint {
  t: number;
  snapshot: string;
  files?: number;
  bytes?: number;
  /** bytes read anew by the pull */
  pulledBytes?: number;
  /** the pull's duration */
  seconds?: number;
  partial?: boolean;
}

export interface UploadPoint {
  t: number;
  snapshot: string;
  kind: 'full' | 'incremental';
  bytes: number;
  seconds?: number;
}

export interface RunPoint {
  t: number;
  seconds: number;
  outcome: string;
  /** what failed, or why it was refused */
  detail?: string;
}

export interface ServerSeries {
  server: string;
  snapshots: SnapshotPoint[];
  uploads: UploadPoint[];
  /** pulls of this server that failed: when, and why */
  failures: { t: number; error: string }[];
}

export interface ReportData {
  title: string;
  generatedAt: string;
  /** where the figures come from, in words */
  source: string;
  servers: ServerSeries[];
  /** whole runs (the Pi's history only: the store never sees a run that uploaded nothing) */
  runs?: RunPoint[];
  watch?: WatchReport;
}

const secs = (iso: string) => Math.floor(Date.parse(iso) / 1000);
const byT = <T extends { t: number }>(a: T, b: T) => a.t - b.t;

function series(server: string): ServerSeries {
  return { server, snapshots: [], uploads: [], failures: [] };
}

export function fromPiHistory(o: { title: string; generatedAt: Date; servers: string[]; history: HistoryEntry[]; uploads: UploadRecord[]; watch?: WatchReport }): ReportData {
  const by = new Map(o.servers.map((s) => [s, series(s)]));
  const get = (s: string) => by.get(s) ?? by.set(s, series(s)).get(s)!;
  const runs: RunPoint[] = [];
  for (const h of o.history) {
    const failed = h.servers.filter((s) => !s.ok).map((s) => s.server);
    runs.push({
      t: secs(h.startedAt),
      seconds: Math.max(0, (Date.parse(h.finishedAt) - Date.parse(h.startedAt)) / 1000),
      outcome: h.outcome ?? 'failed',
      ...(h.reason || failed.length ? { detail: [h.reason, failed.length ? `failed: ${failed.join(', ')}` : ''].filter(Boolean).join('; ') } : {}),
    });
    for (const s of h.servers) {
      const ser = get(s.server);
      if (!s.ok && s.error) ser.failures.push({ t: secs(h.startedAt), error: s.error });
      if (s.snapshot)
        ser.snapshots.push({ t: Math.floor(dateOfSnapshotId(s.snapshot).getTime() / 1000), snapshot: s.snapshot, files: s.files, bytes: s.bytes, pulledBytes: s.hashedBytes, seconds: s.seconds, partial: s.partial });
    }
  }
  for (const u of o.uploads) get(u.server).uploads.push({ t: secs(u.uploadedAt), snapshot: u.snapshot, kind: u.kind, bytes: u.bytes, seconds: u.seconds });
  for (const s of by.values()) [s.snapshots, s.uploads, s.failures].forEach((a) => a.sort(byT));
  return { title: o.title, generatedAt: o.generatedAt.toISOString(), source: 'the Pi: its run history and upload records', servers: [...by.values()], runs: runs.sort(byT), ...(o.watch ? { watch: o.watch } : {}) };
}

/** One archive of the store with what its manifest's header says (info: the snapshot's own record). */
export interface StoredArchive {
  server: string;
  snapshot: string;
  kind: 'full' | 'incremental';
  /** the archive's bytes in the store */
  bytes: number;
  info?: SnapshotInfo;
}

export function fromStore(o: { title: string; generatedAt: Date; store: string; servers: string[]; archives: StoredArchive[]; watch?: WatchReport }): ReportData {
  const by = new Map(o.servers.map((s) => [s, series(s)]));
  for (const a of o.archives) {
    const ser = by.get(a.server) ?? by.set(a.server, series(a.server)).get(a.server)!;
    const t = Math.floor(dateOfSnapshotId(a.snapshot).getTime() / 1000);
    ser.uploads.push({ t, snapshot: a.snapshot, kind: a.kind, bytes: a.bytes });
    const st = a.info?.stats;
    ser.snapshots.push({ t, snapshot: a.snapshot, files: st?.files, bytes: st?.bytes, pulledBytes: st?.hashedBytes, seconds: st?.seconds, partial: a.info?.partial });
  }
  for (const s of by.values()) [s.snapshots, s.uploads].forEach((a) => a.sort(byT));
  return { title: o.title, generatedAt: o.generatedAt.toISOString(), source: `the store ${o.store}: every archive's manifest`, servers: [...by.values()], ...(o.watch ? { watch: o.watch } : {}) };
}
