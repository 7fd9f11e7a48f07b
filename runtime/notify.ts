// Healthcheck pings (healthchecks.io style): URL+'/start', URL on success, URL+'/fail'.
// A notification failure never fails the backup; timeouts are short. The URL may hold a
// secret token: it is never logged, only its host.
import type { RuntimeConfig } from '../contract/runtime-config.ts';
import type { Notifier, RunEventKind } from './notifier.ts';

export type PingKind = 'start' | 'success' | 'fail';

export function pingUrl(base: string, kind: PingKind): string {
  const b = base.replace(/\/+$/, '');
  return kind === 'start' ? `${b}/start` : kind === 'fail' ? `${b}/fail` : b;
}

const hostOf = (url: string): string => {
  try {
    return new URL(url).host;
  } catch {
    return '?';
  }
};

/** One ping; rejects with a message naming only the host. */
async function sendPing(base: string, kind: PingKind, body: string, signal: AbortSignal): Promise<void> {
  const host = hostOf(base);
  let res: Response;
  try {
    res = await fetch(pingUrl(base, kind), { method: 'POST', body: body.slice(0, 10_000), signal, headers: { 'content-type': 'text/plain; charset=utf-8' } });
  } catch (e) {
    throw new Error(`healthcheck ${kind} ping to ${host} failed: ${(e as Error).name === 'TimeoutError' || signal.aborted ? 'timeout' : (e as Error).message}`);
  }
  await res.body?.cancel();
  if (!res.ok) throw new Error(`healthcheck ${kind} ping to ${host}: HTTP ${res.status}`);
}

/** A ping outside a run's event stream; never throws, says what failed. */
export async function ping(
  base: string | undefined, kind: PingKind, body: string, log: (s: string) => void, timeoutMs = 10_000,
): Promise<boolean> {
  if (!base) return false;
  try {
    await sendPing(base, kind, body, AbortSignal.timeout(timeoutMs));
    return true;
  } catch (e) {
    log(`warning: ${(e as Error).message}`);
    return false;
  }
}

const PING_FOR: Record<RunEventKind, PingKind> = { start: 'start', ok: 'success', partial: 'success', refused: 'fail', failed: 'fail' };

export function healthchecksNotifier(config: RuntimeConfig): Notifier | undefined {
  const url = config.inventory.notifications?.healthcheckUrl;
  if (!url) return undefined;
  return {
    name: 'healthchecks',
    kinds: ['start', 'ok', 'partial', 'refused', 'failed'],
    timeoutMs: 10_000,
    secrets: [url, url.replace(/\/+$/, '')],
    deliver: (event, ctx) => sendPing(url, PING_FOR[event.kind], event.kind === 'start' ? '' : `${event.title}\n${event.summary}`, ctx.signal),
  };
}
