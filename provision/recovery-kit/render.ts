// The recovery kit as one printable HTML page (pure: KitInput → HTML). Every secret value sits in a
// top-level <section class="secret"> that says so in print; nothing else on the page is secret. The
// by-hand procedure is docs/restore-by-hand.md itself, rendered with marked, so the page and the doc
// cannot drift apart.
import { createHash } from 'node:crypto';
import { offsiteKeyRoot } from '../../contract/offsite-kinds.ts';
import { marked } from 'marked';
import { shellQuote } from '../exec/quote.ts';
import { chainPrefixes } from '../../contract/s3-layout.ts';
import { groupFingerprint, keyIdOf, type KitInput, type KitKey } from './kit.ts';
import { packLines, paperkeyDataLines, publicLines, qrSvg, secretLines, type QrPayload } from './qr.ts';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const pre = (text: string, attrs = ''): string => `<pre${attrs}>${esc(text)}</pre>`;

function secretSection(id: string, title: string, body: string, cls = ''): string {
  return `<section class="secret${cls}" id="${esc(id)}"><p class="flag">SECRET — ${esc(title)}</p>${body}</section>`;
}

function qrGrid(what: string, codes: QrPayload[]): string {
  return `<div class="qrs">${codes.map((c) => `<figure class="qr">${qrSvg(c.text)}<figcaption>${esc(what)} · QR ${esc(c.label)}</figcaption></figure>`).join('')}</div>`;
}

/** The script that turns scanned kit pages back into this key's secret key file (also run by the tests). */
export function rebuildScript(key: KitKey): string {
  const k = keyIdOf(key.fingerprint);
  const n = paperkeyDataLines(key.paperkeyText).length;
  const sha = createHash('sha256').update(key.publicKey).digest('hex');
  return [
    '#!/bin/bash',
    `# rebuild-${k}.sh PAGE.png… — ${key.recipient}'s secret key from scans of the kit's pages`,
    'set -euo pipefail',
    'umask 077',
    `K=${k}`,
    '# zbarimg exits 4 when a page has no QR code at all: the other pages still count',
    'zbarimg --raw -q --nodbus -Sdisable -Sqrcode.enable "$@" >scanned.txt || [ $? = 4 ]',
    'grep "^P $K " scanned.txt | sort -k3,3n -u | cut -d" " -f4 | base64 -d >$K.pub.gpg',
    `echo "${sha}  $K.pub.gpg" | sha256sum -c --quiet`,
    'grep "^S $K " scanned.txt | cut -d" " -f3- | sort -n -u >$K.secrets.txt',
    `[ "$(wc -l <$K.secrets.txt)" = ${n} ] || { echo "$K: $(wc -l <$K.secrets.txt) of ${n} secret lines scanned: a QR code is missing" >&2; exit 1; }`,
    'paperkey --pubring $K.pub.gpg --secrets $K.secrets.txt --output $K.secret.gpg',
    'rm scanned.txt $K.secrets.txt',
    'echo "rebuilt $K.secret.gpg" >&2',
    '',
  ].join('\n');
}

