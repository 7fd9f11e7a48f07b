// Mail on failure (sendmail -t) and the start-up check for the native tools: real processes,
// stand-in programs in a temp folder, nothing on the machine touched.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../provision/inventory/validate.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { checkNativeTools, NATIVE_TOOLS } from '../../runtime/native-check.ts';
import { composeMail, mailOnFailure } from '../../runtime/notify-mail.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'pv-notify-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const { inventory } = await loadInventory(path.resolve('inventory.json'));
const config: RuntimeConfig = {
  version: 1,
  inventory,
  paths: { sshKeyFile: '/k', knownHostsFile: '/kh', dataDir: '/d', recipientKeysDir: '/r' },
};

function fakeSendmail(name: string, script: string): string {
  const p = path.join(tmp, name);
  writeFileSync(p, `#!/bin/sh\n${script}\n`);
  chmodSync(p, 0o755);
  return p;
}

describe('mailOnFailure', () => {
  it('hands a well-formed message to sendmail -t', async () => {
    const out = path.join(tmp, 'mail.txt');
    const sm = fakeSendmail('sendmail-ok', `echo "ARGS: $*" > "${out}"; cat >> "${out}"`);
    const r = await mailOnFailure(config.inventory.notifications?.mailTo, 'pullvault: run failed on pi01', 'web1: rsync exited 12\n', { sendmail: sm, env: {} });
    expect(r).toEqual({ sent: true, to: 'owner@example.org' });
    const mail = readFileSync(out, 'utf8');
    expect(mail).toMatch(/^ARGS: -t -oi$/m);
    expect(mail).toMatch(/^To: owner@example\.org$/m);
    expect(mail).toMatch(/^Subject: pullvault: run failed on pi01$/m);
    expect(mail).toMatch(/\n\nweb1: rsync exited 12\n$/);
  });

  it('never throws: a failing, missing or hanging sendmail is a result, not an error', async () => {
    const bad = fakeSendmail('sendmail-bad', 'cat >/dev/null; echo "mta down" >&2; exit 75');
    expect(await mailOnFailure(config.inventory.notifications?.mailTo, 's', 'b', { sendmail: bad, env: {} })).toMatchObject({ sent: false, reason: 'failed', detail: expect.stringContaining('mta down') });
    expect(await mailOnFailure(config.inventory.notifications?.mailTo, 's', 'b', { sendmail: path.join(tmp, 'does-not-exist'), env: {} })).toMatchObject({ sent: false, reason: 'failed' });
    expect(await mailOnFailure(config.inventory.notifications?.mailTo, 's', 'b', { sendmail: null, env: {} })).toMatchObject({ sent: false, reason: 'no-sendmail' });
    const slow = fakeSendmail('sendmail-slow', 'sleep 30');
    const t0 = Date.now();
    expect(await mailOnFailure(config.inventory.notifications?.mailTo, 's', 'b', { sendmail: slow, env: {}, timeoutMs: 300 })).toMatchObject({ sent: false, reason: 'failed', detail: expect.stringContaining('did not finish') });
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('sends nothing without notifications.mailTo, or when cron already mails the output', async () => {
    const marker = path.join(tmp, 'should-not-exist');
    const sm = fakeSendmail('sendmail-mark', `touch "${marker}"`);
    expect(await mailOnFailure(undefined, 's', 'b', { sendmail: sm, env: {} })).toEqual({ sent: false, reason: 'no-recipient' });
    expect(await mailOnFailure(config.inventory.notifications?.mailTo, 's', 'b', { sendmail: sm, env: { PULLVAULT_CRON: '1', MAILTO: 'owner@example.org' } })).toMatchObject({ sent: false, reason: 'cron-mails' });
    expect(existsSync(marker)).toBe(false);
  });

  it('keeps headers on one line (no injection through a subject)', () => {
    const m = composeMail('a@b.c', 'failed\nBcc: evil@example.com', 'body');
    expect(m).not.toMatch(/^Bcc:/m);
    expect(m).toMatch(/^Subject: failed Bcc: evil@example\.com$/m);
  });
});

describe('checkNativeTools', () => {
  it('finds the tools in PATH', () => {
    const r = checkNativeTools(NATIVE_TOOLS, '/usr/bin:/bin');
    expect(r.ok).toBe(true);
    expect(r.found.rsync).toMatch(/\/rsync$/);
    expect(r.message).toBe('');
  });

  it('names each missing tool, why it is needed and the apt-get line', () => {
    const bin = path.join(tmp, 'bin');
    rmSync(bin, { recursive: true, force: true });
    mkdirSync(bin);
    symlinkSync('/usr/bin/tar', path.join(bin, 'tar'));
    symlinkSync('/usr/bin/ssh', path.join(bin, 'ssh'));
    symlinkSync('/usr/bin/find', path.join(bin, 'find'));
    const r = checkNativeTools(NATIVE_TOOLS, bin);
    expect(r.ok).toBe(false);
    expect(r.missing.map((t) => t.name)).toEqual(['rsync', 'zstd', 'setpriv']);
    expect(r.message).toContain('rsync not found in PATH');
    expect(r.message).toContain('setpriv not found in PATH (it makes every child die with the runtime, even on SIGKILL; package util-linux)');
    expect(r.message).toContain('apt-get install rsync zstd util-linux');
  });
});
