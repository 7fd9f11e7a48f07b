// provision-pi, the effects of pi.unlock: the tang servers' advertisements (fetched once at build
// time from the admin machine at home, or read from a file the admin saved), the clevis binding of
// LUKS keyslot 2, and dropbear's host key converted into the root.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PiSpec } from '../../contract/inventory-schema.ts';
import { run } from '../../lib/proc/index.ts';
import { clevisBindArgs, clevisBinding, DROPBEAR_DIR, DROPBEAR_HOST_KEY, DROPBEAR_HOST_KEY_TYPES, TANG_KEYSLOT } from './unlock-plan.ts';
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

/** Binds keyslot 2 with clevis (opened with the USB keyfile) and checks the header has it and its token. */
export async function bindTang(pi: PiSpec, device: string, keyFile: string, advFiles: string[]): Promise<string> {
  const binding = clevisBinding(pi, advFiles);
  try {
    await run(clevisBindArgs(device, keyFile, binding), { input: '' });
  } catch (e) {
    throw new Error(`clevis luks bind (keyslot ${TANG_KEYSLOT}): ${(e as Error).message.trim()}; is the thumbprint in pi.unlock.tang that of the server's signing key (tang-show-keys)?`);
  }
  const dump = (await run(['cryptsetup', 'luksDump', device])).stdout;
  if (!new RegExp(`^\\s+${TANG_KEYSLOT}: luks2$`, 'm').test(dump) || !/^\s+\d+: clevis$/m.test(dump)) throw new Error(`LUKS header lacks keyslot ${TANG_KEYSLOT} or its clevis token after binding`);
  return binding.pin;
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
