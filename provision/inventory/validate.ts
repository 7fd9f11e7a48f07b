// Validates an inventory: schema first (ajv, every error at once), then the rules a
// schema cannot say. Every problem is one line: `<file>: <field>: <what is wrong>`.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { inventoryJsonSchema, type Inventory } from '../../contract/inventory-schema.ts';
import { schemaChecker } from '../../contract/json-schema.ts';
import { defaultCipher, backupUser, unlockSshPort } from '../../contract/inventory-defaults.ts';
import { CHAIN_SLACK_DAYS, incrementalLifecycleDays } from '../aws/lifecycle.ts';
import { wifiPassphraseProblem, wifiSsidProblem } from '../image/wifi-plan.ts';

const schemaProblems = schemaChecker(inventoryJsonSchema());

export class InventoryError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(problems.map((p) => `${file}: ${p}`).join('\n'));
    this.name = 'InventoryError';
  }
}

export interface LoadedInventory {
  inventory: Inventory;
  file: string;
  /** the folder relative paths in the inventory are resolved against */
  dir: string;
}

/** Resolves a path written in the inventory (relative paths are relative to the inventory file). */
export function resolveInventoryPath(dir: string, p: string): string {
  return path.isAbsolute(p) ? p : path.resolve(dir, p);
}

function isInside(child: string, parent: string): boolean {
  const rel = path.posix.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.posix.isAbsolute(rel));
}

/** Rules the schema cannot express; pure, no I/O. */
function crossFieldProblems(inv: Inventory): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  inv.servers.forEach((s, i) => {
    if (seen.has(s.name)) problems.push(`servers[${i}].name: duplicate server name "${s.name}" (also servers[${seen.get(s.name)}])`);
    else seen.set(s.name, i);
    const user = backupUser(s);
    if (user === 'backup') problems.push(`servers[${i}].backupUser: "backup" is Debian's own system user (uid 34); choose another name, e.g. "pullvault"`);
    if (user === 'root') problems.push(`servers[${i}].backupUser: must not be root`);
    s.paths.forEach((a, j) => {
      if (a.path === '/') problems.push(`servers[${i}].paths[${j}].path: "/" is too broad; name the folders to back up`);
      s.paths.forEach((b, k) => {
        if (j < k && (isInside(a.path, b.path) || isInside(b.path, a.path)))
          problems.push(`servers[${i}].paths[${k}].path: "${b.path}" overlaps servers[${i}].paths[${j}].path "${a.path}"`);
      });
    });
    const groups = s.groups ?? [];
    const dupG = groups.filter((g, k) => groups.indexOf(g) !== k);
    if (dupG.length) problems.push(`servers[${i}].groups: "${dupG[0]}" is listed twice`);
  });
  if (!inv.pi.luks?.cipher && !defaultCipher(inv.pi.model))
    problems.push(`pi.model: "${inv.pi.model}" has no default LUKS cipher; set pi.luks.cipher`);
  problems.push(...unlockProblems(inv));
  if (inv.pi.dataDisk.mountpoint === '/') problems.push(`pi.dataDisk.mountpoint: must not be "/" (backups must never fill the SD card)`);
  const r = inv.retention;
  if (r.hourly + r.daily + r.weekly + r.monthly === 0) problems.push(`retention: keeps nothing; set at least one of hourly, daily, weekly, monthly above 0`);
  const off = inv.schedule.offsite;
  if (off.incrementalEveryDays !== undefined && off.incrementalEveryDays >= off.fullEveryDays)
    problems.push(`schedule.offsite.incrementalEveryDays: must be less than fullEveryDays (${off.fullEveryDays})`);
  if (inv.offsite.type === 's3') {
    const rd = inv.offsite.retentionDays;
    // The guarantee: every restore point (a full or an incremental) stays restorable for at
    // least retentionDays.incremental days after its upload. An incremental needs its chain's
    // full and every incremental before it; the Pi starts a new full once the chain's full is
    // fullEveryDays old (less an hour), so a chain spans at most maxChainDays = fullEveryDays +
    // CHAIN_SLACK_DAYS when each upload finishes within a day (its last incremental's upload).
    // Incremental objects are kept retentionDays.incremental + maxChainDays (provision/aws/lifecycle.ts);
    // fulls and manifests (full and incremental ones) must be kept at least as long. It holds
    // while uploads succeed: a full that keeps failing means no new point at all (no incremental
    // is sent on a chain past its span), never a point that expires early.
    const keep = incrementalLifecycleDays(inv.offsite, off.fullEveryDays);
    if (rd.full < keep)
      problems.push(
        `offsite.retentionDays.full: must be at least retentionDays.incremental + schedule.offsite.fullEveryDays + ${CHAIN_SLACK_DAYS} (${keep}): a full must outlive the incrementals built on it, which are kept ${keep} days`,
      );
    if (rd.manifest !== undefined && rd.manifest < rd.full)
      problems.push(`offsite.retentionDays.manifest: must be at least retentionDays.full (${rd.full})`);
  }
  const names = new Map<string, number>();
  inv.recipients.forEach((rc, i) => {
    if (names.has(rc.name)) problems.push(`recipients[${i}].name: duplicate recipient name "${rc.name}"`);
    names.set(rc.name, i);
  });
  const fprs = new Map<string, number>();
  inv.recipients.forEach((rc, i) => {
    if (fprs.has(rc.fingerprint)) problems.push(`recipients[${i}].fingerprint: same key as recipients[${fprs.get(rc.fingerprint)}]; an escrow copy needs a different key`);
    fprs.set(rc.fingerprint, i);
  });
  return problems;
}

