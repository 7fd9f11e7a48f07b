// The Pi's identity in state/<pi>/: LUKS UUID, USB keyfile, recovery passphrase, data-disk key and
// the Pi's SSH key. Created once and reused on every re-run (so an existing USB stick and the
// written-down passphrase keep working) until --rotate. state/ is 0700, secrets 0600; nothing
// here is ever printed except the recovery passphrase, once, when it is created.
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../../lib/proc/index.ts';

export interface PiSecrets {
  dir: string;
  rootUuid: string;
  keyFile: string;
  recoveryFile: string;
  dataKeyFile: string;
  sshKeyFile: string;
  sshPubFile: string;
  /** the Pi's SSH host key, installed in the image; its .pub is what pi.ssh.hostKey pins */
  hostKeyFile: string;
  hostPubFile: string;
  /** the initramfs's dropbear host key (pi.unlock.ssh only); its .pub is pinned in state/<pi>/known_hosts */
  unlockHostKeyFile?: string;
  unlockHostPubFile?: string;
  /** true when created by this run (the passphrase is shown once) */
  created: boolean;
}

export const SECRET_FILES = {
  identity: 'identity.json',
  key: 'usbkey.key',
  recovery: 'recovery-passphrase.txt',
  dataKey: 'data-disk.key',
  sshKey: 'pi_ssh_key',
  sshPub: 'pi_ssh_key.pub',
} as const;

/** Kept apart from SECRET_FILES: a state made before the host key existed gains one without losing the rest. */
const HOST_KEY_FILES = { key: 'ssh_host_ed25519_key', pub: 'ssh_host_ed25519_key.pub' } as const;
/** dropbear's in the initramfs: another key than sshd's, since the initramfs lies unencrypted on the FAT (whoever holds the card can read it) while sshd's stays on the encrypted root */
const UNLOCK_HOST_KEY_FILES = { key: 'initramfs_ssh_host_ed25519_key', pub: 'initramfs_ssh_host_ed25519_key.pub' } as const;

const ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'; // no 0/o, 1/l/i: read off paper, typed on a console

/** 6 groups of 5 from a 31-symbol alphabet: ~148 bits, lower-case letters and digits only (any keymap). */
export function generatePassphrase(): string {
  const groups: string[] = [];
  for (let g = 0; g < 6; g++) {
    let s = '';
    for (let i = 0; i < 5; i++) s += ALPHABET[randomInt(ALPHABET.length)];
    groups.push(s);
  }
  return groups.join('-');
}

export function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

function writeSecret(file: string, data: string | Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function piStateDir(stateDir: string, piName: string): string {
  return path.join(stateDir, piName);
}

export function haveSecrets(dir: string): boolean {
  return Object.values(SECRET_FILES).every((f) => existsSync(path.join(dir, f)));
}

export async function loadOrCreateSecrets(stateDir: string, piName: string, opts: { rotate: boolean; baseSha256: string; unlockSsh?: boolean }): Promise<PiSecrets> {
  ensureDir(stateDir);
  const dir = piStateDir(stateDir, piName);
  ensureDir(dir);
  const f = (n: keyof typeof SECRET_FILES) => path.join(dir, SECRET_FILES[n]);
  let created = false;
  if (opts.rotate || !haveSecrets(dir)) {
    created = true;
    writeSecret(f('key'), randomBytes(64));
    writeSecret(f('recovery'), generatePassphrase());
    writeSecret(f('dataKey'), randomBytes(64));
    rmSync(f('sshKey'), { force: true });
    rmSync(f('sshPub'), { force: true });
    await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `pullvault@${piName}`, '-f', f('sshKey')]);
    chmodSync(f('sshKey'), 0o600);
    chmodSync(f('sshPub'), 0o644);
    writeSecret(f('identity'), JSON.stringify({ rootUuid: randomUUID(), createdAt: new Date().toISOString(), baseImageSha256: opts.baseSha256 }, null, 2) + '\n');
  }
  const hostKey = await ensureHostKey(dir, HOST_KEY_FILES, `root@${piName}`, opts.rotate);
  const unlockHostKey = opts.unlockSsh ? await ensureHostKey(dir, UNLOCK_HOST_KEY_FILES, `root@${piName}-initramfs`, opts.rotate) : undefined;
  const id = JSON.parse(readFileSync(f('identity'), 'utf8')) as { rootUuid: string };
  for (const n of ['key', 'recovery', 'dataKey', 'sshKey', 'identity'] as const) chmodSync(f(n), 0o600);
  return {
    dir,
    rootUuid: id.rootUuid,
    keyFile: f('key'),
    recoveryFile: f('recovery'),
    dataKeyFile: f('dataKey'),
    sshKeyFile: f('sshKey'),
    sshPubFile: f('sshPub'),
    hostKeyFile: hostKey,
    hostPubFile: path.join(dir, HOST_KEY_FILES.pub),
    unlockHostKeyFile: unlockHostKey,
    unlockHostPubFile: unlockHostKey && path.join(dir, UNLOCK_HOST_KEY_FILES.pub),
    created,
  };
}

/** An ed25519 key pair made once (again on --rotate); the private half 0600, the public 0644. */
async function ensureHostKey(dir: string, names: { key: string; pub: string }, comment: string, rotate: boolean): Promise<string> {
  const key = path.join(dir, names.key);
  const pub = path.join(dir, names.pub);
  if (rotate || !existsSync(key) || !existsSync(pub)) {
    rmSync(key, { force: true });
    rmSync(pub, { force: true });
    await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', key]);
    chmodSync(pub, 0o644);
  }
  chmodSync(key, 0o600);
  return key;
}
