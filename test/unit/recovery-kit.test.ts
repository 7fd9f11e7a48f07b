// The recovery kit's renderer on plain data: every section there, secret values only inside the
// sections flagged SECRET, a passphrase-protected key said to be one, the QR lines complete and
// within size, the by-hand procedure taken from docs/restore-by-hand.md (not a copy of it).
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { groupFingerprint, kitContents, type KitInput, type KitKey } from '../../provision/recovery-kit/kit.ts';
import { packLines, paperkeyDataLines, publicLines, QR_MAX_BYTES, secretLines } from '../../provision/recovery-kit/qr.ts';
import { rebuildScript, renderKit } from '../../provision/recovery-kit/render.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');
const DOC = readFileSync(join(REPO, 'docs/restore-by-hand.md'), 'utf8');

/** Made for this run, shaped like an IAM access key (20 upper-case characters, a 40-character secret): no credential lives in the tree. */
const FAKE_CREDENTIALS = {
  accessKeyId: `AKIA${randomBytes(10).toString('hex').toUpperCase().slice(0, 16)}`,
  secretAccessKey: randomBytes(30).toString('base64'),
};

function paperkeyText(fpr: string, lines: number): string {
  const hex = (i: number) => createHash('sha256').update(`${fpr}${i}`).digest('hex').toUpperCase().slice(0, 44).replace(/(..)(?=.)/g, '$1 ');
  const body = Array.from({ length: lines }, (_, i) => `${String(i + 1).padStart(3)}: ${hex(i)} ${hex(i).replace(/ /g, '').slice(0, 6)}`);
  return [`# Secret portions of key ${fpr}`, '# Each base16 line ends with a CRC-24 of that line.', '', ...body, `${String(lines + 1).padStart(3)}: A1B2C3`, ''].join('\n');
}

function key(recipient: string, fingerprint: string, isProtected: boolean, lines = 7): KitKey {
  return {
    recipient,
    fingerprint,
    userIds: [`${recipient} <${recipient}@example.org>`],
    protected: isProtected,
    source: `/keys/${recipient}.secret.asc`,
    paperkeyText: paperkeyText(fingerprint, lines),
    publicKey: new Uint8Array(createHash('sha512').update(fingerprint).digest().toString('hex').repeat(4).split('').map((c) => c.charCodeAt(0))),
    publicKeyArmored: `-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxjMEZ${recipient}\n-----END PGP PUBLIC KEY BLOCK-----\n`,
  };
}

const OWNER = '343F798F0658E1B65F263A8A185218C6A4CFDE25';
const ESCROW = '8ECEE59D6526EF662E227461FF4E054D2D01C298';

function input(over: Partial<KitInput> = {}): KitInput {
  return {
    generatedAt: '2026-12-01T10:00:00Z',
    inventoryFile: '/home/o/inventory.json',
    pi: {
      name: 'pi01',
      rootUuid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427',
      recoveryPassphrase: 'abcde-fghjk-mnpqr-stuvw-xyz23-45678',
      dataDevice: '/dev/disk/by-id/usb-disk',
      dataMapper: 'pullvault-data',
      dataMountpoint: '/srv/pullvault',
      dataKeyPath: '/etc/cryptsetup-keys.d/pullvault-data.key',
    },
    servers: ['web1', 'db1'],
    offsite: { type: 's3', bucket: 'pv-backups', region: 'eu-central-1', prefix: 'pi01/', retentionDays: { full: 120, incremental: 60 } },
    fullEveryDays: 30,
    recipients: [
      { name: 'owner', fingerprint: OWNER },
      { name: 'escrow', fingerprint: ESCROW },
    ],
    credentials: { userName: 'pullvault-pi01-restore', ...FAKE_CREDENTIALS },
    keys: [key('owner', OWNER, false), key('escrow', ESCROW, true, 40)],
    procedureMarkdown: DOC,
    missing: [],
    ...over,
  };
}