function storeSection(k: KitInput): string {
  const o = k.offsite;
  const rows: [string, string][] =
    o.type === 's3'
      ? [
          ['bucket', o.bucket],
          ['region', o.region],
          ['prefix', o.prefix],
          ...(o.endpoint ? ([['endpoint', o.endpoint]] as [string, string][]) : []),
          ['storage class', o.storageClass ?? 'STANDARD'],
          ['retention (days after upload)', `full ${o.retentionDays.full}, incremental ${o.retentionDays.incremental}, manifest ${o.retentionDays.manifest ?? o.retentionDays.full}`],
          ['read-only user', k.credentials?.userName ?? o.restoreUser ?? '(none in this kit)'],
        ]
      : [['folder', o.path]];
  const { root: where, prefix } = offsiteKeyRoot(o);
  const p = chainPrefixes(prefix);
  const layout: [string, string][] = [
    [`${where}${p.full}<server>/<chain>/<snapshot>.<tag>.tar.zst.gpg`, 'full archives (each starts a chain)'],
    [`${where}${p.incr}<server>/<chain>/<snapshot>.from-<base>.<tag>.tar.zst.gpg`, 'incrementals on that full'],
    [`${where}${p.manifest}<server>/<chain>/<same name>.jsonl.zst.gpg`, 'one manifest object per archive'],
  ];
  return `<section id="store"><h2>1. Where the backups are</h2>
<table>${rows.map(([a, b]) => `<tr><th>${esc(a)}</th><td><code>${esc(b)}</code></td></tr>`).join('')}
<tr><th>servers</th><td>${k.servers.map((s) => `<code>${esc(s)}</code>`).join(', ')}</td></tr>
<tr><th>chains</th><td>a full archive every ${k.fullEveryDays} days, incrementals on it in between; an incremental names its base (<code>from-&lt;base&gt;</code>)</td></tr></table>
<table class="layout">${layout.map(([a, b]) => `<tr><td><code>${esc(a)}</code></td><td>${esc(b)}</td></tr>`).join('')}</table>
<p>Download it all (§2 of the procedure below), then restore with §5. Choose archives by their manifest objects, never by listing order.</p></section>`;
}

function credentialsSection(k: KitInput): string {
  const c = k.credentials;
  if (!c) return `<section id="credentials"><h2>2. Read-only access</h2><p>No read-only credentials are in this kit: sign in to the AWS account (or create a restore user with <code>make provision-aws ARGS=--restore-user</code>) to download.</p></section>`;
  const o = k.offsite;
  const region = o.type === 's3' ? o.region : '';
  const url = o.type === 's3' ? `s3://${o.bucket}/${o.prefix}` : '';
  const endpoint = o.type === 's3' && o.endpoint ? ` --endpoint-url ${shellQuote(o.endpoint)}` : '';
  const cmds = [`export AWS_ACCESS_KEY_ID=${shellQuote(c.accessKeyId)}`, `export AWS_SECRET_ACCESS_KEY=${shellQuote(c.secretAccessKey)}`, `export AWS_DEFAULT_REGION=${region}`, `aws s3 cp --recursive${endpoint} ${url} ./pv/`].join('\n');
  return secretSection(
    'credentials',
    'read-only credentials: they can read (not change) every backup',
    `<h2>2. Read-only access</h2><table><tr><th>IAM user</th><td><code>${esc(c.userName)}</code></td></tr><tr><th>access key id</th><td><code>${esc(c.accessKeyId)}</code></td></tr><tr><th>secret access key</th><td><code>${esc(c.secretAccessKey)}</code></td></tr></table>${pre(cmds)}`,
  );
}

function luksSection(k: KitInput): string {
  const pi = k.pi;
  const title = `<h2>3. The Pi's disk: LUKS recovery passphrase</h2>`;
  if (!pi.recoveryPassphrase) return `<section id="luks">${title}<p>No recovery passphrase of <code>${esc(pi.name)}</code> was found in the state directory (<code>make provision-pi</code> creates it).</p></section>`;
  const dev = pi.rootUuid ? `/dev/disk/by-uuid/${pi.rootUuid}` : '/dev/sdX2';
  const howTo = [
    `sudo cryptsetup open ${dev} pv-root          # type the passphrase`,
    'sudo mkdir -p /mnt/pv-root && sudo mount -o ro /dev/mapper/pv-root /mnt/pv-root',
    `sudo cryptsetup open --key-file ${shellQuote(`/mnt/pv-root${pi.dataKeyPath}`)} ${shellQuote(pi.dataDevice)} pv-data`,
    'sudo mkdir -p /mnt/pv-data && sudo mount -o ro /dev/mapper/pv-data /mnt/pv-data   # the local snapshots',
  ].join('\n');
  return secretSection(
    'luks',
    `unlocks ${pi.name}'s root file system (and through it the backup disk)`,
    `${title}<p class="big"><code>${esc(pi.recoveryPassphrase)}</code></p>
<p>Lower-case letters and digits, typed as printed (dashes included). Root partition LUKS UUID: <code>${esc(pi.rootUuid ?? 'unknown')}</code>.</p>
<p><b>On the Pi, USB stick lost:</b> boot without it; at <i>Please unlock disk …: insert the USB key or type the recovery passphrase</i> type the passphrase on the console.</p>
<p><b>On another Linux machine</b> (the SD card in a reader): open the root with the passphrase; the backup disk's key is on it (<code>${esc(pi.dataKeyPath)}</code>), so the local snapshots open too:</p>${pre(howTo)}`,
  );
}

