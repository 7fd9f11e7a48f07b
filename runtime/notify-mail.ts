// Mail on failure through the system's sendmail (Debian: any MTA — nullmailer, msmtp-mta,
// postfix, exim — provides /usr/sbin/sendmail). Notifying must never fail the backup: every
// error here is swallowed and returned as a result for the log, never thrown.
import { hostname } from 'node:os';
import type { RuntimeConfig } from '../contract/runtime-config.ts';
import { whichSync } from '../lib/proc/index.ts';
import { run } from './proc.ts';
import type { Notifier } from './notifier.ts';

const SENDMAIL_CANDIDATES = ['/usr/sbin/sendmail', '/usr/lib/sendmail'];

export type MailResult =
  | { sent: true; to: string }
  | { sent: false; reason: 'no-recipient' | 'no-sendmail' | 'cron-mails' | 'failed'; detail?: string };

export interface MailOptions {
  /** sendmail binary (tests); default: /usr/sbin/sendmail, /usr/lib/sendmail, then PATH */
  sendmail?: string | null;
  /** give up after this long (a stuck MTA must not hold the backup), default 30 s */
  timeoutMs?: number;
  /** environment to read MAILTO from (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** stops sendmail (killed) and gives up */
  signal?: AbortSignal;
}

function findSendmail(): string | null {
  for (const p of SENDMAIL_CANDIDATES) if (whichSync(p.split('/').pop()!, p.slice(0, p.lastIndexOf('/')))) return p;
  return whichSync('sendmail');
}

/** Header values must stay on one line (no header injection through a server name or error text). */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').trim();
}

/** The message as sendmail -t reads it: headers, blank line, body. */
export function composeMail(to: string, subject: string, body: string, from = `pullvault@${hostname()}`): string {
  return [
    `To: ${oneLine(to)}`,
    `From: ${oneLine(from)}`,
    `Subject: ${oneLine(subject)}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    'Auto-Submitted: auto-generated',
    '',
    body.endsWith('\n') ? body : `${body}\n`,
  ].join('\n');
}

/**
 * Sends `subject`/`body` to `to` with `sendmail -t`, when both are there. Under cron with MAILTO
 * set (the cron job of install-runtime), the cron wrapper already prints the failure and cron
 * mails it, so no second mail is sent. Never throws.
 */
export async function mailOnFailure(to: string | undefined, subject: string, body: string, opts: MailOptions = {}): Promise<MailResult> {
  try {
    if (!to) return { sent: false, reason: 'no-recipient' };
    const env = opts.env ?? process.env;
    if (env.PULLVAULT_CRON === '1' && env.MAILTO) return { sent: false, reason: 'cron-mails', detail: `cron mails the output to ${env.MAILTO}` };
    const sendmail = opts.sendmail === undefined ? findSendmail() : opts.sendmail;
    if (!sendmail) return { sent: false, reason: 'no-sendmail', detail: 'no sendmail on this system (install an MTA such as nullmailer or msmtp-mta)' };
    const timeoutMs = opts.timeoutMs ?? 30_000;
    opts.signal?.throwIfAborted();
    let aborted = false;
    const r = await run([sendmail, '-t', '-oi'], {
      input: composeMail(to, subject, body),
      timeoutMs,
      nothrow: true,
      onSpawn: (child) =>
        opts.signal?.addEventListener('abort', () => {
          aborted = true;
          child.kill('SIGKILL');
        }, { once: true }),
    });
    if (r.code === 0 && !r.timedOut) return { sent: true, to };
    const why = aborted ? 'stopped: out of time' : r.timedOut ? `did not finish within ${timeoutMs} ms` : `exited with ${r.code}: ${r.stderr.trim().slice(0, 300)}`;
    return { sent: false, reason: 'failed', detail: `${sendmail} ${why}` };
  } catch (e) {
    return { sent: false, reason: 'failed', detail: (e as Error).message };
  }
}

/** Mail for the runs that need a look: refused, partial, failed. */
export function mailNotifier(config: RuntimeConfig, opts: MailOptions = {}): Notifier | undefined {
  if (!config.inventory.notifications?.mailTo) return undefined;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return {
    name: 'mail',
    kinds: ['refused', 'partial', 'failed'],
    timeoutMs: timeoutMs + 1000,
    secrets: [],
    async deliver(event, ctx) {
      const r = await mailOnFailure(config.inventory.notifications?.mailTo, event.title, event.summary || event.title, { ...opts, timeoutMs, signal: ctx.signal });
      if (r.sent) return;
      if (r.reason === 'cron-mails') return ctx.log(`mail: ${r.detail}`);
      throw new Error(`mail to ${config.inventory.notifications?.mailTo}: ${r.detail ?? r.reason}`);
    },
  };
}
