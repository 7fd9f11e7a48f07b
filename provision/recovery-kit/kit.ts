// What a recovery kit holds (plain data gathered by gather.ts, drawn by render.ts), and the list of
// its contents that --dry-run prints: names, fingerprints and sources, never a secret value.
import type { OffsiteSpec } from '../../contract/inventory-schema.ts';
import { describeOffsite } from '../../contract/offsite-kinds.ts';

export interface KitKey {
  recipient: string;
  fingerprint: string;
  userIds: string[];
  /** the secret key is encrypted with a passphrase (which is not in the kit) */
  protected: boolean;
  /** where the secret key came from (a path, for the dry run and the page) */
  source: string;
  /** paperkey's text form of the secret parts: SECRET */
  paperkeyText: string;
  /** the binary transferable public key paperkey rebuilds onto (not secret) */
  publicKey: Uint8Array;
  /** the same, ASCII-armored, for typing in by hand */
  publicKeyArmored: string;
}

export interface KitCredentials {
  userName: string;
  accessKeyId: string;
  /** SECRET */
  secretAccessKey: string;
}

export interface KitPi {
  name: string;
  /** LUKS UUID of the root partition (state/<pi>/identity.json) */
  rootUuid?: string;
  /** SECRET: unlocks the root in place of the USB stick */
  recoveryPassphrase?: string;
  dataDevice: string;
  dataMapper: string;
  dataMountpoint: string;
  dataKeyPath: string;
}

export interface KitInput {
  generatedAt: string;
  inventoryFile: string;
  pi: KitPi;
  servers: string[];
  offsite: OffsiteSpec;
  fullEveryDays: number;
  recipients: { name: string; fingerprint: string }[];
  credentials?: KitCredentials;
  keys: KitKey[];
  /** docs/restore-by-hand.md, as it is in the tree */
  procedureMarkdown: string;
  /** things the owner should know are not in the kit (one line each) */
  missing: string[];
}

/** The last 16 hex digits of a fingerprint: the tag on the key's QR lines. */
export const keyIdOf = (fingerprint: string): string => fingerprint.slice(-16);

/** Fingerprint in groups of four, as gpg prints it. */
export const groupFingerprint = (fpr: string): string => fpr.replace(/(.{4})(?=.)/g, '$1 ').replace(/^((?:\S{4} ){5})/, '$1 ');

/** One line per thing in the kit; no secret value. */
export function kitContents(k: KitInput): string[] {
  const o = k.offsite;
  const lines = [
    `where the data is: ${describeOffsite(o)}, servers ${k.servers.join(', ')}`,
    `recipients: ${k.recipients.map((r) => `${r.name} ${r.fingerprint}`).join(', ')}`,
    k.credentials ? `secret: read-only credentials of ${k.credentials.userName} (access key ${k.credentials.accessKeyId})` : 'no read-only credentials',
    k.pi.recoveryPassphrase ? `secret: LUKS recovery passphrase of ${k.pi.name}'s root${k.pi.rootUuid ? ` (UUID ${k.pi.rootUuid})` : ''}` : `no LUKS recovery passphrase for ${k.pi.name}`,
    ...k.keys.map((key) => `secret: ${key.recipient}'s secret key ${key.fingerprint}${key.protected ? ' (passphrase-protected)' : ' (NOT protected)'} as paperkey text and QR codes, from ${key.source}`),
    'the by-hand restore procedure (docs/restore-by-hand.md)',
  ];
  return [...lines, ...k.missing.map((m) => `missing: ${m}`)];
}
