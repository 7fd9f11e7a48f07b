// DirTarget's write path on its own: batched writev, background fdatasync every 32 MiB, the
// sha256 of the stored bytes, write-once (link) and no leftover temp file on failure.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { DirTarget } from '../../runtime/offsite/target-dir.ts';
import { ObjectExistsError } from '../../runtime/offsite/target.ts';

const work = mkdtempSync(join(tmpdir(), 'pv-offsite-target-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** `total` random bytes in pieces of varying size (1 B … 3 MiB). */
function pieces(total: number): { data: Buffer; parts: Buffer[] } {
  const data = randomBytes(total);
  const sizes = [1, 4096, 65536, 3 << 20, 777, 1 << 20];
  const parts: Buffer[] = [];
  for (let o = 0, i = 0; o < total; i++) {
    const n = Math.min(sizes[i % sizes.length], total - o);
    parts.push(data.subarray(o, o + n));
    o += n;
  }
  return { data, parts };
}

describe('offsite: dir target', () => {
  it('stores 70 MiB in odd pieces byte for byte, with the sha256 and byte count of what it stored', async () => {
    const t = new DirTarget(join(work, 'store'));
    const { data, parts } = pieces(70 << 20);
    let progress = 0;
    const r = await t.put('a/b/obj', Readable.from(parts), (n) => (progress = n));
    expect(r.bytes).toBe(data.length);
    expect(progress).toBe(data.length);
    expect(r.sha256).toBe(createHash('sha256').update(data).digest('hex'));
    expect(readFileSync(join(work, 'store', 'a/b/obj')).equals(data)).toBe(true);
    await expect(t.put('a/b/obj', Readable.from([Buffer.from('x')]))).rejects.toBeInstanceOf(ObjectExistsError);
    expect(readdirSync(join(work, 'store', 'a/b'))).toEqual(['obj']);
  });

  it('a stream that fails midway leaves no object and no temp file', async () => {
    const t = new DirTarget(join(work, 'store2'));
    const { parts } = pieces(40 << 20);
    async function* failing() {
      yield* parts.slice(0, parts.length - 3);
      throw new Error('source broke');
    }
    await expect(t.put('k', Readable.from(failing()))).rejects.toThrow(/source broke/);
    expect(readdirSync(join(work, 'store2'))).toEqual([]);
  });
});
