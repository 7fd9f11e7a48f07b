// One `pullvault run`: pre-flight → pull lock → run record "started" → pull every server (making
// room first) → offsite lock → retention → status.json → pull lock released → (offsite) → run
// record "finished". Each record is reported as an event (notifier.ts) to every channel — mail,
// healthchecks, the Prometheus textfile — from record() alone. Composes the pieces; decides little.
// The pull lock is let go before the upload, so a slow or stuck upload never keeps the next run
// from pulling; that run skips its own upload while the offsite lock is held, and a later one
// sends the newest snapshot.
import { mkdir } from 'node:fs/promises';
import type { RuntimeConfig } from '../contract/runtime-config.ts';
import { EXIT } from './exit-codes.ts';
import { acquireLock, processStartTime, readLockHolder, type Lock, type LockHolder } from './lock.ts';
import { snapshotIdFor, vaultLayout } from '../contract/disk-layout.ts';
import { runEvent } from './notifier.ts';
import { sendEvent } from './notify-registry.ts';
import { offsiteLockFile, pinLines } from './offsite-pins.ts';
import { preflight } from './preflight.ts';
import { prune, type PruneReport } from './prune.ts';
import { listSnapshots, type PullResult } from './pull/snapshot.ts';
import { pullWithRoom } from './space.ts';
import { finishedRecord, readRunRecord, runRecordFile, runState, startedRecord, writeRunRecord, type RunRecord } from './run-record.ts';
import { writeFileAtomic } from './state.ts';
import { readStatus } from './status-file.ts';
import { nextStatus, type StatusDoc } from './status.ts';

export interface CycleOptions {
  /** progress and info lines (terminal), or nothing (cron) */
  log: (line: string) => void;
  /** warnings and errors: always shown */
  warn: (line: string) => void;
  progress?: boolean;
  onProgress?: (chunk: string) => void;
  /** only these servers (default all) */
  only?: string[];
  /** skip local retention */
  noPrune?: boolean;
  /** the offsite phase, when the offsite module is present */
  offsite?: (config: RuntimeConfig, results: PullResult[], opts: { log: (s: string) => void }) => Promise<unknown>;
  now?: () => Date;
}

export interface CycleResult {
  exitCode: number;
  results: PullResult[];
  pruned: PruneReport[];
  status?: StatusDoc;
  refused?: string;
}

export const statusFile = (config: RuntimeConfig) => vaultLayout(config.paths.dataDir).status;
const lockFile = (config: RuntimeConfig) => vaultLayout(config.paths.dataDir).lock;

interface Report {
  /** false when a later run's record is the last run's: it is kept, the event still goes out */
  current?: boolean;
  results?: PullResult[];
  warnings?: string[];
  log?: (s: string) => void;
}

/**
 * The run record, then the event it stands for, to every channel: the one place a run reports.
 * A failure to write or to notify is said, never fatal to the backup.
 */
async function record(config: RuntimeConfig, doc: StatusDoc, run: RunRecord, warn: (s: string) => void, report: Report = {}): Promise<void> {
  const current = report.current ?? true;
  if (current) await writeRunRecord(runRecordFile(config), run).catch((e) => warn(`warning: run record ${runRecordFile(config)}: ${(e as Error).message}`));
  const event = runEvent({ pi: config.inventory.pi.name, run, status: doc, current, results: report.results, warnings: report.warnings });
  await sendEvent(config, event, { warn, log: report.log });
}

/** A run refused before any work (pre-flight, missing tools) is recorded as refused, with its reason. */
export async function recordRefusal(config: RuntimeConfig, startedAt: Date, finishedAt: Date, reason: string, warn: (s: string) => void, details?: string[]): Promise<void> {
  // A run that is still going keeps its record: this refusal did nothing to replace it.
  const last = await readRunRecord(runRecordFile(config));
  const current = runState(last, await runHolder(config, last)) !== 'running';
  const rec = finishedRecord(startedRecord(process.pid, await processStartTime(process.pid), startedAt), finishedAt, EXIT.REFUSED, { reason });
  await record(config, await readStatus(statusFile(config)), rec, warn, { current, warnings: details });
}

/**
 * The lock held by the process of `rec`: the pull lock while it pulls, the offsite lock while it
 * uploads (after letting the pull lock go). What `runState` needs to tell running from killed.
 */
export async function runHolder(config: RuntimeConfig, rec: RunRecord | undefined): Promise<LockHolder | undefined> {
  const pull = await readLockHolder(lockFile(config));
  if (!rec || pull?.pid === rec.pid) return pull;
  const offsite = await readLockHolder(offsiteLockFile(config));
  return offsite?.pid === rec.pid ? offsite : pull;
}

/** Writes this run's record unless a later run has started since (its record is the last run's now). */
async function recordIfMine(config: RuntimeConfig, doc: StatusDoc, mine: RunRecord, warn: (s: string) => void, report: Report = {}): Promise<void> {
  const cur = await readRunRecord(runRecordFile(config));
  const current = !cur || (cur.pid === mine.pid && cur.startedAt === mine.startedAt);
  await record(config, doc, mine, warn, { ...report, current });
}

function exitCodeFor(results: PullResult[]): number {
  if (results.some((r) => !r.ok)) return EXIT.SERVER_FAILED;
  if (results.some((r) => r.snapshot?.info.partial)) return EXIT.PARTIAL;
  return EXIT.OK;
}