function recipientsSection(k: KitInput): string {
  const inKit = new Set(k.keys.map((x) => x.fingerprint));
  const rows = k.recipients.map((r) => `<tr><th>${esc(r.name)}</th><td><code>${esc(groupFingerprint(r.fingerprint))}</code></td><td>${inKit.has(r.fingerprint) ? 'secret key in this kit' : 'secret key kept elsewhere'}</td></tr>`);
  return `<section id="recipients"><h2>4. The keys that can decrypt</h2><p>Every archive is encrypted to each of these OpenPGP keys; any one of them alone decrypts. Check a key's fingerprint before trusting it (<code>gpg --fingerprint</code>).</p><table>${rows.join('')}</table></section>`;
}

function keySections(key: KitKey, i: number): string {
  const k = keyIdOf(key.fingerprint);
  const pub = packLines(publicLines(k, key.publicKey));
  const sec = packLines(secretLines(k, key.paperkeyText));
  const protection = key.protected
    ? `<p>This key is <b>protected by its passphrase, which is not in this kit</b>: the rebuilt key asks for it when it decrypts (§3 of the procedure). Without the passphrase this page alone cannot decrypt.</p>`
    : `<p class="warn">This key has <b>no passphrase</b>: whoever holds its secret page can decrypt every backup. Keep the page like cash.</p>`;
  const publicPart = `<section class="key" id="key-${k}"><h2>5.${i + 1} ${esc(key.recipient)}'s key</h2>
<table><tr><th>fingerprint</th><td><code>${esc(groupFingerprint(key.fingerprint))}</code></td></tr><tr><th>user ids</th><td>${key.userIds.map((u) => esc(u)).join('<br>')}</td></tr></table>${protection}
<h3>Rebuild it from this kit</h3>
<p>Scan (or photograph) the pages of this kit at 150 dpi or more as PNG files, save this script as <code>rebuild-${k}.sh</code> and run <code>bash rebuild-${k}.sh PAGE.png…</code>. It needs <code>zbarimg</code> (zbar-tools), <code>paperkey</code> and coreutils, checks that no code is missing and writes <code>${k}.secret.gpg</code>. Import it into a fresh directory: <code>mkdir -m 700 keys &amp;&amp; GNUPGHOME=$PWD/keys gpg --batch --import ${k}.secret.gpg</code>.</p>
${pre(rebuildScript(key), ` class="script" data-script="rebuild-${k}.sh"`)}
<p>Without a scanner: type the public key below into <code>${k}.pub.asc</code> and run <code>gpg --dearmor &lt;${k}.pub.asc &gt;${k}.pub.gpg</code>; type the numbered lines of the secret page into <code>${k}.secrets.txt</code> (paperkey checks each line's checksum and names a mistyped line); then the script's <code>paperkey</code> line.</p>
<h3>Public key (not secret)</h3>${qrGrid(`${key.recipient} public key`, pub)}${pre(key.publicKeyArmored, ' class="armor"')}</section>`;
  const secretPart = secretSection(
    `secret-${k}`,
    `${key.recipient}'s secret key ${groupFingerprint(key.fingerprint)}${key.protected ? ' (passphrase-protected)' : ' (no passphrase)'}`,
    `<h3>${esc(key.recipient)}'s secret key, paperkey text (${paperkeyDataLines(key.paperkeyText).length} lines)</h3>${pre(paperkeyDataLines(key.paperkeyText).join('\n'), ' class="paperkey"')}${qrGrid(`${key.recipient} secret key`, sec)}`,
    ' own-page',
  );
  return publicPart + secretPart;
}

