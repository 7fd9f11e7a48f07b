// The run locks: the lock file's content and when it counts as held (pure), the real O_EXCL file
// against live, dead and reused pids, and what local retention must keep for an upload that is
// still going in another run (pure).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireLock, liveHolder, lockIsHeld, parseLock, processStartTime } from '../../runtime/lock.ts';
import { pinLines, pinsFrom } from '../../runtime/offsite-pins.ts';

const work = mkdtempSync(join(tmpdir(), 'pv-lock-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('lock content (pure)', () => {
  it('first line "pid starttime", the rest a note', () => {
    expect(parseLock('123 4567\n')).toEqual({ pid: 123, start: '4567', note: [] });
    expect(parseLock('123 4567\nalpha/20240101T000000Z\nbeta/20240101T000000Z\n')).toEqual({ pid: 123, start: '4567', note: ['alpha/20240101T000000Z', 'beta/20240101T000000Z'] });
    for (const bad of ['', '\n', 'x 1\n', '0 1\n', '-1 5\n', '12\n', '12 x\n', '12 5 6\n']) expect(parseLock(bad)).toBeUndefined();
  });

  it('held only while that pid runs with the start time written', () => {
    const start = (m: Record<number, string>) => (pid: number) => m[pid];
    expect(lockIsHeld('123 4567\nnote\n', start({ 123: '4567' }))).toBe(true);
    expect(lockIsHeld('123 4567\n', start({}))).toBe(false); // gone
    expect(lockIsHeld('123 4567\n', start({ 123: '9999' }))).toBe(false); // pid reused by another process
    expect(lockIsHeld('half-writ', start({ 123: '4567' }))).toBe(false);
  });
});

describe('lock file', () => {
  it('one holder; its note is readable by others; release frees it', async () => {
    const path = join(work, 'offsite.lock');
    const a = await acquireLock(path, ['alpha/20240101T000000Z']);
    expect(a.ok).toBe(true);
    const b = await acquireLock(path);
    expect(b).toEqual({ ok: false, holder: `pid ${process.pid}` });
    expect(await liveHolder(path)).toEqual({ pid: process.pid, start: await processStartTime(process.pid), note: ['alpha/20240101T000000Z'] });
    if (a.ok) await a.lock.release();
    expect(await liveHolder(path)).toBeUndefined();
    const c = await acquireLock(path);
    expect(c.ok).toBe(true);
    if (c.ok) await c.lock.release();
  });

  it('a lock left by a dead process, or by a pid now running something else, is taken over', async () => {
    const child = spawn('true');
    const pid = child.pid!;
    await new Promise((r) => child.on('exit', r));
    const path = join(work, 'stale.lock');
    writeFileSync(path, `${pid} 12345\nalpha/20240101T000000Z\n`);
    expect(await liveHolder(path)).toBeUndefined();
    const a = await acquireLock(path);
    expect(a.ok).toBe(true);
    expect(readFileSync(path, 'utf8').startsWith(`${process.pid} `)).toBe(true);
    if (a.ok) await a.lock.release();
    // our own pid with another start time: a reused pid, not us
    writeFileSync(path, `${process.pid} 1\n`);
    expect(await liveHolder(path)).toBeUndefined();
    const b = await acquireLock(path);
    expect(b.ok).toBe(true);
    if (b.ok) await b.lock.release();
  });
});

describe('snapshots kept for the offsite phase (pure)', () => {
  const rec = (server: string, snapshot: string, uploadedAt: string) => ({ server, snapshot, uploadedAt });
  it('what a live upload reads, and each server\'s last uploaded snapshot', () => {
    const note = pinLines([{ server: 'alpha', id: '20240105T000000Z' }, { server: 'beta', id: '20240105T000000Z' }]);
    expect(note).toEqual(['alpha/20240105T000000Z', 'beta/20240105T000000Z']);
    const pins = pinsFrom({ pid: 42, note }, [
      rec('alpha', '20240103T000000Z', '2024-01-03T00:01:00Z'),
      rec('alpha', '20240101T000000Z', '2024-01-01T00:01:00Z'),
      rec('beta', '20240102T000000Z', '2024-01-02T00:01:00Z'),
    ]);
    expect(Object.fromEntries(pins)).toEqual({
      'alpha/20240103T000000Z': 'last uploaded (base of the next incremental)',
      'beta/20240102T000000Z': 'last uploaded (base of the next incremental)',
      'alpha/20240105T000000Z': 'being uploaded (pid 42)',
      'beta/20240105T000000Z': 'being uploaded (pid 42)',
    });
  });
  it('no live holder: only the last uploads', () => {
    expect([...pinsFrom(undefined, [rec('alpha', '20240103T000000Z', '2024-01-03T00:01:00Z')]).keys()]).toEqual(['alpha/20240103T000000Z']);
    expect(pinsFrom(undefined, []).size).toBe(0);
  });
});
