// What `pullvault restore` and `pullvault verify` share (the owner's machine: read-only
// credentials, a private key): the store to read from and the key to decrypt with.
import { readFile } from 'node:fs/promises';
import { checkRuntimeConfig, ConfigError, type RuntimeConfig } from '../../contract/runtime-config.ts';
import type { Inventory, OffsiteSpec } from '../../contract/inventory-schema.ts';
import { loadPrivateKey, type Decryptor } from '../archive/pgp.ts';
import { UsageError } from '../actions/action.ts';
import { openTarget, parseTargetArg, readCredentials, targetKind } from './open-target.ts';
import type { Target } from './target.ts';

/** Where the archives are and how to decrypt them: the options `restore` and `verify` share. */
export const SOURCE_OPTIONS = {
  config: { type: 'string' },
  target: { type: 'string' },
  region: { type: 'string' },
  endpoint: { type: 'string' },
  credentials: { type: 'string' },
  'gpg-homedir': { type: 'string' },
  key: { type: 'string' },
  'passphrase-file': { type: 'string' },
  tmpdir: { type: 'string' },
} as const;

export const SOURCE_HELP = `  SOURCE: --config FILE (inventory.json or the Pi's config.json) | --target dir:PATH | --target s3://BUCKET/PREFIX/ [--region R] [--endpoint URL]
          --credentials FILE  read-only S3 credentials as JSON {accessKeyId, secretAccessKey}
  KEY:    --gpg-homedir DIR (gpg and its agent decrypt; default: gpg's own home) | --key FILE (armored private key)
          --passphrase-file FILE  (otherwise asked on the terminal, or by gpg's pinentry)
  TIME:   2024-05-01, 2024-05-01T12:00:00Z or a snapshot id 20240501T120000Z (default: the latest)`;

export type Source = { [K in keyof typeof SOURCE_OPTIONS]?: string };

/** What --config FILE names on the owner's side: the inventory, or the Pi's config.json (then checked, as the Pi checks it). */
export interface SourceConfig {
  file: string;
  inventory: Inventory;
  /** set when FILE is the Pi's config.json */
  config?: RuntimeConfig;
}

/**
 * Reads --config FILE for restore, verify, watch and report. The Pi's config is checked with the
 * runtime's own validator; an inventory only for the fields these commands read (its full check
 * is `make validate` on the admin side). Every error names the file.
 */
export async function readSourceConfig(file: string): Promise<SourceConfig> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`${file}: ${code ? `cannot read: ${code}` : `not valid JSON: ${(e as Error).message}`}`);
  }
  if (data !== null && typeof data === 'object' && 'inventory' in data && 'paths' in data) {
    try {
      const config = checkRuntimeConfig(data, file);
      return { file, inventory: config.inventory, config };
    } catch (e) {
      throw e instanceof ConfigError ? new UsageError(e.message) : e;
    }
  }
  const inv = data as Partial<Inventory> | null;
  if (!Array.isArray(inv?.servers) || typeof inv?.offsite?.type !== 'string')
    throw new UsageError(`${file}: neither an inventory (servers, offsite, …) nor the Pi's config.json (inventory, paths)`);
  return { file, inventory: inv as Inventory };
}

/** The store --target or --config names; `source` when the caller has read --config already. */
export async function targetFrom(o: Source, source?: SourceConfig): Promise<Target> {
  let spec: OffsiteSpec;
  const creds = o.credentials ? await readCredentials(o.credentials) : undefined;
  if (o.target) spec = parseTargetArg(o.target, o.region ?? creds?.region, o.endpoint ?? creds?.endpoint);
  else if (o.config) {
    spec = (source ?? (await readSourceConfig(o.config))).inventory.offsite;
    const kind = targetKind(spec.type);
    if (kind.withEndpoint && o.endpoint) spec = kind.withEndpoint(spec, o.endpoint);
  } else throw new UsageError('give --config FILE or --target');
  if (targetKind(spec.type).credentials === 'file' && !creds && !process.env.AWS_ACCESS_KEY_ID && !process.env.AWS_PROFILE)
    process.stderr.write('note: no --credentials; using the AWS SDK default chain (environment, profile)\n');
  return openTarget(spec, creds);
}

async function askPassphrase(): Promise<string> {
  if (!process.stdin.isTTY) throw new Error('the private key needs a passphrase: give --passphrase-file or run on a terminal');
  process.stderr.write('passphrase for the private key: ');
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  let s = '';
  try {
    for await (const chunk of stdin) {
      for (const c of (chunk as Buffer).toString('utf8')) {
        if (c === '\r' || c === '\n') return s;
        if (c === '\u0003') throw new Error('cancelled');
        if (c === '\u007f') s = s.slice(0, -1);
        else s += c;
      }
    }
    return s;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

export async function decryptorFrom(o: Source): Promise<Decryptor> {
  const pf = o['passphrase-file'];
  if (o.key) {
    const armored = await readFile(o.key, 'utf8');
    const pass = pf ? async () => (await readFile(pf, 'utf8')).replace(/\r?\n$/, '') : askPassphrase;
    return { kind: 'key', privateKey: await loadPrivateKey(armored, pass) };
  }
  return { kind: 'gpg', homedir: o['gpg-homedir'], passphraseFile: pf };
}
