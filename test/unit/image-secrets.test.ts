// state/<pi>/ secrets: created once (0700 dir, 0600 files), reused on re-runs, replaced by --rotate.
// Plus the cipher preflight (real cryptsetup on a tiny file).
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generatePassphrase, loadOrCreateSecrets } from '../../provision/image/secrets.ts';
import { decideLuksWhere, probeHostCipher } from '../../provision/image/luks-guest.ts';

const dir = mkdtempSync(path.join('/var/tmp', 'pv-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const snapshot = (s: Awaited<ReturnType<typeof loadOrCreateSecrets>>) => ({
  uuid: s.rootUuid,
  key: readFileSync(s.keyFile).toString('hex'),
  rec: readFileSync(s.recoveryFile, 'utf8'),
  data: readFileSync(s.dataKeyFile).toString('hex'),
  ssh: readFileSync(s.sshPubFile, 'utf8'),
  host: readFileSync(s.hostPubFile, 'utf8'),
});

describe('secrets in state/', () => {
  it('creates, reuses, rotates', async () => {
    const a = await loadOrCreateSecrets(dir, 'pi01', { rotate: false, baseSha256: 'a'.repeat(64) });
    expect(a.created).toBe(true);
    expect((statSync(dir).mode & 0o777).toString(8)).toBe('700');
    expect((statSync(a.dir).mode & 0o777).toString(8)).toBe('700');
    for (const f of [a.keyFile, a.recoveryFile, a.dataKeyFile, a.sshKeyFile, a.hostKeyFile]) expect((statSync(f).mode & 0o777).toString(8)).toBe('600');
    expect(readFileSync(a.keyFile)).toHaveLength(64);
    expect(readFileSync(a.recoveryFile, 'utf8')).toMatch(/^([a-z2-9]{5}-){5}[a-z2-9]{5}$/); // no newline: askpass sends none
    expect(a.rootUuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const b = await loadOrCreateSecrets(dir, 'pi01', { rotate: false, baseSha256: 'a'.repeat(64) });
    expect(b.created).toBe(false);
    expect(snapshot(b)).toEqual(snapshot(a));
    const first = snapshot(a);
    const c = await loadOrCreateSecrets(dir, 'pi01', { rotate: true, baseSha256: 'a'.repeat(64) });
    expect(c.created).toBe(true);
    const rotated = snapshot(c);
    for (const k of Object.keys(first) as (keyof typeof first)[]) expect(rotated[k], k).not.toBe(first[k]);
  }, 30_000);

  it('a state made before the host key existed gains one and keeps every other secret', async () => {
    const a = await loadOrCreateSecrets(dir, 'pi02', { rotate: false, baseSha256: 'a'.repeat(64) });
    const before = snapshot(a);
    rmSync(a.hostKeyFile);
    rmSync(a.hostPubFile);
    const b = await loadOrCreateSecrets(dir, 'pi02', { rotate: false, baseSha256: 'a'.repeat(64) });
    expect(b.created).toBe(false);
    const after = snapshot(b);
    expect({ ...after, host: '' }).toEqual({ ...before, host: '' });
    expect(after.host).toMatch(/^ssh-ed25519 \S+ root@pi02\n$/);
    expect(after.host).not.toBe(before.host);
    expect((statSync(b.hostKeyFile).mode & 0o777).toString(8)).toBe('600');
  }, 30_000);

  it('passphrases are distinct and typeable', () => {
    const set = new Set(Array.from({ length: 50 }, generatePassphrase));
    expect(set.size).toBe(50);
    for (const p of set) expect(p).not.toMatch(/[01ilo]/);
  });
});

describe('cipher preflight (real cryptsetup, no device-mapper)', () => {
  const plan = (cipher: string, keySizeBits: number) => ({ cipher, keySizeBits, pbkdf: 'argon2id' as const, pbkdfMemoryKiB: 65536, pbkdfIterations: 4, pbkdfParallel: 4, sectorSize: 4096 });
  it('aes-xts-plain64 works offline on any host (OpenSSL backend): encrypted here', async () => {
    await expect(probeHostCipher('aes-xts-plain64', 512, dir)).resolves.toEqual({ ok: true });
    await expect(decideLuksWhere(plan('aes-xts-plain64', 512), 'amd64', dir, { qemu: null })).resolves.toEqual({ where: 'host' });
  }, 30_000);
  it('an unknown cipher: the probe says why, and without qemu the preflight refuses, saying how to go on', async () => {
    const r = await probeHostCipher('nosuchcipher-xts-plain64', 256, dir);
    expect(r.ok).toBe(false);
    await expect(decideLuksWhere(plan('nosuchcipher-xts-plain64', 256), 'amd64', dir, { qemu: null })).rejects.toThrow(/cannot encrypt the root with nosuchcipher-xts-plain64 .*qemu-system-x86_64 is not installed[\s\S]*apt-get install qemu-system-x86/);
  }, 30_000);
  it('adiantum: on this machine if its kernel can, else in a VM when qemu is installed', async () => {
    const probe = await probeHostCipher('xchacha12,aes-adiantum-plain64', 256, dir);
    const w = await decideLuksWhere(plan('xchacha12,aes-adiantum-plain64', 256), 'amd64', dir, { qemu: '/usr/bin/qemu-system-x86_64' });
    expect(w.where).toBe(probe.ok ? 'host' : 'guest');
  }, 30_000);
});
