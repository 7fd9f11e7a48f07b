// One `pullvault run`: pre-flight → pull lock → pull every server → offsite lock → retention →
// status.json → pull lock released → (offsite) → Prometheus textfile, healthcheck pings.
// Composes the pieces; decides little. The pull lock is let go before the upload, so a slow or
// stuck upload never keeps the next run from pulling; that run skips its own upload while the
// offsite lock is held, and a later one sends the newest snapshot.
import { mkdir } from 'node:fs/promises';
import type { RuntimeConfig } from './config.ts';
import { EXIT } from './exit-codes.ts';
import { acquireLock, type Lock } from './lock.ts';
import { snapshotIdFor, vaultLayout } from './manifest-format.ts';
import { ping } from './notify.ts';
import { offsiteLockFile, pinLines } from './offsite-pins.ts';
import { preflight } from './preflight.ts';
import { prune, type PruneReport } from './prune.ts';
import { listSnapshots, pullServer, type PullResult } from './pull/snapshot.ts';
import { readStatus, writeFileAtomic } from './state.ts';
import { emptyStatus, nextStatus, prometheusText, type StatusDoc } from './status.ts';

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

async function writeProm(config: RuntimeConfig, doc: StatusDoc, warn: (s: string) => void): Promise<void> {
  const dir = config.inventory.notifications?.prometheusTextfileDir;
  if (!dir) return;
  await writeFileAtomic(`${dir}/${PROM_FILE}`, prometheusText(doc)).catch((e) => warn(`warning: prometheus textfile: ${(e as Error).message}`));
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
    const doc = nextStatus(emptyStatus(), { startedAt, finishedAt: now(), exitCode: EXIT.REFUSED, refused: verdict.reason }, []);
    await writeProm(config, doc, warn);
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
  let offsiteLock: Lock | undefined;
  let pulled: { results: PullResult[]; pruned: PruneReport[]; doc: StatusDoc };
  try {
    await ping(hc, 'start', '', warn);
    const id = snapshotIdFor(startedAt);
    const servers = config.inventory.servers.filter((s) => !opts.only || opts.only.includes(s.name));
    const results: PullResult[] = [];
    for (const server of servers) {
      log(`${server.name}: pulling into ${id}`);
      const r = await pullServer(config, server, { id, log, progress: opts.progress, onProgress: opts.onProgress });
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
    const doc = nextStatus(await readStatus(statusFile(config)), { startedAt, finishedAt: now(), exitCode: exitCodeFor(results) }, results, counts);
    await writeFileAtomic(statusFile(config), JSON.stringify(doc, null, 2) + '\n').catch((e) => warn(`warning: status file: ${(e as Error).message}`));
    pulled = { results, pruned, doc };
  } catch (e) {
    await offsiteLock?.release();
    throw e;
  } finally {
    await lock.lock.release();
  }

  const { results, pruned } = pulled;
  let doc = pulled.doc;
  if (offsiteLock) {
    try {
      await opts.offsite!(config, results, { log });
    } catch (e) {
      warn(`offsite: FAILED: ${(e as Error).message}`);
      results.push({ server: '(offsite)', ok: false, error: (e as Error).message });
      doc = await recordOffsiteFailure(config, doc, exitCodeFor(results), results, now(), warn);
    } finally {
      await offsiteLock.release();
    }
  }
  const exitCode = exitCodeFor(results);
  await writeProm(config, doc, warn);
  const failed = results.filter((r) => !r.ok);
  const summary = failed.length
    ? `failed: ${failed.map((r) => `${r.server}: ${r.error}`).join('\n')}`
    : `ok: ${results.map((r) => `${r.server} ${r.snapshot?.id}${r.snapshot?.info.partial ? ' (partial)' : ''}`).join(', ')}`;
  await ping(hc, failed.length ? 'fail' : 'success', summary, warn);
  if (failed.length) warn(`pullvault: run finished with failures: ${failed.map((r) => r.server).join(', ')} (exit ${exitCode})`);
  else log(`pullvault: run finished, exit ${exitCode}`);
  return { exitCode, results, pruned, status: doc };
}

/**
 * After a failed upload (no lock held): the run's outcome in status.json, unless a later run has
 * written its own since. The servers' entries are left as they are.
 */
async function recordOffsiteFailure(config: RuntimeConfig, mine: StatusDoc, exitCode: number, results: PullResult[], finishedAt: Date, warn: (s: string) => void): Promise<StatusDoc> {
  const cur = await readStatus(statusFile(config));
  if (!cur.lastRun || cur.lastRun.startedAt !== mine.lastRun?.startedAt) return mine;
  cur.lastRun = { ...cur.lastRun, finishedAt: finishedAt.toISOString(), exitCode, failed: results.filter((r) => !r.ok).map((r) => r.server) };
  await writeFileAtomic(statusFile(config), JSON.stringify(cur, null, 2) + '\n').catch((e) => warn(`warning: status file: ${(e as Error).message}`));
  return cur;
}
