// Both encryptors (native-bulk SEIPDv1 and openpgp.js's own stream) decrypt with the real
// GnuPG 2.2 and with openpgp.js streaming; corruption is caught, and the output file is removed.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptToFile, encryptStream, encryptStreamFast, loadPrivateKey, loadRecipient, type Recipient } from '../../runtime/archive/pgp.ts';
import { genKey, type TestKey } from './offsite-fixture.ts';

let work: string;
let a: TestKey;
let b: TestKey;
let rs: Recipient[];

describe('offsite: OpenPGP interop with GnuPG', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'pv-offsite-pgp-'));
    a = genKey(work, 'a');
    b = genKey(work, 'b', 'pw');
    rs = [await loadRecipient('a', a.publicFile, a.fingerprint), await loadRecipient('b', b.publicFile, b.fingerprint)];
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  for (const [name, enc] of [['native bulk', encryptStreamFast], ['openpgp.js stream', encryptStream]] as const) {
    it(`${name}: gpg and openpgp.js decrypt it, for every size around the packet boundaries`, async () => {
      for (const n of [0, 1, 511, 65536, 65537, 300_000]) {
        const data = randomBytes(n);
        const ct = await buffer(await enc(Readable.from([data]), rs));
        const f = join(work, 'ct.gpg');
        writeFileSync(f, ct);
        const out = execFileSync('gpg', ['--homedir', a.homedir, '--batch', '--decrypt', f], { stdio: ['ignore', 'pipe', 'pipe'] });
        expect(out.equals(data)).toBe(true);
        const pt = join(work, 'pt');
        await decryptToFile(Readable.from([ct]), pt, { kind: 'key', privateKey: await loadPrivateKey(readFileSync(b.secretFile, 'utf8'), async () => 'pw') }, 'x');
        expect(readFileSync(pt).equals(data)).toBe(true);
      }
    });
  }

  it('native bulk: sizes around the 1 MiB partial-length boundaries of both packets, input in odd pieces', async () => {
    const M = 1 << 20;
    // literal packet: 6 header bytes + data fill a 1 MiB piece at n = k·M − 6; the SEIPD body
    // (version, prefix, literal tag, pieces, MDC) crosses k·M around n = k·M − 52 − (k − 1)
    const sizes = [M - 54, M - 53, M - 52, M - 51, M - 7, M - 6, M - 5, M, M + 1, 2 * M - 54, 2 * M - 53, 2 * M - 52, 2 * M - 7, 2 * M - 6, 2 * M - 5, 3 * M + 12345];
    const key = await loadPrivateKey(readFileSync(b.secretFile, 'utf8'), async () => 'pw');
    const pieces = [1, 65536, 7, 300_001, 1 << 20, 3];
    for (const n of sizes) {
      const data = randomBytes(n);
      const parts: Buffer[] = [];
      for (let o = 0, i = 0; o < n; i++) {
        const len = Math.min(pieces[i % pieces.length], n - o);
        parts.push(data.subarray(o, o + len));
        o += len;
      }
      const out = await encryptStreamFast(Readable.from(parts), rs);
      const chunks: Buffer[] = [];
      await new Promise((res, rej) => out.on('data', (c: Buffer) => chunks.push(c)).once('end', res).once('error', rej));
      expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(M + 5); // a partial piece (1 + M) or the last piece (≤ 5-byte length + M)
      const ct = Buffer.concat(chunks);
      const f = join(work, 'ct.gpg');
      writeFileSync(f, ct);
      const pt = execFileSync('gpg', ['--homedir', a.homedir, '--batch', '--status-fd', '2', '--decrypt', f], { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
      expect(pt.equals(data), `gpg, size ${n}`).toBe(true);
      const p2 = join(work, 'pt');
      await decryptToFile(Readable.from([ct]), p2, { kind: 'key', privateKey: key }, 'x');
      expect(readFileSync(p2).equals(data), `openpgp.js, size ${n}`).toBe(true);
    }
  }, 120_000);

  it('a flipped byte fails the integrity check and leaves no output file', async () => {
    const ct = await buffer(await encryptStreamFast(Readable.from([randomBytes(200_000)]), rs));
    ct[ct.length - 100] ^= 1;
    const key = await loadPrivateKey(readFileSync(a.secretFile, 'utf8'));
    const pt = join(work, 'bad');
    await expect(decryptToFile(Readable.from([ct]), pt, { kind: 'key', privateKey: key }, 'obj')).rejects.toThrow(/obj: .*(integrity|decrypt|MDC|modif)/i);
    expect(existsSync(pt)).toBe(false);
    await expect(decryptToFile(Readable.from([ct]), pt, { kind: 'gpg', homedir: a.homedir }, 'obj')).rejects.toThrow(/obj/);
    expect(existsSync(pt)).toBe(false);
  });
});
