// Collects what goes into the kit (effects: files in the state directory, the inventory's key
// files, the secret keys the owner names, paperkey). Secrets are read into memory and handed to
// paperkey on stdin: no temporary file, nothing printed.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { credentialsFile, readCredentials } from '../aws/credentials.ts';
import { restoreUserName } from '../../contract/inventory-defaults.ts';
import type { LoadedInventory } from '../inventory/validate.ts';
import { crypttabVars } from '../image/plan.ts';
import { CommandError, run } from '../../lib/proc/index.ts';
import { piStateDir, SECRET_FILES } from '../image/secrets.ts';
import { REPO_ROOT } from '../state.ts';
import type { KitInput, KitKey } from './kit.ts';

/** Secret keys that pullvault made (the demo) sit here as <recipient>.secret.asc; the kit picks them up. */
export const generatedKeysDir = (stateDir: string): string => path.join(stateDir, 'openpgp');

const PROCEDURE_DOC = path.join(REPO_ROOT, 'docs', 'restore-by-hand.md');

export class KitError extends Error {}

async function readSecretKey(file: string): Promise<openpgp.PrivateKey> {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (e) {
    throw new KitError(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  try {
    // armored (any block type: openpgp.js names a public one) or binary
    const text = data.toString('latin1');
    return /^-----BEGIN PGP /m.test(text) ? await openpgp.readPrivateKey({ armoredKey: text }) : await openpgp.readPrivateKey({ binaryKey: data });
  } catch (e) {
    throw new KitError(`${file}: not an OpenPGP secret key (${(e as Error).message.split('\n')[0]})`);
  }
}

async function paperkey(secretKey: Uint8Array, file: string): Promise<string> {
  try {
    return (await run(['paperkey'], { input: Buffer.from(secretKey), timeoutMs: 60_000 })).stdout;
  } catch (e) {
    if (e instanceof CommandError && e.notStarted) throw new KitError('paperkey is not installed (apt-get install paperkey)');
    throw new KitError(`${file}: paperkey failed: ${(e as Error).message.split('\n').slice(-1)[0].trim()}`);
  }
}

/** The kit's view of one secret key file, matched to its recipient by fingerprint. */
async function kitKey(file: string, recipients: { name: string; fingerprint: string }[]): Promise<KitKey> {
  const key = await readSecretKey(file);
  const fingerprint = key.getFingerprint().toUpperCase();
  const recipient = recipients.find((r) => r.fingerprint.toUpperCase() === fingerprint);
  if (!recipient) throw new KitError(`${file}: key ${fingerprint} is not one of the inventory's recipients (${recipients.map((r) => `${r.name} ${r.fingerprint}`).join(', ')})`);
  const pub = key.toPublic();
  return {
    recipient: recipient.name,
    fingerprint,
    userIds: key.getUserIDs(),
    protected: !key.isDecrypted(),
    source: file,
    paperkeyText: await paperkey(key.write(), file),
    publicKey: pub.write(),
    publicKeyArmored: pub.armor(),
  };
}

function readIfThere(file: string): string | undefined {
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}

export interface GatherOptions {
  stateDir: string;
  /** --secret-key FILE… */
  secretKeyFiles: string[];
  /** leave the restore user's credentials out */
  noCredentials: boolean;
  now?: Date;
}

export async function gatherKit(loaded: LoadedInventory, o: GatherOptions): Promise<KitInput> {
  const inv = loaded.inventory;
  const missing: string[] = [];
  const piDir = piStateDir(o.stateDir, inv.pi.name);
  const recoveryPassphrase = readIfThere(path.join(piDir, SECRET_FILES.recovery))?.trim();
  const identity = readIfThere(path.join(piDir, SECRET_FILES.identity));
  const rootUuid = identity ? (JSON.parse(identity) as { rootUuid?: string }).rootUuid : undefined;
  if (!recoveryPassphrase) missing.push(`the LUKS recovery passphrase (${path.join(piDir, SECRET_FILES.recovery)} not found: run make provision-pi)`);
  const ct = crypttabVars(inv.pi, rootUuid ?? '');

  let credentials: KitInput['credentials'];
  if (inv.offsite.type === 's3' && !o.noCredentials) {
    const c = readCredentials(credentialsFile(o.stateDir, 'restore'));
    if (c) credentials = { userName: c.userName, accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey };
    else missing.push(`read-only credentials of ${restoreUserName(inv.offsite, inv.pi.name)} (none in ${credentialsFile(o.stateDir, 'restore')}: make provision-aws ARGS=--restore-user)`);
  }

  const generated = generatedKeysDir(o.stateDir);
  const files = [
    ...(existsSync(generated) ? readdirSync(generated).filter((f) => f.endsWith('.secret.asc')).sort().map((f) => path.join(generated, f)) : []),
    ...o.secretKeyFiles.map((f) => path.resolve(f)),
  ];
  const keys: KitKey[] = [];
  for (const f of files) {
    const k = await kitKey(f, inv.recipients);
    if (!keys.some((x) => x.fingerprint === k.fingerprint)) keys.push(k);
  }
  for (const r of inv.recipients) if (!keys.some((k) => k.fingerprint === r.fingerprint.toUpperCase())) missing.push(`${r.name}'s secret key (pass it with --secret-key FILE)`);

  return {
    generatedAt: (o.now ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z'),
    inventoryFile: loaded.file,
    pi: { name: inv.pi.name, rootUuid, recoveryPassphrase, dataDevice: ct.dataDevice, dataMapper: ct.dataMapper, dataMountpoint: inv.pi.dataDisk.mountpoint, dataKeyPath: ct.dataKeyPath },
    servers: inv.servers.map((s) => s.name),
    offsite: inv.offsite,
    fullEveryDays: inv.schedule.offsite.fullEveryDays,
    recipients: inv.recipients.map((r) => ({ name: r.name, fingerprint: r.fingerprint.toUpperCase() })),
    credentials,
    keys,
    procedureMarkdown: readFileSync(PROCEDURE_DOC, 'utf8'),
    missing,
  };
}
