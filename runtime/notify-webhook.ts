// A webhook: ntfy (the message as the body, Title/Priority/Tags headers) or a generic JSON POST.
// The token (Authorization: Bearer) is read from its own 0600 file, installed by install-runtime
// from the inventory's tokenFile; the URL may itself be the secret (an ntfy topic is), so lines
// name only its host. One retry at most, for a network error, 429 or 5xx.
import { readFileSync, statSync } from 'node:fs';
import type { RuntimeConfig } from '../contract/runtime-config.ts';
import type { Notifier, RunEvent, RunEventKind } from './notifier.ts';

export type WebhookSpec = NonNullable<NonNullable<RuntimeConfig['inventory']['notifications']>['webhook']>;
export type WebhookFormat = 'ntfy' | 'json';

const ATTEMPTS = 2;
const RETRY_PAUSE_MS = 1000;

export function webhookFormat(spec: WebhookSpec): WebhookFormat {
  if (spec.format) return spec.format;
  const host = new URL(spec.url).hostname;
  return host === 'ntfy.sh' || host.endsWith('.ntfy.sh') ? 'ntfy' : 'json';
}

/** ntfy pushes to a phone: by default only what needs a look; a generic hook gets every event. */
export function webhookKinds(spec: WebhookSpec): readonly RunEventKind[] {
  return spec.events ?? (webhookFormat(spec) === 'ntfy' ? ['refused', 'partial', 'failed'] : ['start', 'ok', 'partial', 'refused', 'failed']);
}

const NTFY: Record<RunEventKind, { priority: string; tag: string }> = {
  start: { priority: 'min', tag: 'arrow_forward' },
  ok: { priority: 'low', tag: 'white_check_mark' },
  partial: { priority: 'default', tag: 'warning' },
  refused: { priority: 'high', tag: 'no_entry' },
  failed: { priority: 'high', tag: 'rotating_light' },
};

/** A header value: one line of printable ASCII (fetch refuses others; ntfy shows it as is). */
const headerValue = (s: string): string => s.replace(/\s+/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim().slice(0, 250);

/** What is sent for `event`: headers and body. Pure. */
export function webhookRequest(spec: WebhookSpec, event: RunEvent, token?: string): { headers: Record<string, string>; body: string } {
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  if (webhookFormat(spec) === 'ntfy') {
    const n = NTFY[event.kind];
    return {
      headers: { 'content-type': 'text/plain; charset=utf-8', title: headerValue(event.title), priority: n.priority, tags: `${n.tag},pullvault`, ...auth },
      body: (event.summary || event.title).slice(0, 4000),
    };
  }
  const r = event.run;
  const body = {
    source: 'pullvault',
    version: 1,
    event: event.kind,
    pi: event.pi,
    title: event.title,
    summary: event.summary,
    startedAt: r.startedAt,
    ...(r.finishedAt ? { finishedAt: r.finishedAt, exitCode: r.exitCode, outcome: r.outcome } : {}),
    ...(r.reason ? { reason: r.reason } : {}),
    ...(r.failed?.length ? { failed: r.failed } : {}),
  };
  return { headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify(body) };
}

function readToken(file: string | undefined): { token?: string; error?: string } {
  if (!file) return {};
  try {
    // as ssh does with a private key: a token others can read is no longer only the Pi's
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) return { error: `webhook token file ${file} is readable by others (mode ${mode.toString(8)}); chmod 600 it (install-runtime writes it so)` };
    return { token: readFileSync(file, 'utf8').trim() || undefined };
  } catch (e) {
    return { error: `webhook token file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
}

/** Aborted by the delivery's budget or by this attempt's own time limit (Node 18 has no AbortSignal.any). */
function attemptSignal(outer: AbortSignal, ms: number): { signal: AbortSignal; done: () => void } {
  const ac = new AbortController();
  const onOuter = () => ac.abort(outer.reason);
  outer.addEventListener('abort', onOuter, { once: true });
  const t = setTimeout(() => ac.abort(Object.assign(new Error('attempt timed out'), { name: 'TimeoutError' })), ms);
  return { signal: ac.signal, done: () => (clearTimeout(t), outer.removeEventListener('abort', onOuter)) };
}

const pause = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const onAbort = () => (clearTimeout(t), reject(signal.reason));
    const t = setTimeout(() => (signal.removeEventListener('abort', onAbort), resolve()), ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

export function webhookNotifier(config: RuntimeConfig): Notifier | undefined {
  const spec = config.inventory.notifications?.webhook;
  if (!spec) return undefined;
  const host = new URL(spec.url).host;
  const attemptMs = (spec.timeoutSeconds ?? 10) * 1000;
  const { token, error } = readToken(spec.tokenFile);
  return {
    name: `webhook ${host}`,
    kinds: webhookKinds(spec),
    timeoutMs: ATTEMPTS * attemptMs + RETRY_PAUSE_MS + 500,
    secrets: token ? [spec.url, token] : [spec.url],
    async deliver(event, ctx) {
      if (error) throw new Error(error);
      const { headers, body } = webhookRequest(spec, event, token);
      let last = '';
      for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
        if (attempt > 1) await pause(RETRY_PAUSE_MS, ctx.signal);
        ctx.signal.throwIfAborted();
        const a = attemptSignal(ctx.signal, attemptMs);
        try {
          const res = await fetch(spec.url, { method: 'POST', headers, body, signal: a.signal });
          await res.body?.cancel();
          if (res.ok) return;
          last = `HTTP ${res.status}`;
          if (res.status !== 429 && res.status < 500) break; // the request is wrong: the same again would be too
        } catch (e) {
          if (ctx.signal.aborted) throw ctx.signal.reason;
          last = a.signal.aborted ? `no answer within ${attemptMs} ms` : ((e as Error & { cause?: Error }).cause?.message ?? (e as Error).message);
        } finally {
          a.done();
        }
      }
      throw new Error(`POST to ${host}: ${last}`);
    },
  };
}