function procedureSection(markdown: string): string {
  const html = (marked.parse(markdown, { async: false }) as string).replace(/<(\/?)h([1-5])\b/g, (_m, slash: string, n: string) => `<${slash}h${Number(n) + 1}`);
  return `<section id="procedure" class="procedure"><h2>6. The by-hand restore (docs/restore-by-hand.md)</h2>${html}</section>`;
}

const CSS = `@page { size: A4; margin: 14mm 14mm 16mm 14mm; }
body { font: 10pt/1.35 "DejaVu Sans", sans-serif; color: #000; margin: 0; }
h1 { font-size: 18pt; margin: 0 0 4pt; } h2 { font-size: 13pt; margin: 14pt 0 4pt; } h3 { font-size: 11pt; margin: 10pt 0 4pt; }
code, pre { font-family: "DejaVu Sans Mono", monospace; } pre { font-size: 8pt; white-space: pre-wrap; overflow-wrap: anywhere; border: 1px solid #999; padding: 4pt; }
table { border-collapse: collapse; margin: 4pt 0; } th, td { text-align: left; vertical-align: top; border: 1px solid #bbb; padding: 2pt 5pt; } th { font-weight: 600; }
.meta { color: #333; } .warn { font-weight: bold; }
.secret { border: 2.5pt solid #b00000; padding: 2pt 8pt 6pt; margin: 10pt 0; }
.secret .flag { color: #b00000; font-weight: bold; letter-spacing: .05em; margin: 4pt 0; }
.big { font-size: 16pt; }
.key, .own-page { break-before: page; } .layout code { font-size: 8pt; }
.qrs { display: flex; flex-wrap: wrap; gap: 6mm; }
.qr { width: 75mm; margin: 0; break-inside: avoid; text-align: center; } .qr svg { width: 75mm; height: 75mm; display: block; }
.qr figcaption { font-size: 9pt; font-weight: bold; }
pre.paperkey { font-size: 9.5pt; } pre.armor { font-size: 7pt; }
.procedure { break-before: page; } .procedure pre { font-size: 7.5pt; break-inside: auto; }`;

export function renderKit(k: KitInput): string {
  const contents = [
    'Where the backups are: bucket, region, prefix, layout',
    k.credentials ? 'Read-only credentials (SECRET)' : 'Read-only access',
    k.pi.recoveryPassphrase ? "The Pi's LUKS recovery passphrase (SECRET)" : "The Pi's LUKS recovery passphrase (not in this kit)",
    'The keys that can decrypt: every fingerprint',
    k.keys.length ? `Secret keys of ${k.keys.map((x) => x.recipient).join(', ')}: paperkey text and QR codes (SECRET), and how to rebuild them` : 'No secret key (kept elsewhere)',
    'The by-hand restore procedure: gpg, zstd, tar and patch only',
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pullvault recovery kit — ${esc(k.pi.name)}</title><style>${CSS}</style></head>
<body>
<header><h1>pullvault recovery kit — ${esc(k.pi.name)}</h1>
<p class="meta">Made ${esc(k.generatedAt)} from <code>${esc(k.inventoryFile)}</code>. It is enough to get the backups back when the owner's computer, the Pi and its USB stick are all gone.</p>
<p class="warn">Parts framed in red are SECRET. Keep this kit somewhere safe, apart from the Pi; make a new one after any key or credential changes.</p>
${k.missing.length ? `<p>Not in this kit: ${k.missing.map((m) => esc(m)).join('; ')}.</p>` : ''}
<ol>${contents.map((c) => `<li>${esc(c)}</li>`).join('')}</ol></header>
${storeSection(k)}
${credentialsSection(k)}
${luksSection(k)}
${recipientsSection(k)}
${k.keys.map((key, i) => keySections(key, i)).join('\n')}
${procedureSection(k.procedureMarkdown)}
</body></html>
`;
}
