// Where provision-pi encrypts the root, the pure part: on this machine (cryptsetup's userspace
// reencryption: OpenSSL, or the kernel's AF_ALG for ciphers OpenSSL lacks, such as Adiantum), or
// inside a throwaway qemu VM that boots the image's own kernel and initramfs (which must have the
// cipher: the Pi unlocks with them). The VM's argv, memory and time limit are decided here too.
import type { LuksPlan } from './plan.ts';

export type ImageArch = 'arm64' | 'amd64';

/** What the preflight found out (luks-guest.ts gathers it). */
export interface LuksFacts {
  cipher: string;
  /** cryptsetup reencrypted a probe file with the cipher on this machine */
  hostCanEncrypt: boolean;
  /** why not, when it could not (cryptsetup's own words) */
  hostError?: string;
  imageArch: ImageArch;
  hostArch: string;
  /** path of qemu-system-<image arch>, if installed */
  qemu?: string;
  /** /dev/kvm is usable and the image's arch is this machine's */
  kvm: boolean;
}

export type LuksWhere = { where: 'host' } | { where: 'guest'; qemu: string; accel: 'kvm' | 'tcg' };

export const QEMU_FOR_ARCH: Record<ImageArch, { binary: string; debianPackage: string }> = {
  amd64: { binary: 'qemu-system-x86_64', debianPackage: 'qemu-system-x86' },
  arm64: { binary: 'qemu-system-aarch64', debianPackage: 'qemu-system-arm' },
};

const isAdiantum = (cipher: string) => /adiantum/.test(cipher);

/** Host when it can, else the VM when qemu is there, else an error that says how to go on. */
export function luksWhere(f: LuksFacts): LuksWhere {
  if (f.hostCanEncrypt) return { where: 'host' };
  if (f.qemu) return { where: 'guest', qemu: f.qemu, accel: f.kvm && f.imageArch === f.hostArch ? 'kvm' : 'tcg' };
  const q = QEMU_FOR_ARCH[f.imageArch];
  const ways = [
    `install ${q.binary} (Debian/Ubuntu: apt-get install ${q.debianPackage}) and re-run: provision-pi then encrypts inside a small VM booting the image's own kernel`,
    isAdiantum(f.cipher)
      ? 'or run provision-pi on a machine whose kernel has Adiantum and AF_ALG (stock Debian and Ubuntu kernels do: modprobe algif_skcipher adiantum)'
      : 'or run provision-pi on a machine whose cryptsetup can use this cipher (a stock Debian or Ubuntu install)',
  ];
  if (isAdiantum(f.cipher)) ways.push('or set pi.luks.cipher to "aes-xts-plain64" (works on any machine; a Pi 4 or older has no AES instructions and reads and writes it about 3-4 times slower than Adiantum)');
  return fail(`this machine cannot encrypt the root with ${f.cipher}${f.hostError ? ` (${firstLine(f.hostError)})` : ''}, and ${q.binary} is not installed. To go on:\n  - ${ways.join('\n  - ')}`);
}

function fail(message: string): never {
  throw new Error(message);
}

function firstLine(s: string): string {
  return s.trim().split('\n').filter(Boolean).slice(-1)[0] ?? s;
}

/** RAM for the VM: the argon2id memory of a keyslot (made twice, one after the other) plus the kernel and cryptsetup. */
export function guestMemoryMiB(l: LuksPlan): number {
  return Math.ceil(l.pbkdfMemoryKiB / 1024) + 384;
}

/**
 * How long the VM may take before it counts as hung: booting, two argon2id keyslots and one pass
 * over the device. The per-MiB allowance is for TCG (no KVM), where Adiantum's generic C code
 * runs emulated; measured figures are in bench/luks-guest.md.
 */
export function guestTimeoutMs(deviceBytes: number, accel: 'kvm' | 'tcg'): number {
  const mib = deviceBytes / 1048576;
  return accel === 'kvm' ? 300_000 + mib * 200 : 600_000 + mib * 1000;
}

export const GUEST_END_MARKER = 'PULLVAULT-LUKS-GUEST-END';

/** The VM's exit status, from its console output. */
export function guestResult(console: string): { rc: number } | undefined {
  const m = new RegExp(`${GUEST_END_MARKER} rc=(\\d+)`).exec(console);
  return m ? { rc: Number(m[1]) } : undefined;
}

export interface GuestFiles {
  kernel: string;
  /** the image's initramfs with the guest's /init appended */
  initrd: string;
  /** the root being encrypted (first virtio disk, /dev/vda in the VM) */
  device: string;
  /** the key, the passphrase and the commands (second virtio disk, read-only) */
  secretsDisk: string;
}

/** qemu argv: no network, no display, the console on stdio; the kernel command line carries no secret. */
export function guestQemuArgs(w: Extract<LuksWhere, { where: 'guest' }>, arch: ImageArch, files: GuestFiles, memMiB: number): string[] {
  const machine = arch === 'amd64' ? ['-M', 'q35'] : ['-M', 'virt'];
  const console = arch === 'amd64' ? 'ttyS0' : 'ttyAMA0';
  return [
    w.qemu, '-accel', w.accel, ...machine, '-cpu', w.accel === 'kvm' ? 'host' : 'max', '-smp', '1', '-m', String(memMiB),
    '-nodefaults', '-display', 'none', '-monitor', 'none', '-nic', 'none', '-no-reboot', '-serial', 'stdio',
    '-kernel', files.kernel, '-initrd', files.initrd, '-append', `console=${console} panic=-1 loglevel=3`,
    '-drive', `if=none,id=root,format=raw,file=${files.device}`, '-device', 'virtio-blk-pci,drive=root',
    '-drive', `if=none,id=secrets,format=raw,readonly=on,file=${files.secretsDisk}`, '-device', 'virtio-blk-pci,drive=secrets',
  ];
}
