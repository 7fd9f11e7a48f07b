// Values the inventory may leave out, computed in one place so every part agrees.
import type { PiModel, PiSpec, S3TargetSpec, ServerSpec } from './inventory-schema.ts';

export const DEFAULT_BACKUP_USER = 'pullvault';
export const DEFAULT_SSH_PORT = 22;
export const DEFAULT_ADMIN = 'root';
/** dropbear in the initramfs: not 22, so the admin's known_hosts keeps the two host keys apart */
export const DEFAULT_UNLOCK_SSH_PORT = 2222;

/**
 * LUKS cipher by model: Pi 5 has the ARMv8 crypto extensions (fast AES); earlier models
 * do not, and Adiantum is several times faster there. Models absent here have not been
 * measured, so the inventory must name a cipher for them.
 */
const CIPHER_BY_MODEL: Partial<Record<PiModel, { cipher: string; keySizeBits: number }>> = {
  pi3: { cipher: 'xchacha12,aes-adiantum-plain64', keySizeBits: 256 },
  pi4: { cipher: 'xchacha12,aes-adiantum-plain64', keySizeBits: 256 },
  pi400: { cipher: 'xchacha12,aes-adiantum-plain64', keySizeBits: 256 },
  cm4: { cipher: 'xchacha12,aes-adiantum-plain64', keySizeBits: 256 },
  pi5: { cipher: 'aes-xts-plain64', keySizeBits: 512 },
  pi500: { cipher: 'aes-xts-plain64', keySizeBits: 512 },
  cm5: { cipher: 'aes-xts-plain64', keySizeBits: 512 },
};

export function defaultCipher(model: PiModel): { cipher: string; keySizeBits: number } | undefined {
  return CIPHER_BY_MODEL[model];
}

export function luksParams(pi: PiSpec): { cipher: string; keySizeBits: number; pbkdfMemoryKiB: number; pbkdfIterations: number } {
  const byModel = defaultCipher(pi.model);
  const cipher = pi.luks?.cipher ?? byModel?.cipher;
  if (!cipher) throw new Error(`pi.model: ${pi.model} has no default cipher; set pi.luks.cipher`);
  const keySizeBits = pi.luks?.cipher ? (/xts/.test(cipher) ? 512 : 256) : byModel!.keySizeBits;
  // Fixed, small argon2id cost: a header made on a big workstation must unlock on a 1 GB Pi.
  return { cipher, keySizeBits, pbkdfMemoryKiB: pi.luks?.pbkdfMemoryKiB ?? 262144, pbkdfIterations: pi.luks?.pbkdfIterations ?? 4 };
}

export const backupUser = (s: ServerSpec): string => s.backupUser ?? DEFAULT_BACKUP_USER;
export const sshPort = (s: { port?: number }): number => s.port ?? DEFAULT_SSH_PORT;
export const adminLogin = (s: { admin?: string }): string => s.admin ?? DEFAULT_ADMIN;
export const dataMapperName = (pi: PiSpec): string => pi.dataDisk.mapperName ?? 'pullvault-data';
export const minFreeMiB = (pi: PiSpec): number => pi.dataDisk.minFreeMiB ?? 1024;
export const usbKeyFilesystem = (pi: PiSpec): 'vfat' | 'ext4' => pi.usbKey.filesystem ?? 'vfat';
export const manifestRetentionDays = (t: S3TargetSpec): number => t.retentionDays.manifest ?? t.retentionDays.full;
export const writerUserName = (t: S3TargetSpec, piName: string): string => t.writerUser ?? `pullvault-${piName}-writer`;
export const restoreUserName = (t: S3TargetSpec, piName: string): string => t.restoreUser ?? `pullvault-${piName}-restore`;
export const unlockSshPort = (pi: PiSpec): number => pi.unlock?.ssh?.port ?? DEFAULT_UNLOCK_SSH_PORT;
/** how many tang servers must answer: sss.t, else 1 (any one) */
export const tangThreshold = (pi: PiSpec): number => pi.unlock?.sss?.t ?? 1;
/** the initramfs brings the network up only for tang or SSH unlock */
export const initramfsNetwork = (pi: PiSpec): boolean => !!(pi.unlock?.tang?.length || pi.unlock?.ssh);
