// The cases every notification channel passes, whatever it talks to: each event kind it
// claims arrives at the other end (and no other kind does); a failing or hanging other end
// costs a warning and at most the channel's time budget, never an exception; and no secret of
// the channel appears in any line printed along the way. A channel's test supplies a harness:
// a real other end (an HTTP listener, a sendmail program, a directory) and a way to read back
// what arrived there.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch, RUN_EVENT_KINDS, runEvent, type Notifier, type RunEvent, type RunEventKind } from '../../runtime/notifier.ts';
import { finishedRecord, startedRecord } from '../../runtime/run-record.ts';
import type { StatusDoc } from '../../runtime/status.ts';

export interface NotifierHarness {
  /** a channel whose other end accepts */
  working(): Promise<Notifier> | Notifier;
  /** the kind of the event that last arrived at the working end since the previous call, if any */
  lastDelivered(): Promise<RunEventKind | undefined>;
  /** a channel whose other end refuses (HTTP 500, sendmail exits 75, an unwritable directory) */
  failing(): Promise<Notifier> | Notifier;
  /** a channel whose other end never answers */
  hanging(): Promise<Notifier> | Notifier;
  /**
   * false when the channel cannot be stopped once started (a local file write): the run still
   * goes on after the budget, the write is left behind. Network channels must stop.
   */
  abortable?: boolean;
  /** values this channel must never print */
  secrets: string[];
  /** stops the other end */
  close?(): Promise<void>;
}

const status: StatusDoc = { version: 1, servers: { web: { lastRunAt: '2026-01-02T03:05:00.000Z', ok: true, lastSnapshot: '20260102T030000Z', files: 3, bytes: 10 } } };

/** One event of each kind, as the cycle builds them. */
export function sampleEvents(pi = 'pi-conformance'): Record<RunEventKind, RunEvent> {
  const t0 = new Date('2026-01-02T03:00:00Z');
  const t1 = new Date('2026-01-02T03:05:00Z');
  const started = startedRecord(4242, '123', t0);
  const snap = (partial: boolean) => ({ id: '20260102T030000Z', dir: '/d', info: { partial, unreadable: partial ? ['/etc/shadow'] : [] } });
  const ok = [{ server: 'web', ok: true, snapshot: snap(false) }];
  const ev = (run: typeof started, results?: unknown[], warnings?: string[]) =>
    runEvent({ pi, run, status, current: true, results: results as never, warnings });
  return {
    start: ev(started),
    ok: ev(finishedRecord(started, t1, 0), ok),
    partial: ev(finishedRecord(started, t1, 4), [{ server: 'web', ok: true, snapshot: snap(true) }], ['web: not read: /etc/shadow']),
    failed: ev(finishedRecord(started, t1, 1, { failed: ['db'] }), [...ok, { server: 'db', ok: false, error: 'ssh: connect to host db port 22: Connection refused' }], ['db: FAILED: ssh: connect']),
    refused: ev(finishedRecord(started, t1, 3, { reason: 'backup disk /srv/backup is not mounted' })),
  };
}

/** The kind an event's title names ("pullvault on pi: run failed (exit 1)" → failed). */
export const kindOfTitle = (t: string): RunEventKind | undefined => (/run started/.test(t) ? 'start' : (/run (ok|partial|failed|refused)/.exec(t)?.[1] as RunEventKind | undefined));

const budget = (n: Notifier, ms: number): Notifier => ({ ...n, timeoutMs: ms });

export function notifierConformance(name: string, setup: () => Promise<NotifierHarness> | NotifierHarness): void {
  describe(`Notifier conformance: ${name}`, () => {
    let h: NotifierHarness;
    beforeAll(async () => {
      h = await setup();
    });
    afterAll(() => h?.close?.());
    const lines: string[] = [];
    const opts = { warn: (l: string) => lines.push(l), log: (l: string) => lines.push(l) };
    const events = sampleEvents();

    it('claims only known event kinds, and a positive time budget', async () => {
      const n = await h.working();
      expect(n.kinds.length).toBeGreaterThan(0);
      for (const k of n.kinds) expect(RUN_EVENT_KINDS).toContain(k);
      expect(n.timeoutMs).toBeGreaterThan(0);
      expect(n.timeoutMs).toBeLessThanOrEqual(60_000);
    });

    it('delivers every kind it claims, and nothing for the others', async () => {
      const n = await h.working();
      await h.lastDelivered(); // forget anything from before
      for (const kind of RUN_EVENT_KINDS) {
        const d = await dispatch([n], events[kind], opts);
        if (n.kinds.includes(kind)) {
          expect(d, kind).toEqual([{ channel: n.name, ok: true }]);
          expect(await h.lastDelivered(), kind).toBe(kind);
        } else {
          expect(d, kind).toEqual([]);
          expect(await h.lastDelivered(), kind).toBeUndefined();
        }
      }
    });

    it('a refusing other end is a warning naming the channel, never an exception', async () => {
      const n = await h.failing();
      for (const kind of n.kinds) {
        const before = lines.length;
        const d = await dispatch([n], events[kind], opts);
        expect(d).toHaveLength(1);
        expect(d[0].ok, kind).toBe(false);
        expect(d[0].error, kind).toBeTruthy();
        expect(lines.slice(before).join('\n'), kind).toContain(`notify ${n.name}`);
      }
    });

    it('a hanging other end costs the time budget, no more', async () => {
      const n = budget(await h.hanging(), 400);
      const t0 = Date.now();
      const d = await dispatch([n], events[n.kinds[n.kinds.length - 1]], opts);
      expect(Date.now() - t0).toBeLessThan(2500);
      expect(d[0]).toMatchObject({ ok: false, error: expect.stringMatching(/timeout/) });
      if (h.abortable === false) return;
      // and the channel itself stops when told to (no request or child process left running)
      const ac = new AbortController();
      const t1 = Date.now();
      const settled = n.deliver(events[n.kinds[0]], { signal: ac.signal, log: opts.log }).then(
        () => 'resolved',
        () => 'rejected',
      );
      setTimeout(() => ac.abort(new Error('budget spent')), 200);
      expect(await Promise.race([settled, new Promise((r) => setTimeout(() => r('still running 3 s after the abort'), 3000))])).toBe('rejected');
      expect(Date.now() - t1).toBeLessThan(2000);
    });

    it('prints none of its secrets, in any of the cases above', async () => {
      expect(lines.length).toBeGreaterThan(0);
      for (const s of h.secrets) for (const l of lines) expect(l).not.toContain(s);
    });
  });
}
