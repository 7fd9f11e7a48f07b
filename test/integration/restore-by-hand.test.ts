// docs/restore-by-hand.md and the README's "Restore with standard tools only", run as written: the
// ```sh NAME blocks are taken from the Markdown (not retyped) and run with bash against a dir
// store built by the runtime's own offsite phase. The store holds odd names (newline, bytes that
// are not UTF-8, spaces, a leading dash), type changes (file→dir, dir→symlink, file→hard link),
// deletions, two chains, uploads that reached the store but are missing from the Pi's records
// (one of them the newest point), and an archive whose manifest object never arrived.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dateOfSnapshotId } from '../../contract/disk-layout.ts';
import { offsitePhase } from '../../runtime/offsite/phase.ts';
import { manifestObjectKey, parseObjectKey } from '../../contract/offsite-naming.ts';
import { uploadsFile } from '../../runtime/offsite/uploads.ts';
import { buildManifest } from '../../runtime/pull/manifest.ts';
import { markdownBlock as block, dirTargetConfig, genKey, makeSnapshot, offsiteWorkspace, sqlDump, type TestKey, treeSignature } from './offsite-fixture.ts';

const root = process.getuid?.() === 0;

// The server's tree at each snapshot, as shell steps run in it (bash: $'…' for odd bytes).
const STEPS: { id: string; sh: string; record?: 'drop' | 'orphan' }[] = [
  {
    id: '20240101T020000Z',
    sh: `mkdir -p home/alice/olddir usr/bin srv/www tmp
      printf 'first notes\\n' > home/alice/notes.txt; head -c 300000 /dev/urandom > home/alice/big.bin
      printf 'secret\\n' > home/alice/secret; chmod 600 home/alice/secret
      printf 'a\\n' > home/alice/olddir/a; printf 'b\\n' > home/alice/olddir/b
      printf '#!/bin/sh\\n' > usr/bin/tool; chown 0:0 usr/bin usr/bin/tool; chmod 4755 usr/bin/tool
      chown 0:0 tmp; chmod 1777 tmp; chown -R 33:33 srv/www; chmod 2775 srv/www
      printf '<h1>hi</h1>\\n' > srv/www/index.html; chown 33:33 srv/www/index.html
      printf 'file, then a directory\\n' > home/alice/typechange
      mkdir -p home/alice/dir2link/sub; printf 'x\\n' > home/alice/dir2link/sub/x
      printf 'alone, then a hard link\\n' > home/alice/solo
      ln -s notes.txt home/alice/link; chown -R 1000:1000 home/alice; chown -h 1000:1000 home/alice/link
      setfattr -n user.origin -v first home/alice/notes.txt`,
  },
  {
    id: '20240102T020000Z',
    sh: `printf 'first notes\\nsecond line\\n' >> home/alice/notes.txt
      printf 'newline\\n' > home/alice/$'new\\nline'; printf 'latin-1\\n' > home/alice/$'caf\\xe9.txt'
      printf 'spaces\\n' > 'home/alice/ with spaces and * ? [ ] \\\\ '; printf 'dash\\n' > home/alice/-leading-dash
      mkdir home/alice/$'odd\\ndir\\xff'; printf 'in an odd dir\\n' > home/alice/$'odd\\ndir\\xff'/$'f\\xfe'
      ln -s $'./\\xff\\xfe' home/alice/odd-link; chown -R 1001:1001 home/alice/$'odd\\ndir\\xff'`,
  },
  {
    // reaches the store, but the Pi's record of it is lost: the next incremental is built on the one before
    id: '20240103T020000Z',
    record: 'drop',
    sh: `rm home/alice/typechange; mkdir home/alice/typechange; printf 'now a directory\\n' > home/alice/typechange/inside
      rm -r home/alice/dir2link; ln -s ../../srv/www home/alice/dir2link
      rm home/alice/solo; ln home/alice/notes.txt home/alice/solo
      rm -r home/alice/olddir home/alice/$'new\\nline'; chmod 640 home/alice/secret`,
  },
  {
    id: '20240104T020000Z',
    sh: `rm -r home/alice/$'odd\\ndir\\xff'; rm home/alice/$'caf\\xe9.txt'; mkdir home/alice/$'caf\\xe9.txt'
      printf 'a file in what was a file\\n' > home/alice/$'caf\\xe9.txt'/inside; printf 'v4\\n' > home/alice/-leading-dash
      setfattr -n user.tag -v v4 home/alice/-leading-dash`,
  },
  { id: '20240105T020000Z', sh: `mkdir -p home/bob; printf 'bob\\n' > home/bob/new.txt; chown -R 1002:1002 home/bob; rm home/alice/link; ln -s big.bin home/alice/link` },
  // a month later: a new chain
  { id: '20240210T020000Z', sh: `printf 'february\\n' > home/alice/notes.txt; rm home/alice/solo` },
  { id: '20240211T020000Z', record: 'drop', sh: `printf 'newest\\n' > home/bob/$'newest\\n'; rm -r home/alice/typechange; printf 'a file again\\n' > home/alice/typechange` },
  // the archive was stored, its manifest object never was (an upload that did not finish)
  { id: '20240212T020000Z', record: 'orphan', sh: `printf 'never complete\\n' > home/bob/orphan` },
];
const ID = STEPS.map((s) => s.id);

