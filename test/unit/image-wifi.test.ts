// pi.wifi: the validator's checks (through the real validator), the NetworkManager keyfile, the
// regulatory domain on cmdline.txt, the rfkill unblock unit and the packages.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Inventory } from '../../contract/inventory-schema.ts';
import { loadTemplates } from '../../provision/image/build.ts';
import { rootFiles, rootPackages, transformCmdline } from '../../provision/image/plan.ts';
import { WIFI_PATHS, wifiCmdlineArgs, wifiPassphraseProblem, wifiSsidProblem } from '../../provision/image/wifi-plan.ts';
import { exampleInventory, problemsOf } from '../fixtures/inventory-problems.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'pv-wifi-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const pskFile = (text: string) => {
  const f = path.join(tmp, `psk-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, text, { mode: 0o600 });
  return f;
};
const facts = {
  rootUuid: '0b7f6a3e-2c1d-4e5f-8a9b-0c1d2e3f4a5b',
  sshPrivateKey: 'k',
  sshPublicKey: 'ssh-ed25519 AAAA pullvault@pi01\n',
  dataDiskKey: Buffer.alloc(64, 7),
  modulesMode: 'list' as const,
  arch: 'arm64' as const,
};

/** key=value pairs of one [section] of a keyfile */
function section(text: string, name: string): Record<string, string> {
  const body = text.split(/^\[/m).find((s) => s.startsWith(`${name}]`)) ?? '';
  return Object.fromEntries(body.split('\n').slice(1).filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

describe('pi.wifi', () => {
  it('passphrases: 8-63 printable ASCII or 64 hex digits, one trailing newline allowed', () => {
    expect(wifiPassphraseProblem('correct horse battery\n')).toBeUndefined();
    expect(wifiPassphraseProblem('a'.repeat(63))).toBeUndefined();
    expect(wifiPassphraseProblem('ab'.repeat(32))).toBeUndefined();
    expect(wifiPassphraseProblem('short')).toMatch(/5 characters long/);
    expect(wifiPassphraseProblem('g'.repeat(64))).toMatch(/64 characters long/);
    expect(wifiPassphraseProblem('pässwörter-lang')).toMatch(/printable ASCII/);
    expect(wifiPassphraseProblem('two\nlines here')).toMatch(/printable ASCII/);
    expect(wifiSsidProblem('home net')).toBeUndefined();
    expect(wifiSsidProblem('a;b')).toMatch(/";"/);
    expect(wifiSsidProblem('é'.repeat(17))).toMatch(/32 bytes/);
  });

  it('the validator reads pskFile and names the field', async () => {
    const ok = pskFile('correct horse battery\n');
    expect(await problemsOf((inv) => (inv.pi.wifi = { ssid: 'home', pskFile: ok, country: 'DE' }))).toEqual([]);
    const problems = await problemsOf((inv) => (inv.pi.wifi = { ssid: 'home', pskFile: pskFile('short\n'), country: 'DE' }));
    expect(problems.join('\n')).toMatch(/pi\.wifi\.pskFile: .* is 5 characters long/);
    expect((await problemsOf((inv) => (inv.pi.wifi = { ssid: 'home', pskFile: path.join(tmp, 'missing'), country: 'DE' }))).join('\n')).toMatch(/pi\.wifi\.pskFile: cannot read/);
    expect((await problemsOf((inv) => (inv.pi.wifi = { ssid: 'home', pskFile: ok, country: 'de' }))).join('\n')).toMatch(/pi\.wifi\.country: must be a two-letter ISO 3166 country code/);
    expect((await problemsOf((inv) => (inv.pi.wifi = { ssid: 'a;b', pskFile: ok, country: 'DE' }))).join('\n')).toMatch(/pi\.wifi\.ssid/);
  });

  it('rootFiles: the keyfile (0600, sensitive) with the SSID and passphrase, and the rfkill unit; nothing without pi.wifi', () => {
    const templates = loadTemplates();
    const inv = exampleInventory() as Inventory;
    expect(rootFiles(inv, facts, templates).some((f) => f.path.includes('NetworkManager') || f.path === WIFI_PATHS.unblockService)).toBe(false);
    expect(rootPackages(inv.pi)).not.toContain('network-manager');
    inv.pi.wifi = { ssid: ' garden\\net', pskFile: 'unused', country: 'NL', hidden: true };
    expect(() => rootFiles(inv, facts, templates)).toThrow(/passphrase was not read/);
    const files = rootFiles(inv, { ...facts, wifiPsk: 'correct horse battery\n', wifiUuid: '1b4e28ba-2fa1-41d2-883f-0016d3cca427' }, templates);
    const conn = files.find((f) => f.path === WIFI_PATHS.connection)!;
    expect(conn).toMatchObject({ mode: 0o600, sensitive: true });
    const text = String(conn.content);
    expect(section(text, 'connection')).toMatchObject({ id: 'pullvault-wifi', type: 'wifi', autoconnect: 'true', uuid: '1b4e28ba-2fa1-41d2-883f-0016d3cca427' });
    // GKeyFile escapes: a leading space as \s, a backslash doubled
    expect(section(text, 'wifi')).toMatchObject({ ssid: '\\sgarden\\\\net', hidden: 'true', mode: 'infrastructure' });
    expect(section(text, 'wifi-security')).toEqual({ 'key-mgmt': 'wpa-psk', psk: 'correct horse battery' });
    expect(section(text, 'ipv4')).toEqual({ method: 'auto' });
    const unit = String(files.find((f) => f.path === WIFI_PATHS.unblockService)?.content);
    expect(unit).toMatch(/^ExecStart=-\/usr\/sbin\/rfkill unblock wlan$/m);
    expect(unit).toMatch(/^Before=NetworkManager\.service$/m);
    expect(rootPackages(inv.pi)).toEqual(expect.arrayContaining(['network-manager', 'rfkill']));
  });

  it('cmdline.txt: the regulatory domain, replacing one already there, once', () => {
    const inv = exampleInventory() as Inventory;
    expect(wifiCmdlineArgs(inv.pi)).toEqual([]);
    inv.pi.wifi = { ssid: 'home', pskFile: 'x', country: 'GB' };
    const out = transformCmdline('console=serial0,115200 console=tty1 root=PARTUUID=1-02 cfg80211.ieee80211_regdom=US rootwait', { extra: wifiCmdlineArgs(inv.pi) });
    expect(out.split(' ').filter((a) => a.startsWith('cfg80211.'))).toEqual(['cfg80211.ieee80211_regdom=GB']);
    expect(out).toMatch(/root=\/dev\/mapper\/cryptroot/);
  });
});
