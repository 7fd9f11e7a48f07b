// What the kit's QR codes hold and how they are drawn (pure). Each code holds whole lines, every line
// tagged with its kind and key id, so the codes of a kit can be scanned in any order, several times,
// all pages at once, and sorted back with grep/sort/cut (the reassembly script in render.ts):
//
//   P <KEYID16> <NNN> <base64>        the public key (binary OpenPGP), 48 bytes a line, NNN from 001
//   S <KEYID16> <N>: <hex …> <CRC24>  one line of paperkey's text form (its own line number and CRC)
import QRCode from 'qrcode';

/** Bytes per code: version ≤ 18 at level M (89 modules), about 0.7 mm a module at 7 cm: reads at 150 dpi. */
export const QR_MAX_BYTES = 480;

export interface QrPayload {
  /** "n/m" within its set */
  label: string;
  text: string;
}

/** paperkey's numbered data lines ("  1: 00 04 … 520D75"), without the comment header. */
export function paperkeyDataLines(paperkeyText: string): string[] {
  return paperkeyText
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^\d+: [0-9A-F ]+$/.test(l));
}

export function secretLines(keyId: string, paperkeyText: string): string[] {
  return paperkeyDataLines(paperkeyText).map((l) => `S ${keyId} ${l}`);
}

export function publicLines(keyId: string, publicKey: Uint8Array): string[] {
  const out: string[] = [];
  for (let i = 0, n = 1; i < publicKey.length; i += 48, n++) out.push(`P ${keyId} ${String(n).padStart(3, '0')} ${Buffer.from(publicKey.subarray(i, i + 48)).toString('base64')}`);
  return out;
}

/** Whole lines into codes of at most maxBytes each, labelled n/m. */
export function packLines(lines: string[], maxBytes = QR_MAX_BYTES): QrPayload[] {
  const groups: string[][] = [];
  let cur: string[] = [];
  let size = 0;
  for (const l of lines) {
    const len = Buffer.byteLength(l);
    if (len > maxBytes) throw new Error(`a QR line of ${len} bytes exceeds ${maxBytes}`);
    if (cur.length && size + 1 + len > maxBytes) {
      groups.push(cur);
      cur = [];
      size = 0;
    }
    size += (cur.length ? 1 : 0) + len;
    cur.push(l);
  }
  if (cur.length) groups.push(cur);
  return groups.map((g, i) => ({ label: `${i + 1}/${groups.length}`, text: g.join('\n') }));
}

/** An SVG of the code (dark modules as one path, 4-module quiet zone), sized by the page's CSS. */
export function qrSvg(text: string): string {
  const { modules } = QRCode.create(text, { errorCorrectionLevel: 'M' });
  const n = modules.size;
  const q = 4;
  let d = '';
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (!modules.get(r, c)) continue;
      let w = 1;
      while (c + w < n && modules.get(r, c + w)) w++;
      d += `M${c + q} ${r + q}h${w}v1h-${w}z`;
      c += w - 1;
    }
  }
  const s = n + 2 * q;
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${s} ${s}" shape-rendering="crispEdges"><rect width="${s}" height="${s}" fill="#fff"/><path d="${d}" fill="#000"/></svg>`;
}
