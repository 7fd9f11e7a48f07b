// The fast CFB decipher gives what Node's own aes-*-cfb decipher gives, for any chunking.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CfbDecipher } from '../../runtime/archive/cfb-decrypt.ts';

describe('CfbDecipher', () => {
  for (const bits of [128, 192, 256]) {
    it(`AES-${bits}: same plaintext as OpenSSL's CFB128, whatever the pieces`, () => {
      const key = randomBytes(bits / 8);
      const iv = randomBytes(16);
      for (const n of [0, 1, 15, 16, 17, 31, 32, 33, 4096, 100_003, (1 << 20) + 5]) {
        const pt = randomBytes(n);
        const e = createCipheriv(`aes-${bits}-cfb`, key, iv);
        const ct = Buffer.concat([e.update(pt), e.final()]);
        const want = (() => {
          const d = createDecipheriv(`aes-${bits}-cfb`, key, iv);
          return Buffer.concat([d.update(ct), d.final()]);
        })();
        expect(want.equals(pt)).toBe(true);
        for (const sizes of [[ct.length || 1], [7, 16, 33, 65536], [17, 3], ...(n <= 4096 ? [[1]] : [])]) {
          const d = new CfbDecipher(key, iv);
          const out: Buffer[] = [];
          // a byte offset that is not 4-aligned too: subarrays of a bigger buffer
          const shifted = Buffer.concat([Buffer.alloc(3), ct]).subarray(3);
          for (let o = 0, i = 0; o < ct.length; i++) {
            const k = Math.min(sizes[i % sizes.length], ct.length - o);
            out.push(d.update(shifted.subarray(o, o + k)));
            o += k;
          }
          out.push(d.final());
          expect(Buffer.concat(out).equals(pt), `size ${n}, pieces ${sizes}`).toBe(true);
        }
      }
    });
  }
});
