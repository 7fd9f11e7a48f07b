// The record of the last `pullvault run`: written "started" (pid, time) once the run holds the
// lock and before it pulls anything, and "finished" (exit code, outcome) when it ends, so a run
// that was killed is never mistaken for one that finished. It lives on the Pi's root filesystem
// (not the backup disk), so a refusal because the disk is missing or full is recorded too.
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { RuntimeConfig } from '../contract/runtime-config.ts';
import { EXIT } from './exit-codes.ts';
import type { LockHolder } from './lock.ts';
import { writeFileAtomic } from './state.ts';

const DEFAULT_RUN_RECORD_FILE = '/var/lib/pullvault/last-run.json';

export type RunOutcome = 'ok' | 'partial' | 'failed' | 'refused' | 'interrupted';

export interface RunRecord {
  version: 1;
  pid: number;
  /** start time of pid (/proc/PID/stat field 22): tells this run from a later process with its pid */
  pidStart?: string;
  startedAt: string;
  finishedAt?: string;
  exitCode?: number;
  outcome?: RunOutcome;
  /** why it was refused or interrupted */
  reason?: string;
  /** servers (and "(offsite)") that failed */
  failed?: string[];
}

/** What `pullvault status` says about the last run. */
export type RunState = 'never' | 'running' | RunOutcome;

export const runRecordFile = (config: RuntimeConfig): string => config.paths.runRecordFile ?? DEFAULT_RUN_RECORD_FILE;

export function outcomeFor(exitCode: number): RunOutcome {
  if (exitCode === EXIT.OK) return 'ok';
  if (exitCode === EXIT.PARTIAL) return 'partial';
  if (exitCode === EXIT.REFUSED) return 'refused';
  return 'failed';
}

/**
 * A finished record says what it recorded. A start without a finish is a run still going only if
 * its process is alive and is the one holding the lock; otherwise it was killed (SIGKILL, power
 * loss, OOM) before it could say so: interrupted.
 */
export function runState(rec: RunRecord | undefined, holder: LockHolder | undefined): RunState {
  if (!rec) return 'never';
  if (rec.finishedAt) return rec.outcome ?? outcomeFor(rec.exitCode ?? EXIT.SERVER_FAILED);
  const holds = holder?.alive === true && holder.pid === rec.pid && (rec.pidStart === undefined || holder.start === rec.pidStart);
  return holds ? 'running' : 'interrupted';
}

/** `pullvault status` exits non-zero unless the last run ended ok/partial or is still running. */
export const stateIsFailure = (s: RunState): boolean => s === 'failed' || s === 'refused' || s === 'interrupted';

export function startedRecord(pid: number, pidStart: string | undefined, at: Date): RunRecord {
  return { version: 1, pid, ...(pidStart ? { pidStart } : {}), startedAt: at.toISOString() };
}

export function finishedRecord(rec: RunRecord, at: Date, exitCode: number, detail: { outcome?: RunOutcome; reason?: string; failed?: string[] } = {}): RunRecord {
  const { outcome = outcomeFor(exitCode), reason, failed } = detail;
  return { ...rec, finishedAt: at.toISOString(), exitCode, outcome, ...(reason ? { reason } : {}), ...(failed?.length ? { failed } : {}) };
}

function parse(text: string): RunRecord | undefined {
  try {
    const r = JSON.parse(text) as RunRecord;
    return r?.version === 1 && typeof r.pid === 'number' && typeof r.startedAt === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}

export async function readRunRecord(path: string): Promise<RunRecord | undefined> {
  return parse(await readFile(path, 'utf8').catch(() => ''));
}

export async function writeRunRecord(path: string, rec: RunRecord): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(rec, null, 2) + '\n');
}

/**
 * From a signal handler, just before exit: mark this process's unfinished record interrupted.
 * Synchronous (the process exits right after); a plain overwrite of a small file.
 */
export function markInterruptedSync(path: string, pid: number, signal: string, exitCode: number): void {
  try {
    const rec = parse(readFileSync(path, 'utf8'));
    if (!rec || rec.pid !== pid || rec.finishedAt) return;
    writeFileSync(path, JSON.stringify(finishedRecord(rec, new Date(), exitCode, { outcome: 'interrupted', reason: signal }), null, 2) + '\n');
  } catch {
    /* nothing recorded: status reports the start without a finish as interrupted anyway */
  }
}
