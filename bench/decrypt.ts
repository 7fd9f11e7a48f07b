// Restore's decryption alone: one archive-sized OpenPGP message (as the upload writes it) decrypted
// by the native reader (runtime/archive/seipd-read.ts), by openpgp.js's own stream
// (PULLVAULT_DECRYPTOR=openpgp) and by gpg, into a file, in the same run.
//
//   npx tsx bench/decrypt.ts [--size-mb 512] [--work /var/tmp/pv-decrypt]
import { createReadStream, createWriteStream, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createCipheriv } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decryptToFile, encryptStreamFast, loadPrivateKey, loadRecipient } from '../runtime/archive/pgp.ts';
import { genKey } from '../test/integration/offsite-fixture.ts';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const size = Number(arg('size-mb', '512')) * 1048576;
const work = arg('work', '/var/tmp/pv-decrypt');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const k = genKey(work, 'owner');
const ct = join(work, 'archive.gpg');
const keystream = createCipheriv('aes-128-ctr', Buffer.alloc(16, 1), Buffer.alloc(16, 0));
const zero = Buffer.alloc(1 << 20);
async function* data() {
  for (let left = size; left > 0; left -= zero.length) yield keystream.update(zero.subarray(0, Math.min(left, zero.length)));
}
await pipeline(await encryptStreamFast(Readable.from(data()), [await loadRecipient('owner', k.publicFile, k.fingerprint)]), createWriteStream(ct));
const key = await loadPrivateKey(readFileSync(k.secretFile, 'utf8'));
const out = join(work, 'plain');
const times: Record<string, number> = {};
for (const mode of ['native', 'openpgp', 'gpg'] as const) {
  process.env.PULLVAULT_DECRYPTOR = mode === 'openpgp' ? 'openpgp' : '';
  const t = Date.now();
  await decryptToFile(createReadStream(ct, { highWaterMark: 1 << 20 }), out, mode === 'gpg' ? { kind: 'gpg', homedir: k.homedir } : { kind: 'key', privateKey: key }, 'bench');
  times[mode] = (Date.now() - t) / 1000;
  if (statSync(out).size !== size) throw new Error(`${mode}: wrong size`);
}
console.log(`decrypt ${(size / 1048576).toFixed(0)} MiB: ${Object.entries(times).map(([m, s]) => `${m} ${s.toFixed(2)} s`).join(', ')}; native / openpgp.js ${(times.native / times.openpgp).toFixed(2)}, native / gpg ${(times.native / times.gpg).toFixed(2)}`);
rmSync(work, { recursive: true, force: true });