/** JWK thumbprint lengths (base64url, no padding) of the hashes clevis accepts: SHA-1, SHA-256, SHA-384, SHA-512. */
const THUMBPRINT_LENGTHS = new Set([27, 43, 64, 86]);

/** Host of a URL without brackets, lower-case; undefined when it does not parse. */
function urlHost(url: string): string | undefined {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  } catch {
    return undefined;
  }
}

/** Scheme, host, port and path without a trailing slash: what makes two tang URLs the same server. */
function sameServerKey(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

/** pi.unlock: tang servers at home (never one of the internet servers), thumbprints well-formed, no repeats. */
function unlockProblems(inv: Inventory): string[] {
  const problems: string[] = [];
  const u = inv.pi.unlock;
  const tang = u?.tang ?? [];
  const serverHosts = new Map(inv.servers.map((s, i) => [s.ssh.host.toLowerCase(), i]));
  const urls = new Map<string, number>();
  tang.forEach((t, i) => {
    const field = `pi.unlock.tang[${i}]`;
    const host = urlHost(t.url);
    if (!host) problems.push(`${field}.url: "${t.url}" is not a URL`);
    else if (serverHosts.has(host))
      problems.push(`${field}.url: ${host} is servers[${serverHosts.get(host)}] (${inv.servers[serverHosts.get(host)!].name}), an internet server; a tang server must be on the Pi's home network, else a stolen Pi unlocks anywhere`);
    const key = host ? sameServerKey(t.url) : t.url;
    if (urls.has(key)) problems.push(`${field}.url: same server as pi.unlock.tang[${urls.get(key)}]`);
    else urls.set(key, i);
    if (!THUMBPRINT_LENGTHS.has(t.thumbprint.length))
      problems.push(`${field}.thumbprint: "${t.thumbprint}" is not a JWK thumbprint (base64url of SHA-1, SHA-256, SHA-384 or SHA-512: 27, 43, 64 or 86 characters; tang-show-keys prints it)`);
  });
  if (u?.sss && !tang.length) problems.push('pi.unlock.sss: needs pi.unlock.tang (the threshold counts tang servers)');
  else if (u?.sss && u.sss.t > tang.length) problems.push(`pi.unlock.sss.t: ${u.sss.t} tang servers required but only ${tang.length} listed; the Pi could never unlock by tang`);
  const keys = u?.ssh?.authorizedKeys ?? [];
  const dup = keys.find((k, i) => keys.indexOf(k) !== i);
  if (dup) problems.push(`pi.unlock.ssh.authorizedKeys: "${dup.slice(0, 40)}…" is listed twice`);
  if (u?.ssh && inv.pi.ssh?.port !== undefined && unlockSshPort(inv.pi) === inv.pi.ssh.port)
    problems.push(`pi.unlock.ssh.port: same as pi.ssh.port (${inv.pi.ssh.port}); the initramfs's dropbear and the system's sshd have different host keys`);
  return problems;
}

/** pi.wifi: an SSID a keyfile can carry, and a pskFile holding a WPA passphrase or key. */
async function wifiProblems(inv: Inventory, dir: string): Promise<string[]> {
  const w = inv.pi.wifi;
  if (!w) return [];
  const problems: string[] = [];
  const ssid = wifiSsidProblem(w.ssid);
  if (ssid) problems.push(`pi.wifi.ssid: "${w.ssid}" ${ssid}`);
  const file = resolveInventoryPath(dir, w.pskFile);
  try {
    const psk = wifiPassphraseProblem(await readFile(file, 'utf8'));
    if (psk) problems.push(`pi.wifi.pskFile: ${file} ${psk}`);
  } catch {
    problems.push(`pi.wifi.pskFile: cannot read ${file}`);
  }
  return problems;
}

/** Checks the recipients' key files: readable, the pinned fingerprint, usable for encryption, GnuPG 2.2-compatible. */
async function recipientKeyProblems(inv: Inventory, dir: string): Promise<string[]> {
  const problems: string[] = [];
  for (const [i, rc] of inv.recipients.entries()) {
    const field = `recipients[${i}].publicKeyFile`;
    const file = resolveInventoryPath(dir, rc.publicKeyFile);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      problems.push(`${field}: cannot read ${file}`);
      continue;
    }
    let key: openpgp.Key;
    try {
      key = await openpgp.readKey({ armoredKey: text });
    } catch (e) {
      problems.push(`${field}: ${file} is not an armored OpenPGP public key (${(e as Error).message})`);
      continue;
    }
    if (key.isPrivate()) problems.push(`${field}: ${file} holds a PRIVATE key; give the public key only`);
    const fpr = key.getFingerprint().toUpperCase();
    if (fpr !== rc.fingerprint) problems.push(`recipients[${i}].fingerprint: pinned ${rc.fingerprint} but ${file} has ${fpr}`);
    try {
      await key.getEncryptionKey();
    } catch {
      problems.push(`${field}: ${file} has no valid encryption subkey (expired or revoked?)`);
    }
    const wantsAead = await keyAsksForAead(key);
    if (wantsAead && !rc.allowAead)
      problems.push(`${field}: ${file} asks for SEIPDv2/AEAD encryption, which GnuPG 2.2 cannot decrypt; use a GnuPG-made key or set recipients[${i}].allowAead`);
  }
  return problems;
}

