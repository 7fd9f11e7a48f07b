// The notification channels, each through the conformance suite against a real other end: an
// HTTP listener (healthchecks), sendmail programs in a temp folder (mail), a directory
// (the Prometheus textfile); plus the event stream's own rules.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { dispatch, eventKind, runEvent, type Notifier, type RunEventKind } from '../../runtime/notifier.ts';
import { mailNotifier } from '../../runtime/notify-mail.ts';
import { PROM_FILE, prometheusNotifier } from '../../runtime/notify-prometheus.ts';
import { historyChannel, readHistory } from '../../runtime/history.ts';
import { notifiersFor } from '../../runtime/notify-registry.ts';
import { healthchecksNotifier } from '../../runtime/notify.ts';
import { finishedRecord, startedRecord } from '../../runtime/run-record.ts';
import { kindOfTitle, notifierConformance, sampleEvents } from '../conformance/notifier.ts';
import { startRecorder } from '../fixtures/http-recorder.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'pv-notifiers-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const configWith = (notifications: RuntimeConfig['inventory']['notifications']): RuntimeConfig =>
  ({ version: 1, inventory: { pi: { name: 'pi-conformance' }, notifications }, paths: { sshKeyFile: '/k', knownHostsFile: '/kh', dataDir: '/d', recipientKeysDir: '/r' } }) as unknown as RuntimeConfig;

const TOKEN = 'hc-token-0f3a9d2e7c';
notifierConformance('healthchecks', async () => {
  const l = await startRecorder();
  const hc = (where: string) => healthchecksNotifier(configWith({ healthcheckUrl: `${l.base}/${where}/ping/${TOKEN}` }))!;
  return {
    working: () => hc('ok'),
    failing: () => hc('fail'),
    hanging: () => hc('hang'),
    async lastDelivered() {
      const r = l.requests.splice(0).filter((x) => x.status === 200).pop();
      if (!r) return undefined;
      // the ping's URL says start/success/fail; the body says which success or failure
      if (r.url.endsWith('/start')) return 'start';
      return kindOfTitle(r.body);
    },
    secrets: [TOKEN],
    close: l.close,
  };
});

