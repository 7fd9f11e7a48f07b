// The recovery kit used as a person would: `recovery-kit` (the CLI) writes the PDF, the PDF is
// rasterized (pdftoppm, 150 dpi) as a scanner would, the QR codes are read back from the images
// (zbarimg) by the rebuild script printed on the page, paperkey rebuilds each secret key, and the
// key, imported into a fresh GnuPG home, decrypts a store made by the runtime's own offsite phase
// with the page's by-hand procedure (bash, gpg, zstd, tar). Both recipients: the owner's key comes
// from <state>/openpgp/ (keys pullvault generated), the escrow's (passphrase-protected) from --secret-key.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dateOfSnapshotId } from '../../contract/disk-layout.ts';
import { offsitePhase } from '../../runtime/offsite/phase.ts';
import { buildManifest } from '../../runtime/pull/manifest.ts';
import { generatePassphrase } from '../../provision/image/secrets.ts';
import { keyIdOf } from '../../provision/recovery-kit/kit.ts';
import { printToPdf } from '../../provision/recovery-kit/write.ts';
import { dirTargetConfig, genKey, makeSnapshot, treeSignature, type TestKey } from './offsite-fixture.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const tools = ['paperkey', 'zbarimg', 'pdftoppm', 'gpg', 'zstd', 'tar'].every(has) && ['chromium', 'chromium-browser', 'google-chrome'].some(has);

const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');

/** The rebuild script the page prints for a key (the text on paper, from the page's source). */
function rebuildScript(html: string, fingerprint: string): string {
  const m = new RegExp(`<pre class="script" data-script="rebuild-${keyIdOf(fingerprint)}\\.sh">([\\s\\S]*?)</pre>`).exec(html);
  if (!m) throw new Error(`no rebuild script for ${fingerprint} on the page`);
  return unescape(m[1]);
}

/** The by-hand restore script as the kit's procedure section shows it. */
function restoreScript(html: string): string {
  const procedure = html.slice(html.indexOf('<section id="procedure"'));
  const blocks = [...procedure.matchAll(/<pre><code class="language-sh">([\s\S]*?)<\/code><\/pre>/g)].map((m) => unescape(m[1]));
  const found = blocks.filter((b) => b.startsWith('#!/bin/bash\n# usage: restore-by-hand.sh '));
  if (found.length !== 1) throw new Error(`${found.length} restore-by-hand.sh blocks in the kit's procedure`);
  return found[0];
}

const IDS = ['20240301T020000Z', '20240302T020000Z'];

let work: string;
let store: string;
let state: string;
let pages: string[];
let html: string;
let owner: TestKey;
let escrow: TestKey;
let passphrase: string;
let newest: string;
let inv: string;
let cli: { code: number | null; out: string; err: string };
const homes: string[] = [];

function recoveryKit(...args: string[]) {
  const r = spawnSync(join(REPO, 'node_modules/.bin/tsx'), [join(REPO, 'provision/cli.ts'), 'recovery-kit', ...args], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });
  return { code: r.status, out: r.stdout.toString(), err: r.stderr.toString() };
}

