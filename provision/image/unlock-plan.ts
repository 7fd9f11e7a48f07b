// provision-pi, the pure part of pi.unlock: the clevis binding (tang pin or sss over several tang
// servers, thumbprints pinned), the packages, and dropbear's files in the initramfs. No I/O.
import type { PiSpec } from '../../contract/inventory-schema.ts';
import { tangThreshold, unlockSshPort } from '../../contract/inventory-defaults.ts';

/** The LUKS keyslot clevis binds (0: USB keyfile, 1: recovery passphrase). */
export const TANG_KEYSLOT = 2;

export const DROPBEAR_DIR = '/etc/dropbear/initramfs';
/** dropbear-initramfs's hook copies host keys named so; ours replaces the ones its postinst made */
export const DROPBEAR_HOST_KEY = `${DROPBEAR_DIR}/dropbear_ed25519_host_key`;
export const DROPBEAR_HOST_KEY_TYPES = ['rsa', 'ecdsa', 'ed25519'] as const;

/** Forced on every SSH unlock key: it runs cryptroot-unlock, nothing else (no shell, no forwarding). */
export const UNLOCK_KEY_OPTIONS = 'command="cryptroot-unlock",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty';

/** Packages the unlock methods need in the root (from the base's own apt sources). */
export function unlockPackages(pi: PiSpec): string[] {
  return [...(pi.unlock?.tang?.length ? ['clevis', 'clevis-luks', 'clevis-initramfs'] : []), ...(pi.unlock?.ssh ? ['dropbear-initramfs'] : [])];
}

/**
 * `clevis luks bind … PIN CFG`: one tang server → the tang pin; several → sss with threshold
 * pi.unlock.sss.t (default 1) over them. Each server's advertisement comes from a file (fetched
 * at build time, or saved by the admin) and clevis checks it is signed by the pinned thumbprint:
 * never trust on first use.
 */
export function clevisBinding(pi: PiSpec, advFiles: string[]): { pin: 'tang' | 'sss'; config: string } {
  const tang = pi.unlock?.tang ?? [];
  if (!tang.length) throw new Error('clevisBinding: pi.unlock.tang is empty');
  if (advFiles.length !== tang.length) throw new Error('clevisBinding: one advertisement per tang server');
  const cfgs = tang.map((t, i) => ({ url: t.url.replace(/\/+$/, ''), thp: t.thumbprint, adv: advFiles[i] }));
  if (cfgs.length === 1) return { pin: 'tang', config: JSON.stringify(cfgs[0]) };
  return { pin: 'sss', config: JSON.stringify({ t: tangThreshold(pi), pins: { tang: cfgs } }) };
}

/**
 * `clevis encrypt PIN CFG` of keyslot 2's passphrase, with no -y: clevis checks each advertisement
 * against thp (with -y it would trust on first use). This needs no device, so it runs on the admin
 * machine whatever the cipher; the keyslot is added where the root is encrypted (the host or the VM).
 */
export function clevisEncryptArgs(binding: { pin: string; config: string }): string[] {
  return ['clevis', 'encrypt', binding.pin, binding.config];
}

/** The LUKS2 token clevis luks bind writes (clevis-luks-common-functions, clevis_luks2_save_slot), from the JWE as JSON. */
export function clevisToken(jweJson: string): string {
  return JSON.stringify({ type: 'clevis', keyslots: [String(TANG_KEYSLOT)], jwe: JSON.parse(jweJson) });
}

export function tokenImportArgs(tokenFile: string, device: string): string[] {
  return ['cryptsetup', 'token', 'import', '--json-file', tokenFile, device];
}

/** After the LUKS step: the header has keyslot 2 and a clevis token naming it. */
export function checkTangSlot(luksDump: string): void {
  const tokens = luksDump.split(/^Tokens:/m)[1] ?? '';
  if (!new RegExp(`^\\s+${TANG_KEYSLOT}: luks2$`, 'm').test(luksDump.split(/^Tokens:/m)[0]) || !new RegExp(`^\\s+\\d+: clevis\\n\\s+Keyslot:\\s+${TANG_KEYSLOT}$`, 'm').test(tokens)) {
    throw new Error(`LUKS header lacks keyslot ${TANG_KEYSLOT} or its clevis token after the LUKS step`);
  }
}

export interface DropbearFile {
  path: string;
  mode: number;
  content: string;
}

/** dropbear.conf and authorized_keys for the initramfs (the host key is converted in the chroot). */
export function dropbearFiles(pi: PiSpec, header: string): DropbearFile[] {
  const ssh = pi.unlock?.ssh;
  if (!ssh) return [];
  // -s no passwords, -j -k no local/remote forwarding, -c the only command whatever the client asks
  const options = `-p ${unlockSshPort(pi)} -s -j -k -c cryptroot-unlock`;
  return [
    { path: `${DROPBEAR_DIR}/dropbear.conf`, mode: 0o644, content: `# ${header}\nDROPBEAR_OPTIONS="${options}"\n` },
    { path: `${DROPBEAR_DIR}/authorized_keys`, mode: 0o600, content: ssh.authorizedKeys.map((k) => `${UNLOCK_KEY_OPTIONS} ${k}`).join('\n') + '\n' },
  ];
}

/** The admin's known_hosts line for the initramfs's dropbear (host or [host]:port). */
export function unlockKnownHostsLine(pi: PiSpec, hostPublicKey: string): string | undefined {
  if (!pi.unlock?.ssh || !pi.ssh) return undefined;
  const body = hostPublicKey.trim().split(/\s+/).slice(0, 2).join(' ');
  const port = unlockSshPort(pi);
  return `${port === 22 ? pi.ssh.host : `[${pi.ssh.host}]:${port}`} ${body}`;
}
