// What a run tells the world: one event per moment a run reports (start, refused, ok, partial,
// failed), decided here from the run record, and handed to every configured channel. A channel
// that fails or hangs never fails or holds up the backup: each delivery has a time budget, its
// errors become warnings, and the channels' secrets are masked out of every line.
import type { PullResult } from './pull/snapshot.ts';
import type { RunRecord } from './run-record.ts';
import type { StatusDoc } from './status.ts';

export const RUN_EVENT_KINDS = ['start', 'refused', 'ok', 'partial', 'failed'] as const;
export type RunEventKind = (typeof RUN_EVENT_KINDS)[number];

export interface RunEvent {
  kind: RunEventKind;
  /** the Pi's name (inventory pi.name) */
  pi: string;
  /** the run record as written for this event: started, or finished */
  run: RunRecord;
  /** the servers' status as it stands after this event */
  status: StatusDoc;
  /** one line, e.g. "pullvault on pi01: run failed (exit 1)" */
  title: string;
  /** what the run did: the servers' snapshots or errors, then the run's warnings */
  summary: string;
  /** false once a later run has started: state channels (the textfile) keep the later run's */
  current: boolean;
}

export interface DeliveryContext {
  /** aborted when the channel's time budget is spent: stop, and leave nothing running */
  signal: AbortSignal;
  /** informational lines (not failures) */
  log: (line: string) => void;
}

/** One channel (mail, healthchecks, the Prometheus textfile, a webhook). */
export interface Notifier {
  name: string;
  /** the event kinds it sends; others are not given to it */
  kinds: readonly RunEventKind[];
  /** the whole delivery, retries included, gets this long (ms) */
  timeoutMs: number;
  /** values that must never appear in a log line (tokens, URLs that hold one) */
  secrets: string[];
  /** resolves once delivered or recorded; rejects with a message that names no secret */
  deliver(event: RunEvent, ctx: DeliveryContext): Promise<void>;
}

export interface Delivery {
  channel: string;
  ok: boolean;
  error?: string;
}

export interface RunEventInput {
  pi: string;
  run: RunRecord;
  status: StatusDoc;
  current: boolean;
  /** this run's pull (and offsite) results, for the summary */
  results?: PullResult[];
  /** the run's warnings, appended to the summary of an event that is not ok */
  warnings?: string[];
}

/** The event a run record stands for: started → start; finished → its outcome (interrupted counts as failed). */
export function eventKind(run: RunRecord): RunEventKind {
  if (!run.finishedAt) return 'start';
  const o = run.outcome;
  return o === 'ok' || o === 'partial' || o === 'refused' ? o : 'failed';
}

function resultLines(results: PullResult[]): string[] {
  return results.map((r) =>
    r.ok ? `${r.server}: ok ${r.snapshot?.id ?? ''}${r.snapshot?.info.partial ? ` (partial, ${r.snapshot.info.unreadable.length} unreadable)` : ''}`.replace(/ +$/, '') : `${r.server}: FAILED: ${r.error}`,
  );
}

export function runEvent(i: RunEventInput): RunEvent {
  const kind = eventKind(i.run);
  const exit = i.run.exitCode !== undefined ? ` (exit ${i.run.exitCode})` : '';
  const reason = i.run.reason ? `: ${i.run.reason.replace(/\s+/g, ' ')}` : '';
  const what = {
    start: 'run started',
    ok: 'run ok',
    partial: `run partial${exit}`,
    refused: `run refused${reason}`,
    failed: `run failed${exit}${i.results ? '' : reason}`,
  }[kind];
  const lines = kind === 'start' ? [`started ${i.run.startedAt}`] : [...(i.results ? resultLines(i.results) : []), ...(i.run.reason ? [i.run.reason] : [])];
  if (kind !== 'ok' && kind !== 'start' && i.warnings?.length) lines.push('', ...i.warnings);
  return { kind, pi: i.pi, run: i.run, status: i.status, title: `pullvault on ${i.pi}: ${what}`.slice(0, 200), summary: lines.join('\n'), current: i.current };
}

function maskSecrets(text: string, secrets: string[]): string {
  let out = text;
  for (const s of [...secrets].filter((x) => x.length >= 6).sort((a, b) => b.length - a.length)) out = out.split(s).join('****');
  return out;
}

const failure = (e: unknown): string => (e instanceof Error ? (e.name === 'TimeoutError' || e.name === 'AbortError' ? 'timeout' : e.message) : String(e));

/**
 * Sends `event` to every channel that wants its kind, all at once; resolves when each has
 * delivered, failed or spent its time budget (a channel that ignores the abort is left behind,
 * not waited for). Never rejects.
 */
export async function dispatch(notifiers: Notifier[], event: RunEvent, opts: { warn: (line: string) => void; log?: (line: string) => void }): Promise<Delivery[]> {
  const secrets = notifiers.flatMap((n) => n.secrets);
  const say = (f: (l: string) => void) => (line: string) => f(maskSecrets(line, secrets));
  const log = say(opts.log ?? (() => {}));
  const warn = say(opts.warn);
  return Promise.all(
    notifiers
      .filter((n) => n.kinds.includes(event.kind))
      .map(async (n): Promise<Delivery> => {
        const ac = new AbortController();
        let timer: NodeJS.Timeout | undefined;
        const budget = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const e = new Error(`no answer within ${n.timeoutMs} ms`);
            ac.abort(e);
            reject(e);
          }, n.timeoutMs);
        });
        try {
          await Promise.race([n.deliver(event, { signal: ac.signal, log }), budget]);
          return { channel: n.name, ok: true };
        } catch (e) {
          const error = maskSecrets(ac.signal.aborted ? `timeout (${failure(ac.signal.reason)})` : failure(e), secrets);
          warn(`warning: notify ${n.name} (${event.kind}): ${error}`);
          return { channel: n.name, ok: false, error };
        } finally {
          clearTimeout(timer);
        }
      }),
  );
}
