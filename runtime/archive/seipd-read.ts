// Reading the OpenPGP messages the upload writes (pgp.ts: PKESKs, then a SEIPDv1 packet around a
// binary literal packet) with Node's native AES-CFB and SHA-1 for the bulk, streaming into a
// sink; the caller decrypts the session key (openpgp.js, from the PKESK bytes handed to it).
//
//   SEIPD (tag 18), version 1: CFB(key, IV 0) over prefix(16 random) ‖ prefix[14..16] ‖ P ‖ 0xd3 0x14 ‖ SHA-1
//   the SHA-1 (MDC) covers everything before it, 0xd3 0x14 included (RFC 4880 §5.13)
// The quick check (bytes 17–18 repeat 15–16) tells a wrong session key at once; the MDC at the end
// is verified before the caller may keep the output, and a mismatch, a truncated message or
// trailing data fails. Packets may use partial body lengths (pgp.ts writes 1 MiB pieces) or old
// format headers. SEIPDv2 (AEAD), compressed or signed contents are refused as unsupported: the
// upload never writes them, and openpgp.js (PULLVAULT_DECRYPTOR=openpgp) reads them.
import { createHash, type Hash } from 'node:crypto';
import { CfbDecipher } from './cfb-decrypt.ts';

export class SeipdError extends Error {
  constructor(
    message: string,
    readonly kind: 'format' | 'integrity' | 'unsupported',
  ) {
    super(message);
  }
}

const KEY_BYTES: Record<string, number> = { aes128: 16, aes192: 24, aes256: 32 };

/** A packet header: tag, and either a definite length or the first partial piece's length. */
interface Header {
  tag: number;
  len: number;
  partial: boolean;
  /** header bytes consumed */
  size: number;
}

/** Parses a packet header at `b[o]`; undefined when more bytes are needed. */
function header(b: Buffer, o: number): Header | undefined {
  if (o >= b.length) return undefined;
  const h = b[o];
  if ((h & 0x80) === 0) throw new SeipdError('not an OpenPGP packet header', 'format');
  if (h & 0x40) {
    const l = bodyLength(b, o + 1);
    return l && { tag: h & 0x3f, ...l, size: l.size + 1 };
  }
  const type = h & 3;
  const n = [1, 2, 4, 0][type];
  if (n === 0) throw new SeipdError('indeterminate-length packets are not supported', 'unsupported');
  if (o + 1 + n > b.length) return undefined;
  return { tag: (h >> 2) & 0x0f, len: b.readUIntBE(o + 1, n), partial: false, size: 1 + n };
}

/** A new-format body length at `b[o]` (also the length of each following partial piece). */
function bodyLength(b: Buffer, o: number): { len: number; partial: boolean; size: number } | undefined {
  if (o >= b.length) return undefined;
  const c = b[o];
  if (c < 192) return { len: c, partial: false, size: 1 };
  if (c < 224) return o + 1 < b.length ? { len: ((c - 192) << 8) + b[o + 1] + 192, partial: false, size: 2 } : undefined;
  if (c < 255) return { len: 1 << (c & 0x1f), partial: true, size: 1 };
  return o + 4 < b.length ? { len: b.readUInt32BE(o + 1), partial: false, size: 5 } : undefined;
}

/**
 * Takes a packet body framed with (maybe partial) lengths, chunk by chunk, and emits the body
 * bytes; `done` once the last piece ended. The first header was parsed by the caller.
 */
class Deframer {
  private left: number;
  private partial: boolean;
  private pending: Buffer = Buffer.alloc(0);
  done = false;

  constructor(first: Header) {
    this.left = first.len;
    this.partial = first.partial;
    this.done = !first.partial && first.len === 0;
  }

