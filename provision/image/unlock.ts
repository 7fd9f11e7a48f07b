// provision-pi, the effects of pi.unlock: the tang servers' advertisements (fetched once at build
// time from the admin machine at home, or read from a file the admin saved), the clevis binding of
// LUKS keyslot 2, and dropbear's host key converted into the root.
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PiSpec } from '../../contract/inventory-schema.ts';
import { run } from '../../lib/proc/index.ts';
import { clevisBinding, clevisEncryptArgs, clevisToken, DROPBEAR_DIR, DROPBEAR_HOST_KEY, DROPBEAR_HOST_KEY_TYPES, TANG_KEYSLOT } from './unlock-plan.ts';
import type { ChrootOptions } from './chroot.ts';
import type { RunResult } from '../../lib/proc/index.ts';

const ADV_TIMEOUT_MS = 10_000;

/**
 * One advertisement file per tang server in state/<pi>/tang/<n>.jws. The thumbprint is checked by
 * clevis when it binds (the file is only what the server said; the pin is the inventory's).
 */
export async function tangAdvertisements(pi: PiSpec, piState: string, resolve: (p: string) => string): Promise<string[]> {
  const tang = pi.unlock?.tang ?? [];
  if (!tang.length) return [];
  const dir = path.join(piState, 'tang');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files: string[] = [];
  for (const [i, t] of tang.entries()) {
    const out = path.join(dir, `${i}.jws`);
    let text: string;
    if (t.adv) {
      const src = resolve(t.adv);
      if (!existsSync(src)) throw new Error(`pi.unlock.tang[${i}].adv: ${src} does not exist`);
      text = readFileSync(src, 'utf8');
    } else {
      const url = `${t.url.replace(/\/+$/, '')}/adv`;
      let res: Response;
      try {
        res = await fetch(url, { signal: AbortSignal.timeout(ADV_TIMEOUT_MS) });
      } catch (e) {
        throw new Error(`pi.unlock.tang[${i}]: cannot fetch the advertisement from ${url} (${(e as Error).message}); build at home, or save it (curl ${url}) and set pi.unlock.tang[${i}].adv`);
      }
      if (!res.ok) throw new Error(`pi.unlock.tang[${i}]: ${url} answered HTTP ${res.status}`);
      text = await res.text();
    }
    try {
      JSON.parse(text);
    } catch {
      throw new Error(`pi.unlock.tang[${i}]: the advertisement ${t.adv ?? t.url} is not JSON (a JWS)`);
    }
    writeFileSync(out, text, { mode: 0o644 });
    // clevis itself checks the advertisement against the pinned thumbprint now, before the long build
    const probe = JSON.stringify({ url: t.url, thp: t.thumbprint, adv: out });
    try {
      await run(['clevis', 'encrypt', 'tang', probe], { input: 'pullvault-probe' });
    } catch (e) {
      throw new Error(`pi.unlock.tang[${i}]: ${(e as Error).message.trim()}; the thumbprint must be that of the server's signing key (tang-show-keys on it)`);
    }
    files.push(out);
  }
  return files;
}

/**
 * Keyslot 2's passphrase (256 random bits, as clevis luks bind makes one) and its clevis token: the
 * passphrase encrypted by `clevis encrypt` to the tang servers. Made on this machine, so the
 * cipher does not matter here; the keyslot and token are written with the other LUKS commands
 * (luksJob), on the host or in the VM. Both files are 0600 in `dir` (the build's work folder,
 * removed after); the passphrase is kept nowhere else.
 */
export async function tangKeyslot(pi: PiSpec, advFiles: string[], dir: string): Promise<{ keyFile: string; tokenFile: string; pin: string }> {
  const binding = clevisBinding(pi, advFiles);
  const keyFile = path.join(dir, 'tang-keyslot.key');
  const tokenFile = path.join(dir, 'tang-token.json');
  const key = randomBytes(32).toString('base64url');
  writeFileSync(keyFile, key, { mode: 0o600 });
  let jwe: string;
  try {
    jwe = (await run(clevisEncryptArgs(binding), { input: key })).stdout.trim();
  } catch (e) {
    throw new Error(`clevis encrypt ${binding.pin} (keyslot ${TANG_KEYSLOT}): ${(e as Error).message.trim()}; is the thumbprint in pi.unlock.tang that of the server's signing key (tang-show-keys)?`);
  }
  const json = (await run(['jose', 'jwe', 'fmt', '-i-'], { input: jwe })).stdout;
  writeFileSync(tokenFile, clevisToken(json), { mode: 0o600 });
  return { keyFile, tokenFile, pin: binding.pin };
}

type Chroot = (root: string, argv: string[], o?: ChrootOptions) => Promise<RunResult>;

/** dropbear's host key: the pinned one from state/ (OpenSSH format), converted by the root's own dropbearconvert. */
export async function installDropbearHostKey(root: string, hostKeyFile: string, chroot: Chroot): Promise<void> {
  for (const t of DROPBEAR_HOST_KEY_TYPES) rmSync(path.join(root, DROPBEAR_DIR, `dropbear_${t}_host_key`), { force: true });
  const tmp = path.join(root, 'root', '.pullvault-initramfs-host-key');
  copyFileSync(hostKeyFile, tmp);
  try {
    await chroot(root, ['dropbearconvert', 'openssh', 'dropbear', '/root/.pullvault-initramfs-host-key', DROPBEAR_HOST_KEY]);
  } finally {
    rmSync(tmp, { force: true });
  }
}