async function keyAsksForAead(key: openpgp.Key): Promise<boolean> {
  if (key.keyPacket.version === 6) return true;
  const { selfCertification } = await key.getPrimaryUser().catch(() => ({ selfCertification: undefined }));
  const features = (selfCertification as { features?: number[] } | undefined)?.features ?? [];
  // Features bit 0x08: "Version 2 Symmetrically Encrypted and Integrity Protected Data packet".
  return ((features[0] ?? 0) & 0x08) !== 0;
}

/** Parses and validates; throws InventoryError listing every problem. */
export async function loadInventory(file: string): Promise<LoadedInventory> {
  const rel = path.relative(process.cwd(), file);
  const display = rel && !rel.startsWith('..') ? rel : file;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new InventoryError(display, [`cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`]);
  }
  return validateInventoryText(text, display, path.dirname(path.resolve(file)));
}

export async function validateInventoryText(text: string, display: string, dir: string): Promise<LoadedInventory> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new InventoryError(display, [`not valid JSON: ${(e as Error).message}`]);
  }
  const invalid = schemaProblems(data);
  if (invalid.length) throw new InventoryError(display, invalid);
  const inventory = data as Inventory;
  const problems = [...crossFieldProblems(inventory), ...(await recipientKeyProblems(inventory, dir)), ...(await wifiProblems(inventory, dir))];
  if (problems.length) throw new InventoryError(display, problems);
  return { inventory, file: display, dir };
}
