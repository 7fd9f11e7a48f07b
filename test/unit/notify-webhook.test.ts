// The webhook channel (ntfy and generic JSON) against a real local HTTP listener: the conformance
// suite for both formats, then what arrives (body, ntfy's headers, the bearer token from its
// file), the one retry, and the token never printed.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { dispatch, type RunEventKind } from '../../runtime/notifier.ts';
import { notifiersFor } from '../../runtime/notify-registry.ts';
import { webhookFormat, webhookKinds, webhookNotifier, webhookRequest, type WebhookSpec } from '../../runtime/notify-webhook.ts';
import { kindOfTitle, notifierConformance, sampleEvents } from '../conformance/notifier.ts';
import { startRecorder, type Recorded } from '../fixtures/http-recorder.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'pv-webhook-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
// made at run time: no token in the tree
const TOKEN = `tk_${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
const tokenFile = path.join(tmp, 'token');
writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });

const configWith = (webhook: WebhookSpec): RuntimeConfig =>
  ({ version: 1, inventory: { pi: { name: 'pi-conformance' }, notifications: { webhook } }, paths: {} }) as unknown as RuntimeConfig;

/** The kind a recorded request carried, read the way its format writes it. */
function kindOf(r: Recorded): RunEventKind | undefined {
  if (r.headers['content-type'] === 'application/json') return (JSON.parse(r.body) as { event: RunEventKind }).event;
  return kindOfTitle(String(r.headers.title ?? ''));
}

for (const format of ['ntfy', 'json'] as const) {
  notifierConformance(`webhook (${format})`, async () => {
    const l = await startRecorder();
    const hook = (where: string) => webhookNotifier(configWith({ url: `${l.base}/${where}/topic-secret-name`, format, tokenFile, events: ['start', 'ok', 'partial', 'refused', 'failed'], timeoutSeconds: 5 }))!;
    return {
      working: () => hook('ok'),
      failing: () => hook('fail'),
      hanging: () => hook('hang'),
      async lastDelivered() {
        const r = l.requests.splice(0).filter((x) => x.status === 200).pop();
        return r && kindOf(r);
      },
      secrets: [TOKEN, 'topic-secret-name'],
      close: l.close,
    };
  });
}

describe('webhook requests', () => {
  let l: Awaited<ReturnType<typeof startRecorder>>;
  beforeAll(async () => {
    l = await startRecorder();
  });
  afterAll(() => l.close());
  const events = sampleEvents('pi01');

  it('ntfy: the summary as the body, Title/Priority/Tags headers, the bearer token', async () => {
    const n = webhookNotifier(configWith({ url: `${l.base}/ok/pullvault-alerts`, format: 'ntfy', tokenFile }))!;
    const d = await dispatch([n], events.failed, { warn: () => {} });
    expect(d).toEqual([{ channel: n.name, ok: true }]);
    const r = l.requests.pop()!;
    expect(r).toMatchObject({ method: 'POST', url: '/ok/pullvault-alerts' });
    expect(r.headers).toMatchObject({ title: 'pullvault on pi01: run failed (exit 1)', priority: 'high', tags: 'rotating_light,pullvault', authorization: `Bearer ${TOKEN}` });
    expect(r.body).toBe(events.failed.summary);
  });

  it('json: one document with the event, the run and its summary', async () => {
    const n = webhookNotifier(configWith({ url: `${l.base}/ok/hook` }))!;
    await dispatch([n], events.refused, { warn: () => {} });
    const r = l.requests.pop()!;
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers.authorization).toBeUndefined();
    expect(JSON.parse(r.body)).toEqual({
      source: 'pullvault', version: 1, event: 'refused', pi: 'pi01', title: events.refused.title, summary: events.refused.summary,
      startedAt: '2026-01-02T03:00:00.000Z', finishedAt: '2026-01-02T03:05:00.000Z', exitCode: 3, outcome: 'refused', reason: 'backup disk /srv/backup is not mounted',
    });
  });

  it('format and events default by the URL: ntfy.sh pushes only what needs a look', () => {
    expect(webhookFormat({ url: 'https://ntfy.sh/abc' })).toBe('ntfy');
    expect(webhookFormat({ url: 'https://push.ntfy.sh/abc' })).toBe('ntfy');
    expect(webhookFormat({ url: 'https://ntfy.example.org/abc' })).toBe('json');
    expect(webhookFormat({ url: 'https://ntfy.example.org/abc', format: 'ntfy' })).toBe('ntfy');
    expect(webhookKinds({ url: 'https://ntfy.sh/abc' })).toEqual(['refused', 'partial', 'failed']);
    expect(webhookKinds({ url: 'https://hooks.example/x' })).toEqual(['start', 'ok', 'partial', 'refused', 'failed']);
    expect(webhookKinds({ url: 'https://ntfy.sh/abc', events: ['ok'] })).toEqual(['ok']);
  });

  it('header values stay one line of ASCII, whatever the title held', () => {
    const e = { ...events.failed, title: 'pullvault on pï: run failed\r\nX-Evil: 1' };
    expect(webhookRequest({ url: 'https://ntfy.sh/x' }, e).headers.title).toBe('pullvault on p?: run failed X-Evil: 1');
  });

  it('retries once after a 5xx, never after a 4xx', async () => {
    const flaky = webhookNotifier(configWith({ url: `${l.base}/flaky/a`, format: 'json' }))!;
    l.requests.length = 0;
    expect((await dispatch([flaky], events.ok, { warn: () => {} }))[0].ok).toBe(true);
    expect(l.requests.map((r) => r.status)).toEqual([500, 200]);
    l.requests.length = 0;
    const down = webhookNotifier(configWith({ url: `${l.base}/fail/a`, format: 'json' }))!;
    const warns: string[] = [];
    expect((await dispatch([down], events.ok, { warn: (w) => warns.push(w) }))[0]).toMatchObject({ ok: false, error: 'POST to 127.0.0.1:' + new URL(l.base).port + ': HTTP 500' });
    expect(l.requests.map((r) => r.status)).toEqual([500, 500]);
    l.requests.length = 0;
    const bad = webhookNotifier(configWith({ url: `${l.base}/bad/a`, format: 'json' }))!;
    expect((await dispatch([bad], events.ok, { warn: () => {} }))[0].ok).toBe(false);
    expect(l.requests.map((r) => r.status)).toEqual([400]);
    // the URL's path (an ntfy topic is its own password) is never in the warning
    expect(warns.join('\n')).not.toContain('/fail/a');
  });

  it('a missing token file is a warning naming the file, and nothing is sent without it', async () => {
    l.requests.length = 0;
    const n = webhookNotifier(configWith({ url: `${l.base}/ok/t`, tokenFile: path.join(tmp, 'nope') }))!;
    const d = await dispatch([n], events.failed, { warn: () => {} });
    expect(d[0]).toMatchObject({ ok: false, error: expect.stringContaining(`${path.join(tmp, 'nope')}: ENOENT`) });
    expect(l.requests).toEqual([]);
  });

  it('a token file others can read is refused, and nothing is sent', async () => {
    l.requests.length = 0;
    const loose = path.join(tmp, 'loose-token');
    writeFileSync(loose, `${TOKEN}\n`, { mode: 0o644 });
    chmodSync(loose, 0o644);
    const n = webhookNotifier(configWith({ url: `${l.base}/ok/t`, tokenFile: loose }))!;
    const d = await dispatch([n], events.failed, { warn: () => {} });
    expect(d[0]).toMatchObject({ ok: false, error: expect.stringContaining('is readable by others (mode 644); chmod 600') });
    expect(l.requests).toEqual([]);
  });

  it('is registered: a config with notifications.webhook turns it on', () => {
    expect(notifiersFor(configWith({ url: 'https://ntfy.sh/x' })).map((n) => n.name)).toContain('webhook ntfy.sh');
  });
});
