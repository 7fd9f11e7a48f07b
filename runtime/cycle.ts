// One `pullvault run`: pre-flight → lock → pull every server (making room first) → (offsite) → retention →
// status.json, Prometheus textfile, healthcheck pings. Composes the pieces; decides little.
import { mkdir } from 'node:fs/promises';
import type { RuntimeConfig } from './config.ts';
import { EXIT } from './exit-codes.ts';
import { acquireLock, processStartTime, readLockHolder } from './lock.ts';
import { snapshotIdFor, vaultLayout } from './manifest-format.ts';
import { ping } from './notify.ts';
import { preflight } from './preflight.ts';
import { prune, type PruneReport } from './prune.ts';
import { listSnapshots, type PullResult } from './pull/snapshot.ts';
import { pullWithRoom } from './space.ts';
import { finishedRecord, readRunRecord, runRecordFile, runState, startedRecord, writeRunRecord, type RunRecord } from './run-record.ts';
import { readStatus, writeFileAtomic } from './state.ts';
import { nextStatus, prometheusText, type StatusDoc } from './status.ts';

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

export const statusFile = (config: RuntimeConfig) => `${vaultLayout(config.paths.dataDir).state}/status.json`;
export const lockFile = (config: RuntimeConfig) => `${vaultLayout(config.paths.dataDir).state}/lock`;
export const PROM_FILE = 'pullvault.prom';

async function writeProm(config: RuntimeConfig, doc: StatusDoc, run: RunRecord, warn: (s: string) => void): Promise<void> {
  const dir = config.inventory.notifications?.prometheusTextfileDir;
  if (!dir) return;
  await writeFileAtomic(`${dir}/${PROM_FILE}`, prometheusText(doc, run)).catch((e) => warn(`warning: prometheus textfile: ${(e as Error).message}`));
}

/** The run record and the metrics derived from it; a failure to write is said, never fatal to the backup. */
async function record(config: RuntimeConfig, doc: StatusDoc, run: RunRecord, warn: (s: string) => void): Promise<void> {
  await writeRunRecord(runRecordFile(config), run).catch((e) => warn(`warning: run record ${runRecordFile(config)}: ${(e as Error).message}`));
  await writeProm(config, doc, run, warn);
}

/** A run refused before any work (pre-flight, missing tools) is recorded as refused, with its reason. */
export async function recordRefusal(config: RuntimeConfig, startedAt: Date, finishedAt: Date, reason: string, warn: (s: string) => void): Promise<void> {
  // A run that is still going keeps its record: this refusal did nothing to replace it.
  const current = await readRunRecord(runRecordFile(config));
  if (runState(current, await readLockHolder(lockFile(config))) === 'running') return;
  const rec = finishedRecord(startedRecord(process.pid, await processStartTime(process.pid), startedAt), finishedAt, EXIT.REFUSED, { reason });
  await record(config, await readStatus(statusFile(config)), rec, warn);
}

export function exitCodeFor(results: PullResult[]): number {
  if (results.some((r) => !r.ok)) return EXIT.SERVER_FAILED;
  if (results.some((r) => r.snapshot?.info.partial)) return EXIT.PARTIAL;
  return EXIT.OK;
}

export async function runCycle(config: RuntimeConfig, opts: CycleOptions): Promise<CycleResult> {
  const now = opts.now ?? (() => new Date());
  const startedAt = now();
  const hc = config.inventory.notifications?.healthcheckUrl;
  const { log, warn } = opts;

  const verdict = await preflight(config);
  if (!verdict.ok) {
    warn(`pullvault: refusing to run: ${verdict.reason}`);
    await recordRefusal(config, startedAt, now(), verdict.reason, warn);
    await ping(hc, 'fail', `refused: ${verdict.reason}`, warn);
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
  let finished = false;
  try {
    await record(config, await readStatus(statusFile(config)), started, warn);
    await ping(hc, 'start', '', warn);
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
      try {
        await opts.offsite(config, results, { log });
      } catch (e) {
        warn(`offsite: FAILED: ${(e as Error).message}`);
        results.push({ server: '(offsite)', ok: false, error: (e as Error).message });
      }
    }

    let pruned: PruneReport[] = [];
    if (!opts.noPrune) {
      try {
        pruned = await prune(config, { now: now(), dryRun: false, log });
      } catch (e) {
        warn(`retention: FAILED: ${(e as Error).message}`);
      }
    }

    const exitCode = exitCodeFor(results);
    const counts: Record<string, number> = {};
    for (const s of servers) counts[s.name] = (await listSnapshots(config.paths.dataDir, s.name)).length;
    const finishedAt = now();
    const doc = nextStatus(await readStatus(statusFile(config)), { finishedAt }, results.filter((r) => r.server !== '(offsite)'), counts);
    await writeFileAtomic(statusFile(config), JSON.stringify(doc, null, 2) + '\n').catch((e) => warn(`warning: status file: ${(e as Error).message}`));
    const failed = results.filter((r) => !r.ok);
    await record(config, doc, finishedRecord(started, finishedAt, exitCode, { failed: failed.map((r) => r.server) }), warn);
    finished = true;
    const summary = failed.length
      ? `failed: ${failed.map((r) => `${r.server}: ${r.error}`).join('\n')}`
      : `ok: ${results.map((r) => `${r.server} ${r.snapshot?.id}${r.snapshot?.info.partial ? ' (partial)' : ''}`).join(', ')}`;
    await ping(hc, failed.length ? 'fail' : 'success', summary, warn);
    if (failed.length) warn(`pullvault: run finished with failures: ${failed.map((r) => r.server).join(', ')} (exit ${exitCode})`);
    else log(`pullvault: run finished, exit ${exitCode}`);
    return { exitCode, results, pruned, status: doc };
  } catch (e) {
    // an unexpected error: the run ends here, and its record says so
    if (!finished) {
      const rec = finishedRecord(started, now(), EXIT.INTERNAL, { outcome: 'failed', reason: `internal error: ${(e as Error).message}` });
      await record(config, await readStatus(statusFile(config)), rec, warn);
    }
    throw e;
  } finally {
    await lock.lock.release();
  }
}