  /** emits the body bytes of `chunk`; returns what follows the packet's end */
  push(chunk: Buffer, emit: (b: Buffer) => void): Buffer {
    let b = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    let o = 0;
    while (!this.done && o < b.length) {
      if (this.left > 0) {
        const n = Math.min(this.left, b.length - o);
        emit(b.subarray(o, o + n));
        o += n;
        this.left -= n;
        if (this.left === 0 && !this.partial) this.done = true;
        continue;
      }
      // the next piece's length
      const l = bodyLength(b, o);
      if (!l) {
        this.pending = Buffer.from(b.subarray(o));
        return Buffer.alloc(0);
      }
      o += l.size;
      this.left = l.len;
      this.partial = l.partial;
      if (this.left === 0 && !this.partial) this.done = true;
    }
    b = b.subarray(o);
    return b;
  }
}

type Phase = 'packets' | 'seipd' | 'after';

/**
 * The reader. `write` ciphertext chunks in order (awaiting each: the session key is asked for
 * once the PKESKs are read), then `end()`; plaintext goes to `sink` as it is verified to be
 * inside the literal packet (the MDC is checked at `end`).
 */
export class SeipdReader {
  private phase: Phase = 'packets';
  private head: Buffer = Buffer.alloc(0);
  private pkesks: Buffer[] = [];
  private outer?: Deframer;
  private decipher?: CfbDecipher;
  private mdc?: Hash;
  /** decrypted bytes not yet judged: the last 22 (MDC packet) are always held back */
  private plain: Buffer = Buffer.alloc(0);
  private prefixSeen = false;
  private inner?: Deframer;
  private innerHead: Buffer = Buffer.alloc(0);
  private literalHeaderLeft = -1;
  /** the SEIPD version byte, once read */
  private version = -1;

  constructor(
    private readonly sessionKey: (pkesks: Buffer) => Promise<{ algorithm: string; data: Uint8Array }>,
    private readonly sink: (b: Buffer) => void,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    if (this.phase === 'after') {
      if (chunk.length) throw new SeipdError('data after the encrypted packet', 'format');
      return;
    }
    if (this.phase === 'packets') {
      this.head = Buffer.concat([this.head, chunk]);
      for (;;) {
        const h = header(this.head, 0);
        if (!h) return;
        if (h.tag === 1) {
          if (h.partial) throw new SeipdError('a session key packet with a partial length', 'format');
          if (this.head.length < h.size + h.len) return;
          this.pkesks.push(this.head.subarray(0, h.size + h.len));
          this.head = this.head.subarray(h.size + h.len);
          continue;
        }
        if (h.tag === 20) throw new SeipdError('an AEAD (SEIPDv2/OCB) message', 'unsupported');
        if (h.tag !== 18) throw new SeipdError(`unexpected packet (tag ${h.tag}) where the encrypted data should be`, h.tag === 3 ? 'unsupported' : 'format');
        if (this.pkesks.length === 0) throw new SeipdError('no public-key session key packet', 'format');
        const key = await this.sessionKey(Buffer.concat(this.pkesks));
        if (KEY_BYTES[key.algorithm] === undefined || key.data.length !== KEY_BYTES[key.algorithm]) throw new SeipdError(`session key algorithm ${key.algorithm} is not supported`, 'unsupported');
        this.decipher = new CfbDecipher(key.data);
        this.mdc = createHash('sha1');
        this.outer = new Deframer(h);
        this.phase = 'seipd';
        const rest = this.head.subarray(h.size);
        this.head = Buffer.alloc(0);
        return this.body(rest);
      }
    }
    return this.body(chunk);
  }

  private body(chunk: Buffer): void {
    const tail = this.outer!.push(chunk, (b) => {
      let x = b;
      if (this.version < 0 && x.length) {
        this.version = x[0];
        if (this.version === 2) throw new SeipdError('an AEAD (SEIPDv2) message', 'unsupported');
        if (this.version !== 1) throw new SeipdError(`encrypted data version ${this.version}`, 'format');
        x = x.subarray(1);
      }
      if (x.length) this.decrypted(this.decipher!.update(x));
    });
    if (this.outer!.done) {
      this.phase = 'after';
      if (tail.length) throw new SeipdError('data after the encrypted packet', 'format');
    }
  }

