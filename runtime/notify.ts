// Healthcheck pings (healthchecks.io style): URL+'/start', URL on success, URL+'/fail'.
// A notification failure never fails the backup; timeouts are short. The URL may hold a
// secret token: it is never logged, only its host.

export type PingKind = 'start' | 'success' | 'fail';

export function pingUrl(base: string, kind: PingKind): string {
  const b = base.replace(/\/+$/, '');
  return kind === 'start' ? `${b}/start` : kind === 'fail' ? `${b}/fail` : b;
}

export async function ping(
  base: string | undefined, kind: PingKind, body: string, log: (s: string) => void, timeoutMs = 10_000,
): Promise<boolean> {
  if (!base) return false;
  let host = '?';
  try {
    host = new URL(base).host;
    const res = await fetch(pingUrl(base, kind), {
      method: 'POST', body: body.slice(0, 10_000), signal: AbortSignal.timeout(timeoutMs),
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
    if (!res.ok) log(`warning: healthcheck ${kind} ping to ${host}: HTTP ${res.status}`);
    return res.ok;
  } catch (e) {
    log(`warning: healthcheck ${kind} ping to ${host} failed: ${(e as Error).name === 'TimeoutError' ? 'timeout' : (e as Error).message}`);
    return false;
  }
}