function bash(script: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const file = join(cwd, '..', `${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(file, script);
  const r = spawnSync('bash', [file, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  return { code: r.status, out: r.stdout.toString(), err: r.stderr.toString() };
}

function rasterize(pdf: string, dir: string): string[] {
  mkdirSync(dir);
  execFileSync('pdftoppm', ['-r', '150', '-png', pdf, join(dir, 'page')]);
  return readdirSync(dir).sort().map((f) => join(dir, f));
}

function freshHome(name: string): string {
  const h = join(work, name);
  mkdirSync(h, { mode: 0o700 });
  homes.push(h);
  return h;
}

describe.skipIf(!tools)('the recovery kit, printed, scanned and used', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'pv-kit-'));
    store = join(work, 'store');
    state = join(work, 'state');
    const src = join(work, 'server');
    const data = join(work, 'data');
    mkdirSync(src);
    owner = genKey(work, 'owner');
    escrow = genKey(work, 'escrow', 'escrow pass phrase');
    homes.push(owner.homedir, escrow.homedir);

    // a full and an incremental, uploaded by the runtime's offsite phase into a dir target
    const config = dirTargetConfig(data, store, work, [owner, escrow]);
    const steps = [`mkdir -p home/alice etc; printf 'notes\\n' > home/alice/notes.txt; head -c 100000 /dev/urandom > home/alice/photo.bin; printf 'x=1\\n' > etc/app.conf`, `printf 'more notes\\n' >> home/alice/notes.txt; rm etc/app.conf; printf 'new\\n' > home/alice/new.txt`];
    for (const [i, sh] of steps.entries()) {
      execFileSync('bash', ['-euc', sh], { cwd: src });
      newest = makeSnapshot(data, 'web1', IDS[i], src);
      await buildManifest(newest, { threads: 1 });
      const lines: string[] = [];
      const [r] = await offsitePhase(config, [{ server: 'web1', snapshotDir: newest, id: IDS[i], ok: true }], { log: (l) => lines.push(l), now: new Date(dateOfSnapshotId(IDS[i]).getTime() + 60_000) });
      expect(r.key, lines.join('\n')).toBeDefined();
    }

    // the owner's inventory and state: the Pi's recovery passphrase, the owner's key as pullvault keeps a generated one
    const inventory = JSON.parse(readFileSync(join(REPO, 'inventory.json'), 'utf8'));
    inventory.offsite = { type: 'dir', path: store };
    inventory.recipients = [owner, escrow].map((k) => ({ name: k.name, publicKeyFile: k.publicFile, fingerprint: k.fingerprint }));
    inv = join(work, 'inventory.json');
    writeFileSync(inv, JSON.stringify(inventory));
    passphrase = generatePassphrase();
    mkdirSync(join(state, 'pi01'), { recursive: true, mode: 0o700 });
    writeFileSync(join(state, 'pi01', 'recovery-passphrase.txt'), passphrase, { mode: 0o600 });
    writeFileSync(join(state, 'pi01', 'identity.json'), JSON.stringify({ rootUuid: '2f6c1c1e-7a43-4b8e-9a55-0c3c8f1d2e7a' }), { mode: 0o600 });
    mkdirSync(join(state, 'openpgp'), { mode: 0o700 });
    copyFileSync(owner.secretFile, join(state, 'openpgp', 'owner.secret.asc'));

    cli = recoveryKit('-i', inv, '--state', state, '--secret-key', escrow.secretFile);
    expect(cli.code, cli.err).toBe(0);
    html = readFileSync(join(state, 'recovery-kit', 'recovery-kit.html'), 'utf8');
    pages = rasterize(join(state, 'recovery-kit', 'recovery-kit.pdf'), join(work, 'scans'));
  }, 300_000);
  afterAll(() => {
    for (const h of homes) spawnSync('gpgconf', ['--homedir', h, '--kill', 'all']);
    if (work && !process.env.PV_KEEP) rmSync(work, { recursive: true, force: true });
  });

  it('writes the page and its PDF into a 0700 folder, 0600 each, and prints no secret', () => {
    const dir = join(state, 'recovery-kit');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(dir).sort()).toEqual(['recovery-kit.html', 'recovery-kit.pdf']);
    for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'recovery-kit.pdf')).subarray(0, 5).toString()).toBe('%PDF-');
    expect(pages.length).toBeGreaterThan(3);
    const said = cli.out + cli.err;
    expect(said).toContain(owner.fingerprint);
    expect(said).not.toContain(passphrase);
    expect(said).not.toMatch(/^\s*(S \S+ )?\d+: [0-9A-F]{2} /m);
    expect(html).toContain(passphrase);
  });

  for (const who of ['owner', 'escrow'] as const) {
    it(`${who}: the scanned pages rebuild the secret key, which alone restores the store with gpg, zstd and tar`, () => {
      const key = who === 'owner' ? owner : escrow;
      const at = join(work, `rebuild-${who}`);
      mkdirSync(at);
      const rebuilt = bash(rebuildScript(html, key.fingerprint), pages, at);
      expect(rebuilt.code, rebuilt.err).toBe(0);
      const keyFile = join(at, `${keyIdOf(key.fingerprint)}.secret.gpg`);
      expect(existsSync(keyFile)).toBe(true);
      expect(statSync(keyFile).mode & 0o077).toBe(0);
      expect(readdirSync(at).sort()).toEqual([`${keyIdOf(key.fingerprint)}.pub.gpg`, `${keyIdOf(key.fingerprint)}.secret.gpg`]);

      const home = freshHome(`gnupg-from-kit-${who}`);
      const restoreSh = join(work, 'restore-by-hand.sh');
      writeFileSync(restoreSh, restoreScript(html));
      const restore = (name: string, env: Record<string, string>) => {
        const to = join(work, name);
        const r = spawnSync('bash', [restoreSh, store, 'web1', to], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
        return { to, code: r.status, err: r.stderr.toString() };
      };
      // nothing but the kit: before the import this home cannot decrypt
      const before = restore(`restored-before-${who}`, { GNUPGHOME: home });
      expect(before.code).not.toBe(0);
      expect(before.err).toMatch(/No secret key|decryption failed/);

      execFileSync('gpg', ['--batch', '--import', keyFile], { env: { ...process.env, GNUPGHOME: home }, stdio: 'ignore' });
      const env: Record<string, string> = { GNUPGHOME: home };
      if (key.passphrase) {
        // the escrow key came back protected: without its passphrase it does not decrypt
        const denied = restore(`restored-denied-${who}`, env);
        expect(denied.code).not.toBe(0);
        expect(denied.err).toMatch(/Inappropriate ioctl for device|No secret key/);
        writeFileSync(join(work, 'escrow-pass'), key.passphrase, { mode: 0o600 });
        env.PASSPHRASE_FILE = join(work, 'escrow-pass');
      }
      const r = restore(`restored-${who}`, env);
      expect(r.code, r.err).toBe(0);
      expect(r.err).toContain(`restored web1 as of ${IDS[1]} (chain `);
      expect(r.err).toContain(', 2 archives)');
      expect(treeSignature(r.to)).toEqual(treeSignature(newest));
    });
  }

  it('a kit with one QR code gone does not rebuild the key, and says a code is missing', async () => {
    const caption = 'owner secret key · QR 2/2';
    const cut = html.replace(new RegExp(`<figure class="qr">(?:(?!<figure)[^])*?<figcaption>${caption}</figcaption></figure>`), '');
    expect(cut.match(/<figure class="qr">/g)!.length).toBe(html.match(/<figure class="qr">/g)!.length - 1);
    const dir = join(work, 'cut');
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, 'kit.html'), cut);
    await printToPdf(join(dir, 'kit.html'), join(dir, 'kit.pdf'));
    const scans = rasterize(join(dir, 'kit.pdf'), join(dir, 'scans'));
    const at = join(work, 'rebuild-cut');
    mkdirSync(at);
    const r = bash(rebuildScript(html, owner.fingerprint), scans, at);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/of \d+ secret lines scanned: a QR code is missing/);
    expect(existsSync(join(at, `${keyIdOf(owner.fingerprint)}.secret.gpg`))).toBe(false);
  }, 180_000);

  it('--help explains it; --dry-run lists what would go in, prints no secret and writes nothing; bad keys are refused by name', () => {
    const help = recoveryKit('--help');
    expect(help.code).toBe(0);
    expect(help.out).toContain('--secret-key FILE');
    const other = join(work, 'dry-state');
    mkdirSync(other, { mode: 0o700 });
    const dry = recoveryKit('-i', inv, '--state', state, '--secret-key', escrow.secretFile, '--dry-run');
    expect(dry.code, dry.err).toBe(0);
    expect(dry.out).toContain(`escrow's secret key ${escrow.fingerprint} (passphrase-protected)`);
    expect(dry.out).toContain(`owner's secret key ${owner.fingerprint} (NOT protected)`);
    expect(dry.out + dry.err).not.toContain(passphrase);
    expect(dry.out + dry.err).not.toMatch(/\d+: [0-9A-F]{2} [0-9A-F]{2} /);
    const empty = recoveryKit('-i', inv, '--state', other, '--dry-run');
    expect(empty.code, empty.err).toBe(0);
    expect(empty.out).toContain("missing: owner's secret key (pass it with --secret-key FILE)");
    expect(readdirSync(other)).toEqual([]);

    const stranger = genKey(work, 'stranger');
    homes.push(stranger.homedir);
    const refused = recoveryKit('-i', inv, '--state', other, '--secret-key', stranger.secretFile);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain(`${stranger.secretFile}: key ${stranger.fingerprint} is not one of the inventory's recipients (owner ${owner.fingerprint}, escrow ${escrow.fingerprint})`);
    const gone = recoveryKit('-i', inv, '--state', other, '--secret-key', join(work, 'no-such.asc'));
    expect(gone.code).toBe(1);
    expect(gone.err).toContain('no-such.asc: no such file');
    const notKey = recoveryKit('-i', inv, '--state', other, '--secret-key', owner.publicFile);
    expect(notKey.code).toBe(1);
    expect(notKey.err).toContain(`${owner.publicFile}: not an OpenPGP secret key`);
    expect(readdirSync(other)).toEqual([]);
  }, 180_000);
});