function script(name: string, body: string): string {
  const p = path.join(tmp, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

notifierConformance('mail (sendmail -t)', () => {
  const box = path.join(tmp, 'mailbox');
  const mail = (sendmail: string) => mailNotifier(configWith({ mailTo: 'owner@example.org' }), { sendmail, env: {} })!;
  return {
    working: () => mail(script('sendmail-ok', `cat >> "${box}"; echo '--end--' >> "${box}"`)),
    failing: () => mail(script('sendmail-bad', 'cat >/dev/null; echo "mta down" >&2; exit 75')),
    hanging: () => mail(script('sendmail-hang', 'exec sleep 60')),
    async lastDelivered() {
      if (!existsSync(box)) return undefined;
      const text = readFileSync(box, 'utf8');
      rmSync(box);
      const subjects = [...text.matchAll(/^Subject: (.*)$/gm)].map((m) => m[1]);
      return kindOfTitle(subjects.pop() ?? '');
    },
    secrets: [],
  };
});

notifierConformance('Prometheus textfile', () => {
  const dir = path.join(tmp, 'textfile');
  const notAdir = path.join(tmp, 'not-a-dir');
  writeFileSync(notAdir, 'a file where the directory should be');
  // a FIFO where the atomic write's temp file goes: open() for writing blocks, as on a hung disk
  const hungDir = path.join(tmp, 'hung');
  execFileSync('sh', ['-c', `mkdir -p "$1" && mkfifo "$1/.${PROM_FILE}.${process.pid}.tmp"`, 'sh', hungDir]);
  const prom = (d: string) => prometheusNotifier(configWith({ prometheusTextfileDir: d }))!;
  return {
    working: () => prom(dir),
    failing: () => prom(path.join(notAdir, 'sub')),
    hanging: () => prom(hungDir),
    abortable: false,
    async lastDelivered() {
      const f = path.join(dir, PROM_FILE);
      if (!existsSync(f)) return undefined;
      const text = readFileSync(f, 'utf8');
      rmSync(f);
      if (/^pullvault_last_run_finished 0$/m.test(text)) return 'start';
      return /^pullvault_last_run_outcome\{outcome="(\w+)"\} 1$/m.exec(text)?.[1] as RunEventKind;
    },
    secrets: [],
    async close() {
      // let the blocked write finish, so no thread of the pool stays stuck
      const fd = openSync(path.join(hungDir, `.${PROM_FILE}.${process.pid}.tmp`), constants.O_RDONLY | constants.O_NONBLOCK);
      await new Promise((r) => setTimeout(r, 200));
      closeSync(fd);
    },
  };
});

notifierConformance('run history (JSON lines)', () => {
  const file = path.join(tmp, 'history', 'history.jsonl');
  mkdirSync(path.dirname(file), { recursive: true });
  const notAdir = path.join(tmp, 'history-not-a-dir');
  writeFileSync(notAdir, 'a file where the directory should be');
  // a FIFO where the history file goes: appending blocks, as on a hung disk
  const hung = path.join(tmp, 'history-hung.jsonl');
  execFileSync('mkfifo', [hung]);
  let seen = 0;
  return {
    working: () => historyChannel(file),
    failing: () => historyChannel(path.join(notAdir, 'history.jsonl')),
    hanging: () => historyChannel(hung),
    abortable: false,
    async lastDelivered() {
      const all = await readHistory(file);
      const fresh = all.slice(seen);
      seen = all.length;
      return fresh.at(-1)?.outcome as RunEventKind | undefined;
    },
    secrets: [],
    async close() {
      const fd = openSync(hung, constants.O_RDONLY | constants.O_NONBLOCK);
      await new Promise((r) => setTimeout(r, 200));
      closeSync(fd);
    },
  };
});

describe('the event stream', () => {
  const t0 = new Date('2026-01-02T03:00:00Z');
  const started = startedRecord(1, undefined, t0);
  it('decides the kind from the run record alone', () => {
    expect(eventKind(started)).toBe('start');
    expect(eventKind(finishedRecord(started, t0, 0))).toBe('ok');
    expect(eventKind(finishedRecord(started, t0, 4))).toBe('partial');
    expect(eventKind(finishedRecord(started, t0, 3, { reason: 'x' }))).toBe('refused');
    expect(eventKind(finishedRecord(started, t0, 1))).toBe('failed');
    expect(eventKind(finishedRecord(started, t0, 70, { outcome: 'failed', reason: 'internal error: x' }))).toBe('failed');
    expect(eventKind(finishedRecord(started, t0, 143, { outcome: 'interrupted', reason: 'SIGTERM' }))).toBe('failed');
  });

  it('titles and summaries say what happened; warnings only when something needs a look', () => {
    const e = sampleEvents('pi01');
    expect(e.failed.title).toBe('pullvault on pi01: run failed (exit 1)');
    expect(e.failed.summary).toBe('web: ok 20260102T030000Z\ndb: FAILED: ssh: connect to host db port 22: Connection refused\n\ndb: FAILED: ssh: connect');
    expect(e.partial.summary).toContain('web: ok 20260102T030000Z (partial, 1 unreadable)');
    expect(e.refused.title).toBe('pullvault on pi01: run refused: backup disk /srv/backup is not mounted');
    expect(e.ok.title).toBe('pullvault on pi01: run ok');
    const okWithWarning = runEvent({ pi: 'p', run: finishedRecord(started, t0, 0), status: e.ok.status, current: true, results: [], warnings: ['warning: x'] });
    expect(okWithWarning.summary).not.toContain('warning: x');
    // a header-safe title: one line, whatever the reason held
    const multi = runEvent({ pi: 'p', run: finishedRecord(started, t0, 3, { reason: 'a\nb' }), status: e.ok.status, current: true });
    expect(multi.title).toBe('pullvault on p: run refused: a b');
  });

  it('the registry turns on exactly the channels the config names, and the run history always', () => {
    const history = 'run history /var/lib/pullvault/history.jsonl';
    expect(notifiersFor(configWith(undefined)).map((n) => n.name)).toEqual([history]);
    const names = notifiersFor(configWith({ healthcheckUrl: 'https://hc.example/x', mailTo: 'a@b.example', prometheusTextfileDir: '/p' })).map((n) => n.name);
    expect(names).toEqual([history, 'prometheus textfile', 'healthchecks', 'mail']);
  });

  it('the textfile keeps a later run\'s state: an event that is no longer current writes nothing', async () => {
    const dir = path.join(tmp, 'later');
    const n = prometheusNotifier(configWith({ prometheusTextfileDir: dir }))!;
    await dispatch([n], { ...sampleEvents().failed, current: false }, { warn: () => {} });
    expect(existsSync(path.join(dir, PROM_FILE))).toBe(false);
  });

  it('channels run side by side: one hanging channel does not delay the others', async () => {
    const got: string[] = [];
    const hang: Notifier = { name: 'stuck', kinds: ['failed'], timeoutMs: 500, secrets: [], deliver: () => new Promise(() => {}) };
    const quick: Notifier = { name: 'quick', kinds: ['failed'], timeoutMs: 500, secrets: ['s3cr3t-value'], deliver: async () => void got.push('quick') };
    const warns: string[] = [];
    const bad: Notifier = { name: 'leaky', kinds: ['failed'], timeoutMs: 500, secrets: ['s3cr3t-value'], deliver: async () => { throw new Error('POST https://x/s3cr3t-value: 401'); } };
    const t0 = Date.now();
    const d = await dispatch([hang, quick, bad], sampleEvents().failed, { warn: (l) => warns.push(l) });
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(got).toEqual(['quick']);
    expect(d.map((x) => [x.channel, x.ok])).toEqual([['stuck', false], ['quick', true], ['leaky', false]]);
    // a channel's own error text is masked too (the dispatcher's backstop)
    expect(warns.join('\n')).toContain('POST https://x/****: 401');
    expect(warns.join('\n')).not.toContain('s3cr3t-value');
  });
});
