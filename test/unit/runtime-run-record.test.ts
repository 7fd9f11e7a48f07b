// The run record decides what `pullvault status` and the metrics say about the last run: a start
// without a finish is interrupted unless its process is alive and holds the lock; a refusal is
// refused with its reason; nothing but a recorded successful end reads as ok.
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../runtime/exit-codes.ts';
import { finishedRecord, outcomeFor, runState, startedRecord, stateIsFailure, type RunRecord } from '../../runtime/run-record.ts';
import { emptyStatus, prometheusText, renderLastRun } from '../../runtime/status.ts';

const t0 = new Date('2024-06-30T12:00:00Z');
const t1 = new Date('2024-06-30T12:05:00Z');
const now = new Date('2024-06-30T13:00:00Z');
const started = startedRecord(4242, '777', t0);

describe('runState', () => {
  it('no record: never', () => {
    expect(runState(undefined, undefined)).toBe('never');
  });
  it('a start without a finish whose process is gone (SIGKILL, power loss): interrupted', () => {
    expect(runState(started, undefined)).toBe('interrupted');
    // the lock file the killed run left behind names it, but it is dead
    expect(runState(started, { pid: 4242, start: '777', alive: false })).toBe('interrupted');
  });
  it('running only if that same process (pid and start time) is alive and holds the lock', () => {
    expect(runState(started, { pid: 4242, start: '777', alive: true })).toBe('running');
    // its pid reused by a later process, or another run holding the lock: not this run
    expect(runState(started, { pid: 4242, start: '999', alive: true })).toBe('interrupted');
    expect(runState(started, { pid: 5000, start: '777', alive: true })).toBe('interrupted');
  });
  it('a finished record says its outcome, whoever holds the lock now', () => {
    expect(runState(finishedRecord(started, t1, EXIT.OK), { pid: 4242, start: '777', alive: true })).toBe('ok');
    expect(runState(finishedRecord(started, t1, EXIT.PARTIAL), undefined)).toBe('partial');
    expect(runState(finishedRecord(started, t1, EXIT.SERVER_FAILED, { failed: ['db'] }), undefined)).toBe('failed');
    expect(runState(finishedRecord(started, t1, EXIT.REFUSED, { reason: 'disk full' }), undefined)).toBe('refused');
    expect(runState(finishedRecord(started, t1, 143, { outcome: 'interrupted', reason: 'SIGTERM' }), undefined)).toBe('interrupted');
  });
  it('exit codes map to outcomes; status fails for failed, refused, interrupted only', () => {
    expect([0, 1, 3, 4, 70, 143].map(outcomeFor)).toEqual(['ok', 'failed', 'refused', 'partial', 'failed', 'failed']);
    expect((['never', 'running', 'ok', 'partial', 'failed', 'refused', 'interrupted'] as const).filter(stateIsFailure))
      .toEqual(['failed', 'refused', 'interrupted']);
  });
});

describe('what status prints and the metrics say', () => {
  const line = (rec: RunRecord | undefined) => renderLastRun(rec, runState(rec, undefined), now);
  it('interrupted and refused runs never read "exit 0, ok"', () => {
    expect(line(started)).toBe('last run: INTERRUPTED: started 2024-06-30T12:00:00.000Z (60m ago), pid 4242, never finished (killed or crashed)');
    const refused = finishedRecord(started, t1, EXIT.REFUSED, { reason: 'only 10 MiB free on /srv/backup (minimum 64 MiB)' });
    expect(line(refused)).toBe('last run: 2024-06-30T12:05:00.000Z (55m ago), exit 3, REFUSED: only 10 MiB free on /srv/backup (minimum 64 MiB)');
    expect(line(finishedRecord(started, t1, 143, { outcome: 'interrupted', reason: 'SIGTERM' }))).toMatch(/exit 143, INTERRUPTED by SIGTERM$/);
    expect(line(finishedRecord(started, t1, EXIT.OK))).toBe('last run: 2024-06-30T12:05:00.000Z (55m ago), exit 0, ok');
    expect(renderLastRun(started, 'running', now)).toBe('last run: running since 2024-06-30T12:00:00.000Z (60m ago), pid 4242');
    expect(line(undefined)).toBe('last run: never');
  });
  it('an unfinished run has no exit code or outcome metric, and finished 0', () => {
    const p = prometheusText(emptyStatus(), started);
    expect(p).toMatch(/^pullvault_last_run_finished 0$/m);
    expect(p).toMatch(/^pullvault_last_run_start_timestamp_seconds 1719748800$/m);
    expect(p).not.toMatch(/pullvault_last_run_exit_code|pullvault_last_run_outcome|pullvault_last_run_timestamp_seconds/);
    const refused = prometheusText(emptyStatus(), finishedRecord(started, t1, EXIT.REFUSED, { reason: 'x' }));
    expect(refused).toMatch(/^pullvault_last_run_exit_code 3$/m);
    expect(refused).toMatch(/^pullvault_last_run_outcome\{outcome="refused"\} 1$/m);
    expect(refused).toMatch(/^pullvault_last_run_finished 1$/m);
  });
});