export async function runCycle(config: RuntimeConfig, opts: CycleOptions): Promise<CycleResult> {
  const now = opts.now ?? (() => new Date());
  const startedAt = now();
  const { log } = opts;
  // kept for the events' summaries (the failure mail's body)
  const warnings: string[] = [];
  const warn = (line: string) => {
    warnings.push(line);
    opts.warn(line);
  };

  const verdict = await preflight(config);
  if (!verdict.ok) {
    warn(`pullvault: refusing to run: ${verdict.reason}`);
    await recordRefusal(config, startedAt, now(), verdict.reason, warn);
    return { exitCode: EXIT.REFUSED, results: [], pruned: [], refused: verdict.reason };
  }
  for (const n of verdict.notes) log(n);
  log(`backup disk ok: ${verdict.freeMiB} MiB free`);

  const L = vaultLayout(config.paths.dataDir);
  await mkdir(L.state, { recursive: true, mode: 0o700 });
  await mkdir(L.snapshots, { recursive: true, mode: 0o700 });
  const lock = await acquireLock(lockFile(config));
  if (!lock.ok) {
    warn(`pullvault: another run is in progress (${lock.holder}); exiting`);
    return { exitCode: EXIT.LOCKED, results: [], pruned: [] };
  }
  const started = startedRecord(process.pid, await processStartTime(process.pid), startedAt);
  let offsiteLock: Lock | undefined;
  let pulled: { results: PullResult[]; pruned: PruneReport[]; doc: StatusDoc };
  try {
    try {
      await record(config, await readStatus(statusFile(config)), started, warn, { log });
      const id = snapshotIdFor(startedAt);
      const servers = config.inventory.servers.filter((s) => !opts.only || opts.only.includes(s.name));
      const results: PullResult[] = [];
      for (const server of servers) {
        log(`${server.name}: pulling into ${id}`);
        const r = await pullWithRoom(config, server, { id, log, warn, now: now(), noPrune: opts.noPrune, progress: opts.progress, onProgress: opts.onProgress });
        results.push(r);
        const info = r.snapshot?.info;
        if (info) {
          const flag = info.partial ? ` PARTIAL (${info.unreadable.length} unreadable${info.errors ? `, ${info.errors.length} error(s)` : ''})` : '';
          log(`${server.name}: snapshot ${id}: ${info.stats.files} files, ${info.stats.bytes} bytes, ${info.stats.hashedFiles} hashed, ${info.stats.seconds} s${flag}`);
          for (const u of info.unreadable.slice(0, 20)) warn(`${server.name}: not read: ${u}`);
        }
        if (!r.ok) warn(`${server.name}: FAILED: ${r.error}`);
      }

      if (opts.offsite) {
        // taken before retention runs, so that its note keeps what this upload reads
        const got = await acquireLock(offsiteLockFile(config), pinLines(results.flatMap((r) => (r.snapshot ? [{ server: r.server, id: r.snapshot.id }] : []))));
        if (got.ok) offsiteLock = got.lock;
        else warn(`offsite: another run (${got.holder}) is still uploading; this run's snapshots go offsite with a later run`);
      }

      let pruned: PruneReport[] = [];
      if (!opts.noPrune) {
        try {
          pruned = await prune(config, { now: now(), dryRun: false, log });
        } catch (e) {
          warn(`retention: FAILED: ${(e as Error).message}`);
        }
      }

      // the servers' status is written under the pull lock: a later run's pull results must never
      // be overwritten with these
      const counts: Record<string, number> = {};
      for (const s of servers) counts[s.name] = (await listSnapshots(config.paths.dataDir, s.name)).length;
      const doc = nextStatus(await readStatus(statusFile(config)), { finishedAt: now() }, results, counts);
      await writeFileAtomic(statusFile(config), JSON.stringify(doc, null, 2) + '\n').catch((e) => warn(`warning: status file: ${(e as Error).message}`));
      pulled = { results, pruned, doc };
    } catch (e) {
      await offsiteLock?.release();
      throw e;
    } finally {
      await lock.lock.release();
    }

    const { results, pruned, doc } = pulled;
    if (offsiteLock) {
      try {
        await opts.offsite!(config, results, { log });
      } catch (e) {
        warn(`offsite: FAILED: ${(e as Error).message}`);
        results.push({ server: '(offsite)', ok: false, error: (e as Error).message });
      } finally {
        await offsiteLock.release();
      }
    }
    const exitCode = exitCodeFor(results);
    const failed = results.filter((r) => !r.ok);
    await recordIfMine(config, doc, finishedRecord(started, now(), exitCode, { failed: failed.map((r) => r.server) }), warn, { results, warnings: [...warnings], log });
    if (failed.length) warn(`pullvault: run finished with failures: ${failed.map((r) => r.server).join(', ')} (exit ${exitCode})`);
    else log(`pullvault: run finished, exit ${exitCode}`);
    return { exitCode, results, pruned, status: doc };
  } catch (e) {
    // an unexpected error: the run ends here, and its record says so
    const rec = finishedRecord(started, now(), EXIT.INTERNAL, { outcome: 'failed', reason: `internal error: ${(e as Error).message}` });
    await recordIfMine(config, await readStatus(statusFile(config)), rec, warn, { warnings: [...warnings], log });
    throw e;
  }
}
