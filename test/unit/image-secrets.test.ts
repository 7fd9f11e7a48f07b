// state/<pi>/ secrets: created once (0700 dir, 0600 files), reused on re-runs, replaced by --rotate.
// Plus the cipher preflight (real cryptsetup on a tiny file).
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generatePassphrase, loadOrCreateSecrets } from '../../provision/image/secrets.ts';
import { checkCipherUsable } from '../../provision/image/build.ts';

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
  it('aes-xts-plain64 works offline on any host (OpenSSL backend)', async () => {
    await expect(checkCipherUsable('aes-xts-plain64', 512, dir)).resolves.toBeUndefined();
  }, 30_000);
  it('an unknown cipher is refused up front with a clear message', async () => {
    await expect(checkCipherUsable('nosuchcipher-xts-plain64', 256, dir)).rejects.toThrow(/cannot encrypt with nosuchcipher-xts-plain64 in userspace without device-mapper/);
  }, 30_000);
  it('adiantum: usable, or refused naming the kernel modules it needs (this VM: no AF_ALG)', async () => {
    const r = await checkCipherUsable('xchacha12,aes-adiantum-plain64', 256, dir).then(() => 'ok', (e: Error) => e.message);
    if (r !== 'ok') expect(r).toMatch(/algif_skcipher adiantum/);
  }, 30_000);
});
