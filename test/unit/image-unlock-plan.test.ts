// pi.unlock in provision-pi's pure plan: the clevis binding, the cmdline's network, the dry-run steps.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Inventory } from '../../contract/inventory-schema.ts';
import { planSteps, transformCmdline } from '../../provision/image/plan.ts';
import { checkTangSlot, clevisBinding, clevisEncryptArgs, clevisToken, unlockKnownHostsLine } from '../../provision/image/unlock-plan.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const inventory = (): Inventory => JSON.parse(readFileSync(path.join(REPO, 'inventory.json'), 'utf8')) as Inventory;
const THP = 'l3fZGUCmnvKQF_OA6VZF9jf8z2s1BkTXxyT0nb3Ssls';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMnrFkJQ2xUcELSoX2wVt0gzJWvS6t+kUOOqU+rcFQ1R';
const opts = { baseImage: '/b.img', stateDir: '/s', rotate: false, haveState: false, haveS3Credentials: false, hostArch: 'amd64' };

describe('unlock plan', () => {
  it('one tang server: the tang pin with url, thp and the saved advertisement (no trust on first use)', () => {
    const pi = inventory().pi;
    pi.unlock = { tang: [{ url: 'http://10.0.0.2/', thumbprint: THP }] };
    const b = clevisBinding(pi, ['/s/pi01/tang/0.jws']);
    expect(b.pin).toBe('tang');
    expect(JSON.parse(b.config)).toEqual({ url: 'http://10.0.0.2', thp: THP, adv: '/s/pi01/tang/0.jws' });
    // never -y: clevis must check the advertisement against thp
    expect(clevisEncryptArgs(b)).toEqual(['clevis', 'encrypt', 'tang', b.config]);
  });

  it('the clevis token: clevis luks bind\'s LUKS2 JSON, naming keyslot 2; the header check wants both', () => {
    const jwe = { ciphertext: 'c', encrypted_key: '', iv: 'i', protected: 'p', tag: 't' };
    expect(JSON.parse(clevisToken(JSON.stringify(jwe)))).toEqual({ type: 'clevis', keyslots: ['2'], jwe });
    const slots = (n: number[]) => `Keyslots:\n${n.map((k) => `  ${k}: luks2\n\tKey:        512 bits\n`).join('')}`;
    const token = (slot: number) => `Tokens:\n  0: clevis\n\tKeyslot:    ${slot}\nDigests:\n`;
    expect(() => checkTangSlot(slots([0, 1, 2]) + token(2))).not.toThrow();
    expect(() => checkTangSlot(slots([0, 1]) + token(2))).toThrow(/keyslot 2/);
    expect(() => checkTangSlot(slots([0, 1, 2]) + token(1))).toThrow(/clevis token/);
    expect(() => checkTangSlot(slots([0, 1, 2]) + 'Tokens:\nDigests:\n')).toThrow(/clevis token/);
  });

  it('several tang servers: sss with the threshold (default 1), each server pinned', () => {
    const pi = inventory().pi;
    pi.unlock = { tang: [{ url: 'http://a', thumbprint: THP }, { url: 'http://b', thumbprint: THP.slice(0, 27) }] };
    expect(JSON.parse(clevisBinding(pi, ['a.jws', 'b.jws']).config)).toEqual({ t: 1, pins: { tang: [{ url: 'http://a', thp: THP, adv: 'a.jws' }, { url: 'http://b', thp: THP.slice(0, 27), adv: 'b.jws' }] } });
    pi.unlock.sss = { t: 2 };
    expect(JSON.parse(clevisBinding(pi, ['a.jws', 'b.jws']).config).t).toBe(2);
    expect(() => clevisBinding(pi, ['a.jws'])).toThrow(/one advertisement per tang server/);
  });

  it('ip=dhcp on the cmdline only when asked (tang or ssh), never twice', () => {
    expect(transformCmdline('console=tty1 rootwait')).not.toMatch(/ip=/);
    expect(transformCmdline('console=tty1 rootwait', { network: true })).toMatch(/ ip=dhcp( |$)/);
    expect(transformCmdline('console=tty1 ip=192.168.1.5::192.168.1.1:255.255.255.0 rootwait', { network: true }).match(/ip=/g)).toHaveLength(1);
  });

  it('the dry-run shows the tang binding, dropbear and the initramfs network; none of it without pi.unlock', () => {
    const inv = inventory();
    expect(planSteps(inv, opts).map((s) => s.id)).not.toEqual(expect.arrayContaining(['tang']));
    expect(planSteps(inv, opts).some((s) => /tang|dropbear/.test(s.id) || /ip=dhcp/.test(s.detail ?? ''))).toBe(false);
    inv.pi.unlock = { tang: [{ url: 'http://10.0.0.2', thumbprint: THP }, { url: 'http://10.0.0.3', thumbprint: THP, adv: 'nas.jws' }], sss: { t: 2 }, ssh: { authorizedKeys: [KEY] } };
    const steps = planSteps(inv, opts);
    const ids = steps.map((s) => s.id);
    expect(ids.indexOf('tang-adv')).toBe(ids.indexOf('secrets') + 1);
    expect(ids.indexOf('dropbear')).toBeLessThan(ids.indexOf('initramfs'));
    const tang = steps.find((s) => s.id === 'tang-adv')!;
    expect(tang.title).toMatch(/keyslot 2 .*\(sss: 2 of 2 servers\)/);
    expect(tang.detail).toContain(`http://10.0.0.2 thp ${THP} (advertisement fetched into /s/pi01/tang/)`);
    expect(tang.detail).toContain('(advertisement from nas.jws)');
    expect(steps.find((s) => s.id === 'dropbear')!.title).toMatch(/port 2222: 1 key\(s\) that may run cryptroot-unlock only/);
    expect(steps.find((s) => s.id === 'boot')!.detail).toMatch(/ip=dhcp/);
  });

  it("the owner's known_hosts line for the initramfs's dropbear", () => {
    const pi = inventory().pi;
    pi.unlock = { ssh: { authorizedKeys: [KEY] } };
    expect(unlockKnownHostsLine(pi, `${KEY} root@pi01-initramfs\n`)).toBe(`[${pi.ssh!.host}]:2222 ${KEY}`);
    pi.unlock.ssh!.port = 22;
    expect(unlockKnownHostsLine(pi, KEY)).toBe(`${pi.ssh!.host} ${KEY}`);
  });
});
