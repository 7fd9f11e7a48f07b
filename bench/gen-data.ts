// Reproducible benchmark data: ~50k small files in a nested tree plus a few large files.
// Content is AES-128-CTR keystream from a fixed seed (incompressible, identical on every run).
//   npx tsx bench/gen-data.ts DIR [--size-mb 2048] [--files 50000] [--seed pullvault]
//   npx tsx bench/gen-data.ts DIR --mutate 1     # change 1% of the small files (deterministic)
import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, openSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'size-mb': { type: 'string', default: '2048' }, files: { type: 'string', default: '50000' }, seed: { type: 'string', default: 'pullvault' }, mutate: { type: 'string' } },
});
const dir = positionals[0];
if (!dir) {
  process.stderr.write('usage: gen-data.ts DIR [--size-mb N] [--files N] [--seed S] [--mutate PERCENT]\n');
  process.exit(2);
}
const totalBytes = Number(o['size-mb']) * 1048576;
const nFiles = Number(o.files);

function stream(label: string) {
  const key = createHash('sha256').update(`${o.seed}/${label}`).digest();
  const c = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  return (n: number) => c.update(Buffer.alloc(n));
}

/** small-file sizes: a deterministic spread (100 B … 16 KiB), mean ≈ 2 KiB */
function sizeOf(i: number): number {
  const r = stream(`size/${i}`)(4).readUInt32LE(0) / 2 ** 32;
  return Math.floor(100 + 16284 * r ** 4);
}
const pathOf = (i: number) => `${dir}/tree/d${i % 50}/e${Math.floor(i / 50) % 20}/f${i}.dat`;

if (o.mutate !== undefined) {
  const every = Math.max(1, Math.round(100 / Number(o.mutate)));
  let n = 0;
  for (let i = 0; i < nFiles; i += every) {
    writeFileSync(pathOf(i), stream(`mut/${i}/${Date.now()}`)(sizeOf(i)));
    n++;
  }
  process.stdout.write(`mutated ${n} files\n`);
  process.exit(0);
}

let small = 0;
for (let i = 0; i < nFiles; i++) {
  const p = pathOf(i);
  if (i % 1000 === 0 || i < 1000) mkdirSync(p.slice(0, p.lastIndexOf('/')), { recursive: true });
  const buf = stream(`f/${i}`)(sizeOf(i));
  writeFileSync(p, buf);
  small += buf.length;
}
const big = Math.max(0, totalBytes - small);
const nBig = 4;
mkdirSync(`${dir}/large`, { recursive: true });
for (let b = 0; b < nBig; b++) {
  const fd = openSync(`${dir}/large/big${b}.bin`, 'w');
  const next = stream(`big/${b}`);
  let left = Math.floor(big / nBig);
  while (left > 0) {
    const n = Math.min(left, 8 << 20);
    writeSync(fd, next(n));
    left -= n;
  }
  closeSync(fd);
}
process.stdout.write(`generated ${nFiles} small files (${(small / 1048576).toFixed(0)} MiB) + ${nBig} large (${(big / 1048576).toFixed(0)} MiB) in ${dir}\n`);
