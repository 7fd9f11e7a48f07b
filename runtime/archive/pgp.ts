// OpenPGP: encrypt with openpgp.js (streaming, to every recipient), decrypt with gpg when the
// owner uses a GnuPG home (agent, smartcard) or with openpgp.js from an armored private key.
// Both decryptors stream in constant memory into a file that is deleted unless the integrity
// check at the end of the message passed.
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { readFile, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import * as openpgp from 'openpgp';
import { start } from '../proc.ts';
import { SeipdError, SeipdReader } from './seipd-read.ts';

export interface Recipient {
  name: string;
  fingerprint: string;
  key: openpgp.PublicKey;
}

/** Reads a recipient's armored public key and checks the pinned fingerprint. */
export async function loadRecipient(name: string, file: string, fingerprint: string): Promise<Recipient> {
  const key = await openpgp.readKey({ armoredKey: await readFile(file, 'utf8') });
  const fpr = key.getFingerprint().toUpperCase();
  if (fpr !== fingerprint.replace(/\s+/g, '').toUpperCase()) throw new Error(`recipient ${name}: ${file} has key ${fpr}, the inventory pins ${fingerprint}`);
  await key.getEncryptionKey(); // throws when the key cannot encrypt (expired, revoked, no subkey)
  return { name, fingerprint: fpr, key };
}

/** Encrypts a stream to all recipients; binary OpenPGP, SEIPDv1 for the GnuPG 2.2-compatible keys validation admits. */
export async function encryptStream(input: Readable, recipients: Recipient[]): Promise<Readable> {
  if (recipients.length === 0) throw new Error('no recipients to encrypt to');
  const message = await openpgp.createMessage({ binary: Readable.toWeb(input) as unknown as ReadableStream<Uint8Array> });
  const out = await openpgp.encrypt({ message, encryptionKeys: recipients.map((r) => r.key), format: 'binary' });
  return Readable.fromWeb(out as unknown as WebReadableStream<Uint8Array>, { highWaterMark: 1 << 20 });
}

/**
 * The same OpenPGP message shape openpgp.js writes for GnuPG-2.2 keys (PKESK per recipient +
 * SEIPDv1 with MDC around a binary literal packet, AES-256), with the bulk done by Node's native
 * AES-256-CFB and SHA-1 instead of openpgp.js's JavaScript/WebCrypto stream (too slow for the
 * archive path: bench/OFFSITE.md). openpgp.js still does everything key-related: it
 * encrypts the session key to each recipient (encryptSessionKey). Decryptable by GnuPG ≥ 2.2
 * and openpgp.js (both tested).
 */
export async function encryptStreamFast(input: Readable, recipients: Recipient[]): Promise<Readable> {
  if (recipients.length === 0) throw new Error('no recipients to encrypt to');
  const sessionKey = randomBytes(32);
  const pkesk = Buffer.from(
    (await openpgp.encryptSessionKey({ data: sessionKey, algorithm: 'aes256', encryptionKeys: recipients.map((r) => r.key), format: 'binary' })) as Uint8Array,
  );
  return sealStream(input, pkesk, sessionKey);
}

// Both packets (literal inside, SEIPD outside) use partial body lengths of 2^20: the plaintext
// is gathered into one reused 1 MiB buffer (one SHA-1 and one AES call per MiB), and the output
// comes out in 1 MiB chunks (header byte + body), ready for large writes.
const POW = 20;
const CHUNK = 1 << POW;
const PARTIAL = 224 + POW; // partial body length header for 2^POW bytes

function normalLength(n: number): Buffer {
  if (n < 192) return Buffer.from([n]);
  if (n < 8384) return Buffer.from([((n - 192) >> 8) + 192, (n - 192) & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = 0xff;
  b.writeUInt32BE(n, 1);
  return b;
}

/**
 * The SEIPDv1 writer, synchronous: `write` plaintext, `end` once; `emit` receives the output
 * (after the PKESKs, which the caller writes first).
 *
 *   SEIPD (tag 18) = 0xd2, partial-length framing of: 0x01 ‖ CFB(prefix ‖ P ‖ 0xd3 0x14 ‖ SHA-1)
 *   P = literal packet (tag 11): 0xcb, partial-length framing of: 0x62 0 0 0 0 0 ‖ data
 * The SHA-1 (MDC) covers prefix ‖ P ‖ 0xd3 0x14. A partial length is only written once more
 * bytes are known to follow, so the last piece of both packets has a normal length (≥ 1 byte).
 */
class Seipd {
  private readonly cipher;
  private readonly mdc = createHash('sha1');
  /** the literal packet's pending piece: [PARTIAL header slot][up to CHUNK body bytes] */
  private readonly lit = Buffer.allocUnsafe(1 + CHUNK);
  private fill = 0;
  /** SEIPD body bytes (fresh cipher output, never reused) not yet framed */
  private pending: Buffer[] = [];
  private pendingSize = 0;

  constructor(
    key: Buffer,
    private readonly emit: (b: Buffer) => void,
  ) {
    this.cipher = createCipheriv('aes-256-cfb', key, Buffer.alloc(16, 0));
    this.emit(Buffer.from([0xc0 | 18]));
    this.body(Buffer.from([1]));
    const prefix = randomBytes(16);
    this.inner(Buffer.concat([prefix, prefix.subarray(14, 16), Buffer.from([0xc0 | 11])]));
    this.lit[0] = PARTIAL;
    this.lit.set([0x62, 0, 0, 0, 0, 0], 1); // binary, no file name, date 0
    this.fill = 6;
  }

  /** plaintext to hash and encrypt */
  private inner(b: Buffer): void {
    this.mdc.update(b);
    this.body(this.cipher.update(b));
  }

  /** SEIPD body bytes: framed into 1 + CHUNK byte outputs, one byte always kept back */
  private body(b: Buffer): void {
    this.pending.push(b);
    this.pendingSize += b.length;
    while (this.pendingSize > CHUNK) {
      const out = Buffer.allocUnsafe(1 + CHUNK);
      out[0] = PARTIAL;
      let o = 1;
      while (o < out.length) {
        const p = this.pending[0];
        const n = Math.min(p.length, out.length - o);
        p.copy(out, o, 0, n);
        o += n;
        if (n === p.length) this.pending.shift();
        else this.pending[0] = p.subarray(n);
      }
      this.pendingSize -= CHUNK;
      this.emit(out);
    }
  }

  write(c: Uint8Array): void {
    let off = 0;
    while (off < c.length) {
      if (this.fill === CHUNK) {
        // a full literal piece and more data: it gets a partial length
        this.inner(this.lit);
        this.fill = 0;
      }
      const n = Math.min(CHUNK - this.fill, c.length - off);
      this.lit.set(c.subarray(off, off + n), 1 + this.fill);
      this.fill += n;
      off += n;
    }
  }

  end(): void {
    this.inner(Buffer.concat([normalLength(this.fill), this.lit.subarray(1, 1 + this.fill), Buffer.from([0xd3, 0x14])]));
    this.body(this.cipher.update(this.mdc.digest()));
    this.body(this.cipher.final());
    const rest = Buffer.concat(this.pending);
    this.pending = [];
    this.emit(Buffer.concat([normalLength(rest.length), rest]));
  }
}

/** The OpenPGP message (PKESKs then SEIPD) of `input`, as a stream with backpressure. */
function sealStream(input: Readable, pkesk: Buffer, key: Buffer): Readable {
  const out = new Readable({
    highWaterMark: 2 * CHUNK,
    read() {
      if (input.isPaused()) input.resume();
    },
    destroy(err, cb) {
      input.destroy();
      cb(err);
    },
  });
  out.push(pkesk);
  const s = new Seipd(key, (b) => {
    if (!out.push(b)) input.pause();
  });
  input.on('data', (c: Buffer) => {
    try {
      s.write(c);
    } catch (e) {
      out.destroy(e as Error);
    }
  });
  input.once('end', () => {
    try {
      s.end();
      out.push(null);
    } catch (e) {
      out.destroy(e as Error);
    }
  });
  input.once('error', (e) => out.destroy(e));
  return out;
}

export class NotRecipientError extends Error {}
export class IntegrityError extends Error {}

export type Decryptor =
  | { kind: 'gpg'; homedir?: string; passphraseFile?: string }
  | { kind: 'key'; privateKey: openpgp.PrivateKey };

/** An armored private key, unlocked with the passphrase (asked by the caller). */
export async function loadPrivateKey(armored: string, passphrase?: () => Promise<string>): Promise<openpgp.PrivateKey> {
  const k = await openpgp.readPrivateKey({ armoredKey: armored });
  if (k.isDecrypted()) return k;
  if (!passphrase) throw new Error('the private key is protected: give --passphrase-file or run on a terminal');
  try {
    return await openpgp.decryptKey({ privateKey: k, passphrase: await passphrase() });
  } catch (e) {
    throw new Error(`cannot unlock the private key: ${(e as Error).message}`);
  }
}

/** Decrypts `input` into `outFile`; the file exists afterwards only if decryption and the integrity check passed. */
export async function decryptToFile(input: Readable, outFile: string, d: Decryptor, what: string): Promise<void> {
  try {
    if (d.kind === 'gpg') await gpgDecrypt(input, outFile, d, what);
    // the bulk in node:crypto by default (seipd-read.ts); PULLVAULT_DECRYPTOR=openpgp: openpgp.js's own stream
    else if (process.env.PULLVAULT_DECRYPTOR === 'openpgp') await openpgpDecrypt(input, outFile, d.privateKey, what);
    else await nativeDecrypt(input, outFile, d.privateKey, what);
  } catch (e) {
    await rm(outFile, { force: true });
    throw e;
  }
}

async function gpgDecrypt(input: Readable, outFile: string, d: { homedir?: string; passphraseFile?: string }, what: string): Promise<void> {
  const argv = ['gpg', '--batch', '--yes', '--no-tty', '--quiet'];
  if (d.homedir) argv.push('--homedir', d.homedir);
  if (d.passphraseFile) argv.push('--pinentry-mode', 'loopback', '--passphrase-file', d.passphraseFile);
  argv.push('--status-fd', '2', '--output', outFile, '--decrypt');
  const p = start(argv, { stdio: ['pipe', 'ignore', 'pipe'] });
  const feeding = pipeline(input, p.child.stdin!).catch(() => {});
  try {
    await p.done;
    await feeding;
  } catch (e) {
    input.destroy();
    const err = p.stderr();
    if (/NO_SECKEY|No secret key/.test(err) && !/DECRYPTION_OKAY/.test(err)) {
      const ids = [...new Set([...err.matchAll(/(?:ENC_TO|NO_SECKEY) ([0-9A-F]+)/g)].map((m) => m[1]))];
      throw new NotRecipientError(`${what}: cannot decrypt: no secret key here is a recipient (gpg${d.homedir ? ` --homedir ${d.homedir}` : ''}; encrypted to key ids ${ids.join(', ') || 'unknown'})`);
    }
    if (/BADMDC|DECRYPTION_FAILED|invalid packet|CRC error|bad data/i.test(err)) throw new IntegrityError(`${what}: corrupted or not a valid OpenPGP message: ${(e as Error).message}`);
    throw new Error(`${what}: gpg could not decrypt: ${(e as Error).message}`);
  }
  if (!/DECRYPTION_OKAY/.test(p.stderr()) || /BADMDC/.test(p.stderr())) throw new IntegrityError(`${what}: gpg did not confirm the integrity check`);
}

function checkRecipient(message: openpgp.Message<Uint8Array | ReadableStream<Uint8Array>>, key: openpgp.PrivateKey, what: string): void {
  const ids = message.getEncryptionKeyIDs().map((k) => k.toHex().toUpperCase());
  const mine = new Set(key.getKeys().map((k) => k.getKeyID().toHex().toUpperCase()));
  if (!ids.some((id) => mine.has(id))) throw new NotRecipientError(`${what}: cannot decrypt: key ${key.getFingerprint().toUpperCase()} is not a recipient (encrypted to key ids ${ids.join(', ')})`);
}

/** openpgp.js decrypts the session key from the PKESKs; AES-CFB, SHA-1 and the framing are native (seipd-read.ts). */
async function nativeDecrypt(input: Readable, outFile: string, key: openpgp.PrivateKey, what: string): Promise<void> {
  const out = createWriteStream(outFile, { mode: 0o600, highWaterMark: 1 << 20 });
  let full = false;
  const reader = new SeipdReader(
    async (pkesks) => {
      let message;
      try {
        message = await openpgp.readMessage({ binaryMessage: new Uint8Array(pkesks) });
      } catch (e) {
        throw new IntegrityError(`${what}: not a valid OpenPGP message: ${(e as Error).message}`);
      }
      checkRecipient(message, key, what);
      try {
        const [k] = await openpgp.decryptSessionKeys({ message, decryptionKeys: key });
        return { algorithm: k.algorithm as string, data: k.data };
      } catch (e) {
        throw new IntegrityError(`${what}: cannot decrypt the session key: ${(e as Error).message}`);
      }
    },
    (b) => {
      if (!out.write(b)) full = true;
    },
  );
  const failed = once(out, 'error').then(([e]) => Promise.reject(e as Error));
  failed.catch(() => {});
  try {
    for await (const chunk of input) {
      await reader.write(chunk as Buffer);
      if (full) {
        await Promise.race([once(out, 'drain'), failed]);
        full = false;
      }
    }
    reader.end();
    out.end();
    await Promise.race([once(out, 'finish'), failed]);
  } catch (e) {
    input.destroy();
    out.destroy();
    if (e instanceof SeipdError)
      throw new IntegrityError(`${what}: ${e.kind === 'unsupported' ? `not a message pullvault writes (${e.message}); PULLVAULT_DECRYPTOR=openpgp reads it` : `corrupted or not a valid OpenPGP message: ${e.message}`}`);
    throw e;
  }
}

async function openpgpDecrypt(input: Readable, outFile: string, key: openpgp.PrivateKey, what: string): Promise<void> {
  let message;
  try {
    message = await openpgp.readMessage({ binaryMessage: Readable.toWeb(input) as unknown as ReadableStream<Uint8Array> });
  } catch (e) {
    throw new IntegrityError(`${what}: not a valid OpenPGP message: ${(e as Error).message}`);
  }
  try {
    checkRecipient(message, key, what);
  } catch (e) {
    input.destroy();
    throw e;
  }
  let out;
  try {
    out = await openpgp.decrypt({
      message,
      decryptionKeys: key,
      format: 'binary',
      // stream instead of buffering the whole plaintext; the MDC at the end is still checked,
      // and the caller deletes the output file if it fails
      config: { allowUnauthenticatedStream: true },
    });
  } catch (e) {
    input.destroy();
    throw new IntegrityError(`${what}: cannot decrypt: ${(e as Error).message}`);
  }
  try {
    await pipeline(Readable.fromWeb(out.data as unknown as WebReadableStream<Uint8Array>), createWriteStream(outFile, { mode: 0o600 }));
  } catch (e) {
    input.destroy();
    throw new IntegrityError(`${what}: integrity check failed (corrupted or truncated): ${(e as Error).message}`);
  }
}