  private decrypted(b: Buffer): void {
    if (this.prefixSeen && b.length >= 22 && this.plain.length === 22) {
      // the held-back 22 bytes are followed by at least 22 more: they are data, pass them on
      const held = this.plain;
      this.mdc!.update(held);
      this.literal(held);
      this.plain = this.release(b);
      return;
    }
    this.plain = this.plain.length ? Buffer.concat([this.plain, b]) : b;
    if (!this.prefixSeen) {
      if (this.plain.length < 18) return;
      const p = this.plain;
      if (p[14] !== p[16] || p[15] !== p[17]) throw new SeipdError('wrong session key (the quick check failed)', 'integrity');
      this.mdc!.update(p.subarray(0, 18));
      this.plain = p.subarray(18);
      this.prefixSeen = true;
    }
    if (this.plain.length <= 22) return;
    this.plain = this.release(this.plain);
  }

  /** judges all but the last 22 bytes of `b` (the held-back ones first): no copy of the bulk */
  private release(b: Buffer): Buffer {
    const ready = b.subarray(0, b.length - 22);
    this.mdc!.update(ready);
    this.literal(ready);
    return Buffer.from(b.subarray(b.length - 22));
  }

  /** the inner packet: one literal packet; its data goes to the sink */
  private literal(b: Buffer): void {
    if (!this.inner) {
      this.innerHead = Buffer.concat([this.innerHead, b]);
      const h = header(this.innerHead, 0);
      if (!h) return;
      if (h.tag === 8) throw new SeipdError('compressed contents', 'unsupported');
      if (h.tag !== 11) throw new SeipdError(`encrypted contents are packet tag ${h.tag}, not literal data`, 'unsupported');
      this.inner = new Deframer(h);
      b = this.innerHead.subarray(h.size);
      this.innerHead = Buffer.alloc(0);
    }
    const rest = this.inner.push(b, (x) => this.literalBody(x));
    if (rest.length) throw new SeipdError('data after the literal packet inside the encrypted packet', 'format');
  }

  /** the literal body: format, name length, name, 4-byte date, then the data */
  private literalBody(x: Buffer): void {
    if (this.literalHeaderLeft !== 0) {
      this.innerHead = Buffer.concat([this.innerHead, x]);
      if (this.literalHeaderLeft < 0) {
        if (this.innerHead.length < 2) return;
        this.literalHeaderLeft = 2 + this.innerHead[1] + 4;
      }
      if (this.innerHead.length < this.literalHeaderLeft) return;
      const data = this.innerHead.subarray(this.literalHeaderLeft);
      this.innerHead = Buffer.alloc(0);
      this.literalHeaderLeft = 0;
      if (data.length) this.sink(data);
      return;
    }
    this.sink(x);
  }

  /** After the last chunk: the MDC must match, nothing may be missing. */
  end(): void {
    if (this.phase === 'packets') throw new SeipdError('no encrypted data (truncated or not an OpenPGP message)', 'format');
    if (this.phase !== 'after') throw new SeipdError('the encrypted packet is truncated', 'integrity');
    // the last partial cipher block (CfbDecipher keeps it until now)
    const last = this.decipher!.final();
    if (last.length) this.decrypted(last);
    const rest = this.plain;
    if (rest.length !== 22 || rest[0] !== 0xd3 || rest[1] !== 0x14) throw new SeipdError('no modification detection code at the end (truncated or corrupted)', 'integrity');
    this.mdc!.update(rest.subarray(0, 2));
    if (!this.mdc!.digest().equals(rest.subarray(2))) throw new SeipdError('the modification detection code does not match (corrupted)', 'integrity');
    if (!this.inner?.done || this.literalHeaderLeft !== 0) throw new SeipdError('the literal data packet is truncated', 'integrity');
  }
}
