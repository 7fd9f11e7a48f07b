// The native SEIPDv1 reader (runtime/archive/seipd-read.ts) behind decryptToFile with a private
// key: it reads what both encryptors write, fed in any piece sizes, as openpgp.js does, and fails
// (output file removed) on a flipped byte anywhere, a truncation, trailing data, or contents the
// upload never writes (gpg's compressed messages), naming the way to read those.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptToFile, encryptStream, encryptStreamFast, loadPrivateKey, loadRecipient, type Recipient } from '../../runtime/archive/pgp.ts';
import type * as openpgp from 'openpgp';
import { genKey, type TestKey } from './offsite-fixture.ts';

let work: string;
let a: TestKey;
let rs: Recipient[];
let key: openpgp.PrivateKey;

/** `ct` in pieces of the given sizes, cycling */
const pieces = (ct: Buffer, sizes: number[]) => {
  const out: Buffer[] = [];
  for (let o = 0, i = 0; o < ct.length; i++) {
    const n = Math.min(sizes[i % sizes.length], ct.length - o);
    out.push(ct.subarray(o, o + n));
    o += n;
  }
  return out;
};

async function decrypt(ct: Buffer | Buffer[], env?: string): Promise<Buffer> {
  const pt = join(work, 'pt');
  const before = process.env.PULLVAULT_DECRYPTOR;
  if (env) process.env.PULLVAULT_DECRYPTOR = env;
  try {
    await decryptToFile(Readable.from(Array.isArray(ct) ? ct : [ct]), pt, { kind: 'key', privateKey: key }, 'obj');
  } finally {
    if (env) process.env.PULLVAULT_DECRYPTOR = before;
  }
  return readFileSync(pt);
}

describe('offsite: native SEIPDv1 decryption', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'pv-seipd-'));
    a = genKey(work, 'a');
    rs = [await loadRecipient('a', a.publicFile, a.fingerprint)];
    key = await loadPrivateKey(readFileSync(a.secretFile, 'utf8'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  for (const [name, enc] of [['native bulk', encryptStreamFast], ['openpgp.js stream', encryptStream]] as const) {
    it(`${name}: decrypts to the same bytes as openpgp.js, whatever the piece sizes`, async () => {
      for (const n of [0, 1, 21, 22, 23, 65536, (1 << 20) - 6, (1 << 20) + 1, 2_500_000]) {
        const data = randomBytes(n);
        const ct = await buffer(await enc(Readable.from([data]), rs));
        expect((await decrypt(ct)).equals(data), `size ${n}`).toBe(true);
        expect((await decrypt(pieces(ct, [1, 2, 3, 191, 8384, 65537]))).equals(data), `size ${n} in pieces`).toBe(true);
        expect((await decrypt(ct, 'openpgp')).equals(data), `openpgp.js, size ${n}`).toBe(true);
      }
    }, 60_000);
  }

  it('fails on a flipped byte anywhere, truncation and trailing data, and leaves no output file', async () => {
    const data = randomBytes(300_000);
    const ct = await buffer(await encryptStreamFast(Readable.from([data]), rs));
    expect(ct[0]).toBe(0xc1); // one PKESK with a one-byte length: the SEIPD packet follows it
    const seipd = 2 + ct[1];
    expect(ct[seipd]).toBe(0xc0 | 18);
    // in the random prefix (the quick check), in the data, in the MDC, the last byte
    for (const at of [seipd + 5, Math.floor(ct.length / 2), ct.length - 30, ct.length - 1]) {
      const bad = Buffer.from(ct);
      bad[at] ^= 0x40;
      await expect(decrypt(bad), `byte ${at}`).rejects.toThrow(/obj: corrupted or not a valid OpenPGP message: .*(modification detection code|quick check|truncated)/);
      expect(existsSync(join(work, 'pt'))).toBe(false);
    }
    await expect(decrypt(ct.subarray(0, ct.length - 10))).rejects.toThrow(/obj: corrupted .*truncated/);
    await expect(decrypt(ct.subarray(0, 200))).rejects.toThrow(/obj: corrupted .*truncated/);
    await expect(decrypt(Buffer.concat([ct, Buffer.from([1, 2, 3])]))).rejects.toThrow(/data after the encrypted packet/);
    expect(existsSync(join(work, 'pt'))).toBe(false);
  });

  it('a message gpg compressed is refused by name, and openpgp.js reads it', async () => {
    const f = join(work, 'plain');
    writeFileSync(f, Buffer.from('hello '.repeat(1000)));
    const ct = execFileSync('gpg', ['--homedir', a.homedir, '--batch', '--trust-model', 'always', '--compress-algo', 'zlib', '-r', a.fingerprint, '--encrypt', '-o', '-', f]);
    await expect(decrypt(ct)).rejects.toThrow(/not a message pullvault writes \(.+\); PULLVAULT_DECRYPTOR=openpgp reads it/);
    expect((await decrypt(ct, 'openpgp')).toString()).toBe('hello '.repeat(1000));
  });
});
