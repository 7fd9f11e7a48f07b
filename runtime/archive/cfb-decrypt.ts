// AES-CFB128 decryption (no OpenPGP resync, as SEIPD uses it), fast: each plaintext block is
// AES(previous ciphertext block) XOR this ciphertext block, so the AES calls of a whole chunk are
// independent and go to OpenSSL as one ECB call (pipelined AES-NI), where Node's 'aes-*-cfb'
// decipher runs them one after the other (bench/README.md: restore). Same output as that decipher.
import { createCipheriv, type Cipher } from 'node:crypto';

export class CfbDecipher {
  private readonly ecb: Cipher;
  private prev: Buffer = Buffer.alloc(16, 0);
  private carry: Buffer = Buffer.alloc(0);

  constructor(key: Buffer | Uint8Array, iv: Buffer = Buffer.alloc(16, 0)) {
    if (![16, 24, 32].includes(key.length)) throw new Error(`AES key of ${key.length} bytes`);
    this.ecb = createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
    this.ecb.setAutoPadding(false);
    this.prev = Buffer.from(iv);
  }

  /** plaintext of the whole blocks seen so far (a partial block waits for more, or for final) */
  update(chunk: Buffer): Buffer {
    const data = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const n = data.length - (data.length % 16);
    this.carry = Buffer.from(data.subarray(n));
    if (n === 0) return Buffer.alloc(0);
    // the ECB input: the previous ciphertext block, then this chunk's blocks but the last
    const input = Buffer.allocUnsafeSlow(n);
    this.prev.copy(input, 0);
    data.copy(input, 16, 0, n - 16);
    const out = this.ecb.update(input);
    xor(out, input, 16, n - 16);
    for (let i = n - 16; i < n; i++) out[i] ^= data[i];
    this.prev = Buffer.from(data.subarray(n - 16, n));
    return out;
  }

  /** the last, partial block */
  final(): Buffer {
    if (this.carry.length === 0) return Buffer.alloc(0);
    const ks = this.ecb.update(this.prev);
    const out = Buffer.from(this.carry);
    for (let i = 0; i < out.length; i++) out[i] ^= ks[i];
    this.carry = Buffer.alloc(0);
    return out;
  }
}

/** out[0..len) ^= src[from..from+len), 4 bytes at a time where both are aligned */
function xor(out: Buffer, src: Buffer, from: number, len: number): void {
  let i = 0;
  if ((out.byteOffset & 3) === 0 && ((src.byteOffset + from) & 3) === 0) {
    const words = len >>> 2;
    const a = new Int32Array(out.buffer, out.byteOffset, words);
    const b = new Int32Array(src.buffer, src.byteOffset + from, words);
    for (let w = 0; w < words; w++) a[w] ^= b[w];
    i = words << 2;
  }
  for (; i < len; i++) out[i] ^= src[from + i];
}