/** The page with every top-level SECRET section taken out. */
const outsideSecrets = (html: string) => html.replace(/<section class="secret[^"]*" id="[^"]*">[\s\S]*?<\/section>/g, '');
const secretSections = (html: string) => [...html.matchAll(/<section class="secret[^"]*" id="([^"]*)">([\s\S]*?)<\/section>/g)].map((m) => ({ id: m[1], body: m[2] }));

function secretValues(k: KitInput): string[] {
  return [k.pi.recoveryPassphrase!, k.credentials!.secretAccessKey, ...k.keys.flatMap((x) => paperkeyDataLines(x.paperkeyText).map((l) => l.replace(/^\d+: /, '')))];
}

describe('recovery kit page', () => {
  it('has every section: store and layout, credentials, LUKS, recipients, each key (public and secret), the procedure', () => {
    const k = input();
    const html = renderKit(k);
    for (const id of ['store', 'credentials', 'luks', 'recipients', 'procedure', `key-${OWNER.slice(-16)}`, `secret-${OWNER.slice(-16)}`, `key-${ESCROW.slice(-16)}`, `secret-${ESCROW.slice(-16)}`]) expect(html).toContain(`id="${id}"`);
    for (const s of ['pv-backups', 'eu-central-1', 's3://pv-backups/pi01/full/&lt;server&gt;/', 's3://pv-backups/pi01/incr/', 's3://pv-backups/pi01/manifest/', 'web1', 'db1', 'every 30 days']) expect(html).toContain(s);
    for (const r of k.recipients) expect(html).toContain(groupFingerprint(r.fingerprint));
    expect(groupFingerprint(OWNER)).toBe('343F 798F 0658 E1B6 5F26  3A8A 1852 18C6 A4CF DE25');
    expect(html).toContain('1b4e28ba-2fa1-11d2-883f-0016d3cca427');
    expect(html).toContain('cryptsetup open --key-file /mnt/pv-root/etc/cryptsetup-keys.d/pullvault-data.key /dev/disk/by-id/usb-disk pv-data');
    // one QR figure per code, each labelled n/m
    const figs = [...html.matchAll(/<figcaption>([^<]*)<\/figcaption>/g)].map((m) => m[1]);
    for (const x of k.keys) {
      const id = x.fingerprint.slice(-16);
      const pub = packLines(publicLines(id, x.publicKey));
      const sec = packLines(secretLines(id, x.paperkeyText));
      expect(figs.filter((f) => f.startsWith(`${x.recipient} public key · QR `))).toEqual(pub.map((_, i) => `${x.recipient} public key · QR ${i + 1}/${pub.length}`));
      expect(figs.filter((f) => f.startsWith(`${x.recipient} secret key · QR `))).toEqual(sec.map((_, i) => `${x.recipient} secret key · QR ${i + 1}/${sec.length}`));
    }
    expect(figs.filter((f) => f.startsWith('escrow secret key')).length).toBeGreaterThan(1); // 40 lines: split
  });

  it('renders docs/restore-by-hand.md itself: its headings and its scripts, as the doc has them now', () => {
    const html = renderKit(input());
    const procedure = html.slice(html.indexOf('<section id="procedure"'));
    const headings = [...DOC.replace(/^```[\s\S]*?^```$/gm, '').matchAll(/^(#{1,4}) (.+)$/gm)];
    expect(headings.length).toBeGreaterThanOrEqual(8);
    for (const h of headings) expect(procedure).toContain(`<h${h[1].length + 1}>${h[2].replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/`([^`]+)`/g, '<code>$1</code>')}</h${h[1].length + 1}>`);
    const script = /```sh restore-by-hand\.sh\n([\s\S]*?)```/.exec(DOC)![1];
    const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
    const blocks = [...procedure.matchAll(/<pre><code class="language-sh">([\s\S]*?)<\/code><\/pre>/g)].map((m) => unescape(m[1]));
    expect(blocks).toContain(script);
    // a changed doc changes the page (rendered, not copied)
    const changed = renderKit(input({ procedureMarkdown: DOC.replace('## 4. Apply one archive', '## 4. Apply one archive, changed') }));
    expect(changed).toContain('<h3>4. Apply one archive, changed</h3>');
  });

  it('puts every secret value inside a section flagged SECRET, and nowhere else', () => {
    const k = input();
    const html = renderKit(k);
    const outside = outsideSecrets(html);
    const inside = secretSections(html);
    expect(inside.map((s) => s.id).sort()).toEqual(['credentials', 'luks', `secret-${ESCROW.slice(-16)}`, `secret-${OWNER.slice(-16)}`].sort());
    for (const s of inside) {
      expect(s.body).toMatch(/^<p class="flag">SECRET — /);
      expect(s.body).not.toContain('<section'); // the flag covers all of it
    }
    for (const v of secretValues(k)) {
      expect(outside, v).not.toContain(v);
      expect(inside.some((s) => s.body.includes(v)), v).toBe(true);
    }
    // what is not secret stays outside: fingerprints, the public key, the rebuild scripts
    expect(outside).toContain(k.keys[0].publicKeyArmored.split('\n')[2]);
    for (const x of k.keys) expect(outside).toContain(`data-script="rebuild-${x.fingerprint.slice(-16)}.sh"`);
  });

  it('says a passphrase-protected key needs its passphrase, and warns about one without', () => {
    const html = renderKit(input());
    const section = (fpr: string) => html.slice(html.indexOf(`id="key-${fpr.slice(-16)}"`), html.indexOf(`id="secret-${fpr.slice(-16)}"`));
    expect(section(ESCROW)).toContain('protected by its passphrase, which is not in this kit');
    expect(section(ESCROW)).not.toContain('no passphrase');
    expect(section(OWNER)).toContain('has <b>no passphrase</b>');
    expect(html).toContain(`escrow's secret key ${groupFingerprint(ESCROW)} (passphrase-protected)`);
  });

  it('without credentials or passphrase says so, and holds no empty secret section', () => {
    const k = input({ credentials: undefined, pi: { ...input().pi, recoveryPassphrase: undefined }, keys: [], missing: ["owner's secret key (pass it with --secret-key FILE)"] });
    const html = renderKit(k);
    expect(secretSections(html)).toEqual([]);
    expect(html).toContain('No read-only credentials are in this kit');
    expect(html).toContain('No recovery passphrase of <code>pi01</code>');
    expect(html).toContain("Not in this kit: owner's secret key");
  });

  it('escapes what it did not write (user ids, names)', () => {
    const k = input();
    k.keys[0].userIds = ['<script>alert(1)</script> <x@y>'];
    const html = renderKit(k);
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &lt;x@y&gt;');
  });

  it('the dry-run list names what goes in without a secret value', () => {
    const k = input();
    const lines = kitContents(k).join('\n');
    for (const v of secretValues(k)) expect(lines).not.toContain(v);
    expect(lines).toContain(`escrow's secret key ${ESCROW} (passphrase-protected)`);
    expect(lines).toContain(`owner's secret key ${OWNER} (NOT protected)`);
    expect(lines).toContain('read-only credentials of pullvault-pi01-restore');
  });
});

describe('recovery kit QR lines', () => {
  it('packs whole lines into codes within the size limit, in order, none lost', () => {
    const x = key('escrow', ESCROW, true, 120);
    const lines = secretLines(ESCROW.slice(-16), x.paperkeyText);
    expect(lines).toHaveLength(121);
    expect(lines[0]).toMatch(/^S FF4E054D2D01C298 1: [0-9A-F]{2} /);
    const codes = packLines(lines);
    expect(codes.length).toBeGreaterThan(3);
    for (const c of codes) expect(Buffer.byteLength(c.text)).toBeLessThanOrEqual(QR_MAX_BYTES);
    expect(codes.flatMap((c) => c.text.split('\n'))).toEqual(lines);
    expect(codes.map((c) => c.label)).toEqual(codes.map((_, i) => `${i + 1}/${codes.length}`));
    expect(() => packLines(['x'.repeat(QR_MAX_BYTES + 1)])).toThrow(/exceeds/);
  });

  it('public key lines number the bytes so that sort | base64 -d gives them back', () => {
    const bytes = new Uint8Array(Array.from({ length: 1000 }, (_, i) => (i * 7) % 256));
    const lines = publicLines('K', bytes);
    const back = Buffer.concat([...lines].reverse().sort().map((l) => Buffer.from(l.split(' ')[3], 'base64')));
    expect(back.equals(Buffer.from(bytes))).toBe(true);
  });

  it('the rebuild script checks the line count and the public key digest of its key', () => {
    const x = key('owner', OWNER, false, 9);
    const s = rebuildScript(x);
    expect(s).toContain(`K=${OWNER.slice(-16)}`);
    expect(s).toContain('= 10 ]'); // 9 data lines and the closing CRC line
    expect(s).toContain(`${createHash('sha256').update(x.publicKey).digest('hex')}  $K.pub.gpg`);
    expect(s).toContain('paperkey --pubring $K.pub.gpg --secrets $K.secrets.txt --output $K.secret.gpg');
  });
});