/** user.* attributes under `dir` as getfattr prints them (hex, sorted): the ones the steps set must come back */
function userXattrs(dir: string): string[] {
  const out = execFileSync('getfattr', ['-R', '-h', '-d', '-e', 'hex', '-m', '^user\\.', '.'], { cwd: dir }).toString();
  return out.split('\n\n').map((b) => b.trim()).filter(Boolean).sort();
}

let work: string;
let src: string;
let store: string;
let data: string;
let owner: TestKey;
let escrow: TestKey;
const snaps: string[] = [];
/** archive key per snapshot, as the offsite phase stored it */
const keys: string[] = [];
const homedirs: string[] = [];

function run(script: string, args: string[], env: Record<string, string> = {}, cwd?: string) {
  const r = spawnSync('bash', [script, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  return { code: r.status, err: r.stderr.toString(), out: r.stdout.toString() };
}

/** restore-by-hand.sh (§5) into a new directory; returns the directory and the script's result. */
function restoreByHand(name: string, until?: string, env: Record<string, string> = { GNUPGHOME: owner.homedir }) {
  const to = join(work, name);
  return { to, ...run(join(work, 'restore-by-hand.sh'), [store, 'web1', to, ...(until ? [until] : [])], env) };
}

const check = (dir: string) => run(join(work, 'check-restore.sh'), [dir]);

describe.skipIf(!root)('the by-hand restore procedure, as documented', () => {
  beforeAll(async () => {
    ({ work, src, store, data } = offsiteWorkspace('pv-by-hand-'));
    owner = genKey(work, 'owner');
    escrow = genKey(work, 'escrow', 'escrow pass phrase');
    homedirs.push(owner.homedir, escrow.homedir);
    writeFileSync(join(work, 'restore-by-hand.sh'), block('docs/restore-by-hand.md', 'restore-by-hand.sh'));
    writeFileSync(join(work, 'check-restore.sh'), block('docs/restore-by-hand.md', 'check-restore.sh'));
    const config = dirTargetConfig(data, store, work, [owner, escrow]);
    const records = uploadsFile(data);
    const held = join(work, 'held');
    let hidden: string[] = [];
    const putBack = () => {
      for (const k of hidden) renameSync(join(held, k), join(store, k));
      hidden = [];
    };
    for (const [i, step] of STEPS.entries()) {
      execFileSync('bash', ['-euc', step.sh], { cwd: src });
      // a disk image rewritten in place: every incremental carries it as a patch (§4a)
      execFileSync('bash', ['-euc', i === 0
        ? 'head -c 2097152 /dev/urandom > srv/disk.img; chown 33:33 srv/disk.img; chmod 640 srv/disk.img'
        : 'for n in 1 2 3; do head -c 4096 /dev/urandom | dd of=srv/disk.img bs=4096 seek=$((RANDOM % 512)) conv=notrunc status=none; done'], { cwd: src });
      execFileSync('setfattr', ['-n', 'user.version', '-v', step.id, 'srv/disk.img'], { cwd: src });
      const dir = makeSnapshot(data, 'web1', step.id, src);
      mkdirSync(join(dir, 'dumps/mariadb'), { recursive: true });
      // compressed as runtime/pull/dumps.ts does (zstd -3 from a pipe): patched on its SQL (§4a)
      writeFileSync(join(dir, 'dumps/mariadb/app.sql.zst'), execFileSync('zstd', ['-q', '-c', '-3'], { input: sqlDump(60000 + 100 * i, i), maxBuffer: 1 << 28 }));
      await buildManifest(dir, { threads: 1 }); // the runtime's own manifest (it lists files/ and dumps/ themselves too)
      snaps[i] = dir;
      const lines: string[] = [];
      const now = new Date(dateOfSnapshotId(step.id).getTime() + 60_000);
      const [r] = await offsitePhase(config, [{ server: 'web1', snapshotDir: dir, id: step.id, ok: true }], { log: (l) => lines.push(l), now });
      expect(r.key, lines.join('\n')).toBeDefined();
      keys[i] = r.key!;
      putBack();
      const objects = [r.key!, manifestObjectKey('', parseObjectKey('', r.key!)!)];
      if (step.record) {
        const kept = readFileSync(records, 'utf8').split('\n').filter((l) => l && !l.includes(`"key":"${r.key}"`));
        writeFileSync(records, kept.map((l) => `${l}\n`).join(''));
      }
      if (step.record === 'drop') {
        // out of sight while the next one uploads: the branch forms even if the Pi looked at the store
        hidden = objects;
        for (const k of hidden) {
          mkdirSync(dirname(join(held, k)), { recursive: true });
          renameSync(join(store, k), join(held, k));
        }
      }
      if (step.record === 'orphan') rmSync(join(store, objects[1]));
    }
    putBack();
  }, 300_000);
  afterAll(() => {
    for (const h of homedirs) spawnSync('gpgconf', ['--homedir', h, '--kill', 'all']);
    if (work && !process.env.PV_KEEP) rmSync(work, { recursive: true, force: true });
  });

  it('the store holds the branches the scenario needs (built by the offsite phase, not by hand)', () => {
    const base = (k: string) => /\.from-(\d{8}T\d{6}Z)\./.exec(k)?.[1] ?? null;
    expect(keys.map((k) => k.split('/')[0])).toEqual(['full', 'incr', 'incr', 'incr', 'incr', 'full', 'incr', 'incr']);
    // S2 unrecorded: S3 was built on S1 as well; S6 unrecorded: the orphan S7 on S5
    expect(keys.map(base)).toEqual([null, ID[0], ID[1], ID[1], ID[3], null, ID[5], ID[5]]);
    const recorded = readFileSync(uploadsFile(data), 'utf8');
    for (const i of [2, 6, 7]) expect(recorded).not.toContain(keys[i]);
  });

  it('the incrementals carry the rewritten image and the regenerated dump as patches (§4a)', () => {
    for (const i of [1, 3, 4, 6]) {
      const list = execFileSync('bash', ['-c', 'set -o pipefail; gpg --batch -q -d "$A" | zstd -dcq | tar -t -f -'], { env: { ...process.env, GNUPGHOME: owner.homedir, A: join(store, keys[i]) } }).toString().split('\n');
      expect(list, keys[i]).toContain('.pullvault/delta/files/srv/disk.img.zst-patch');
      expect(list, keys[i]).toContain('.pullvault/delta/dumps/mariadb/app.sql.zst.unzst-patch');
      expect(list, keys[i]).not.toContain('files/srv/disk.img');
      expect(list, keys[i]).not.toContain('dumps/mariadb/app.sql.zst');
    }
  });

  it('an incremental carries its manifest as a diff (§4, §7), in the archive and as the manifest object; a full carries it whole', () => {
    const sh = (cmd: string, obj: string) => execFileSync('bash', ['-c', `set -o pipefail; gpg --batch -q -d "$A" | zstd -dcq | ${cmd}`], { env: { ...process.env, GNUPGHOME: owner.homedir, A: join(store, obj) }, maxBuffer: 1 << 26 }).toString();
    for (const [i, k] of keys.entries()) {
      const mk = manifestObjectKey('', parseObjectKey('', k)!);
      if (!existsSync(join(store, mk))) continue; // the orphan
      const list = sh('tar -t -f -', k).split('\n');
      const m = sh('cat', mk);
      const [head, ...body] = m.split('\n');
      if (k.startsWith('full/')) {
        expect(list, k).toContain('manifest.jsonl');
        expect(list, k).not.toContain('.pullvault/manifest.diff');
        expect(body.join('\n'), k).toBe(readFileSync(join(snaps[i], 'manifest.jsonl'), 'utf8'));
      } else {
        expect(list, k).toContain('.pullvault/manifest.diff');
        expect(list, k).not.toContain('manifest.jsonl');
        expect(JSON.parse(head), k).toMatchObject({ v: 2, manifest: 'diff' });
        // only what changed: the lines it adds are the manifest's lines its base's does not have, and it removes the base's the manifest does not have
        const lines = (f: string) => readFileSync(join(f, 'manifest.jsonl'), 'utf8').split('\n').filter(Boolean);
        const [cur, base] = [lines(snaps[i]), lines(snaps[ID.indexOf(/\.from-(\d{8}T\d{6}Z)\./.exec(k)![1])])];
        for (const l of body.filter(Boolean)) expect(l, k).toMatch(/^(\d+(,\d+)?[acd]\d+(,\d+)?|< \{.*|> \{.*|---)$/);
        expect(body.filter((l) => l.startsWith('> ')).map((l) => l.slice(2)), k).toEqual(cur.filter((l) => !base.includes(l)));
        expect(body.filter((l) => l.startsWith('< ')).map((l) => l.slice(2)), k).toEqual(base.filter((l) => !cur.includes(l)));
        expect(sh('tar -xO -f - .pullvault/manifest.diff', k), k).toBe(body.join('\n'));
      }
    }
  });

  it('restores the newest point (an unrecorded upload) and every older one exactly, by the manifests in the store', () => {
    // [until, the point it must restore, archives applied]
    const cases: [string | undefined, number, number][] = [
      [undefined, 6, 2], // not S7: its manifest object is missing
      [ID[5], 5, 1],
      ['20240201T000000Z', 4, 4], // chain A, through S3 (built on S1), not through S2
      [ID[3], 3, 3],
      [ID[2], 2, 3], // the unrecorded S2 is found and used
      [ID[1], 1, 2],
      [ID[0], 0, 1],
    ];
    for (const [until, want, archives] of cases) {
      const r = restoreByHand(`r-${until ?? 'newest'}`, until);
      expect(r.code, r.err).toBe(0);
      expect(r.err).toContain(`restored web1 as of ${ID[want]} (chain `);
      expect(r.err).toContain(`, ${archives} archives)`);
      expect(treeSignature(r.to)).toEqual(treeSignature(snaps[want]));
      expect(userXattrs(r.to), 'extended attributes').toEqual(userXattrs(snaps[want]));
      expect(existsSync(join(r.to, '.pullvault'))).toBe(false);
      const c = check(r.to);
      expect(c.code, c.err).toBe(0);
      expect(c.err).toMatch(/^\d+ entries match the manifest$/m);
    }
  });

  it('a passphrase-protected escrow key works without a terminal only with the passphrase given (loopback)', () => {
    const keyring = join(work, 'escrow-keys');
    mkdirSync(keyring, { mode: 0o700 });
    homedirs.push(keyring);
    execFileSync('gpg', ['--batch', '--import', escrow.secretFile], { env: { ...process.env, GNUPGHOME: keyring }, stdio: 'ignore' });
    const denied = restoreByHand('escrow-denied', ID[1], { GNUPGHOME: keyring });
    expect(denied.code).not.toBe(0);
    expect(denied.err).toMatch(/Inappropriate ioctl for device|No secret key/);
    const pass = join(work, 'escrow-pass');
    writeFileSync(pass, `${escrow.passphrase}\n`, { mode: 0o600 });
    const r = restoreByHand('escrow', ID[1], { GNUPGHOME: keyring, PASSPHRASE_FILE: pass });
    expect(r.code, r.err).toBe(0);
    expect(treeSignature(r.to)).toEqual(treeSignature(snaps[1]));
  });

  it('applying one archive by hand (§4 and the README) along a chain gives the identical tree', () => {
    for (const [file, name] of [['docs/restore-by-hand.md', 'apply-archive'], ['README.md', 'apply-archive']] as const) {
      const script = join(work, `${name}-${file.replace(/\W/g, '_')}.sh`);
      writeFileSync(script, block(file, name));
      const R = join(work, `one-by-one-${file.replace(/\W/g, '_')}`);
      mkdirSync(R);
      for (const i of [0, 1, 3, 4]) {
        const r = run(script, [], { GNUPGHOME: owner.homedir, A: join(store, keys[i]), R }, work);
        expect(r.code, `${file} ${keys[i]}: ${r.err}`).toBe(0);
      }
      expect(treeSignature(R)).toEqual(treeSignature(snaps[4]));
    }
  });

  it('the check fails on a tree that differs, for names with newlines and names that are not UTF-8 too', () => {
    const good = join(work, 'r-newest');
    expect(check(good).code).toBe(0);
    const mutations: [string, string][] = [
      // same size and mtime: only the sha256 can tell
      ['content of a file named with a newline', `f=files/home/bob/$'newest\\n' t=$(stat -c %Y "$f"); printf 'Newest\\n' > "$f"; touch -d @$t "$f"`],
      ['content of a file in a non-UTF-8 directory', `f=files/home/alice/$'caf\\xe9.txt'/inside t=$(stat -c %Y "$f"); printf 'A file in what was a file\\n' > "$f"; touch -d @$t "$f"`],
      ['an extra file', `printf x > files/home/alice/$'extra\\xff'`],
      ['a missing symlink', `rm files/home/alice/odd-link`],
      ['a mode', `chmod 644 files/home/alice/secret`],
      ['an owner', `chown 0 files/home/bob/new.txt`],
      ['an mtime', `touch -d @1000000000 files/home/alice/notes.txt`],
      ['a type', `rm files/home/alice/link && printf 'big.bin' > files/home/alice/link && touch -r files/home/alice/big.bin files/home/alice/link`],
    ];
    for (const [what, sh] of mutations) {
      const copy = join(work, 'mutated');
      rmSync(copy, { recursive: true, force: true });
      execFileSync('cp', ['-a', '--', `${good}/.`, copy]);
      expect(check(copy).code, 'the copy itself matches').toBe(0);
      execFileSync('bash', ['-euc', sh], { cwd: copy });
      const c = check(copy);
      expect(c.code, what).toBe(1);
      expect(c.err, what).toMatch(what.startsWith('content') ? /^sha256 differ/m : /^entries differ/m);
      if (what.startsWith('content')) expect(c.err, what).not.toMatch(/^entries differ/m);
    }
  });

  it('takes the newest point it can still rebuild when an archive is gone (expired)', () => {
    const expired = join(work, 'store-expired');
    cpSync(store, expired, { recursive: true });
    rmSync(join(expired, keys[3])); // S3: S4 is built on it; the branch through S2 is still whole
    const to = join(work, 'r-expired');
    const r = run(join(work, 'restore-by-hand.sh'), [expired, 'web1', to, '20240201T000000Z'], { GNUPGHOME: owner.homedir });
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain(`restored web1 as of ${ID[2]} (chain `);
    expect(treeSignature(to)).toEqual(treeSignature(snaps[2]));
  });

  it('refuses an archive that is not the one its manifest object describes, and a non-empty target', () => {
    const swapped = join(work, 'store-swapped');
    cpSync(store, swapped, { recursive: true });
    // a valid archive (it decrypts) put in another one's place
    cpSync(join(store, keys[3]), join(swapped, keys[1]));
    const r = run(join(work, 'restore-by-hand.sh'), [swapped, 'web1', join(work, 'r-swapped'), ID[4]], { GNUPGHOME: owner.homedir });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${keys[1]}: sha256 `);
    expect(r.err).toContain('its manifest object says');
    const busy = restoreByHand('r-newest');
    expect(busy.code).toBe(1);
    expect(busy.err).toMatch(/is not empty/);
  });
});
