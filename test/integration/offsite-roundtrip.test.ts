// Full + three incrementals through the real pipeline (GNU tar, zstd, openpgp.js) into a dir
// target, then: pullvault restore of every point in time, each recipient alone, a non-recipient
// key, partial restore, --force, verify. The gpg/zstd/tar-only procedure: restore-by-hand.test.ts.
import { chmodSync, chownSync, cpSync, existsSync, linkSync, lutimesSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { dateOfSnapshotId } from '../../contract/disk-layout.ts';
import { loadPrivateKey } from '../../runtime/archive/pgp.ts';
import { offsitePhase } from '../../runtime/offsite/phase.ts';
import { main as pullvault } from '../../runtime/cli.ts';
import { restore } from '../../runtime/offsite/restore.ts';
import { DirTarget } from '../../runtime/offsite/target-dir.ts';
import { readUploads, uploadsFile } from '../../runtime/offsite/uploads.ts';
import { dirTargetConfig, genKey, makeSnapshot, offsiteWorkspace, quietly, type TestKey, treeSignature } from './offsite-fixture.ts';

const root = process.getuid?.() === 0;
const IDS = ['20240101T020000Z', '20240102T020000Z', '20240103T020000Z', '20240104T020000Z'];
const T = 1_700_000_000;

let work: string;
let src: string;
let store: string;
let data: string;
let owner: TestKey;
let escrow: TestKey;
let stranger: TestKey;
let config: RuntimeConfig;
const snapDirs: string[] = [];

const bp = (rel: string | Buffer) => Buffer.concat([Buffer.from(src + '/'), Buffer.from(rel)]);
function file(rel: string | Buffer, content: string | Buffer, mode = 0o644, uid = 1000, gid = 1000, mtime = T) {
  writeFileSync(bp(rel), content);
  chmodSync(bp(rel), mode);
  chownSync(bp(rel), uid, gid);
  utimesSync(bp(rel), mtime, mtime);
}
function dir(rel: string | Buffer, mode = 0o755, uid = 1000, gid = 1000) {
  mkdirSync(bp(rel), { recursive: true });
  chmodSync(bp(rel), mode);
  chownSync(bp(rel), uid, gid);
}
function symlink(rel: string | Buffer, to: string | Buffer, mtime = T) {
  symlinkSync(Buffer.from(to), bp(rel));
  lutimesSync(bp(rel), mtime, mtime);
}
/** directories get their mtimes last (creating children changes them) */
function stampDirs(mtime: number) {
  const walk = (rel: Buffer) => {
    for (const n of readdirSync(bp(rel), { encoding: 'buffer', withFileTypes: true })) {
      if (n.isDirectory()) walk(rel.length ? Buffer.concat([rel, Buffer.from('/'), n.name as unknown as Buffer]) : (n.name as unknown as Buffer));
    }
    utimesSync(bp(rel), mtime, mtime);
  };
  walk(Buffer.alloc(0));
}

async function snapshotAndSend(i: number) {
  const id = IDS[i];
  snapDirs[i] = makeSnapshot(data, 'web1', id, src);
  const now = new Date(dateOfSnapshotId(id).getTime() + 60_000);
  const lines: string[] = [];
  const r = await offsitePhase(config, [{ server: 'web1', snapshotDir: snapDirs[i], id, ok: true }], { log: (l) => lines.push(l), now });
  return { r: r[0], lines };
}

describe.skipIf(!root)('offsite: archive → dir target → restore', () => {
  beforeAll(async () => {
    ({ work, src, store, data } = offsiteWorkspace('pv-offsite-rt-'));
    owner = genKey(work, 'owner');
    escrow = genKey(work, 'escrow', 'escrow pass phrase');
    stranger = genKey(work, 'stranger');
    config = dirTargetConfig(data, store, work, [owner, escrow]);

    // S0: the full
    dir('home/alice');
    file('home/alice/notes.txt', 'first notes\n');
    file('home/alice/big.bin', randomBytes(3 << 20));
    file('home/alice/secret', 'top secret\n', 0o600);
    dir('usr/bin', 0o755, 0, 0);
    file('usr/bin/tool', '#!/bin/sh\necho tool\n', 0o4755, 0, 0);
    dir('tmp', 0o1777, 0, 0);
    symlink('home/alice/link', 'notes.txt');
    file('home/alice/hard1', 'linked content\n');
    linkSync(bp('home/alice/hard1'), bp('home/alice/hard2'));
    dir('home/alice/emptydir');
    dir('home/alice/olddir');
    file('home/alice/olddir/a', 'a\n');
    file('home/alice/olddir/b', 'b\n');
    file('home/alice/typechange', 'I will become a directory\n');
    dir('home/alice/typechange2/sub');
    file('home/alice/typechange2/sub/x', 'I will be replaced by a file\n');
    file('home/alice/to-rename', 'rename me\n');
    dir('srv/www', 0o2775, 33, 33);
    file('srv/www/index.html', '<h1>hi</h1>\n', 0o664, 33, 33);
    stampDirs(T);
  });
  afterAll(() => {
    if (work && !process.env.PV_KEEP) rmSync(work, { recursive: true, force: true });
  });

  it('uploads a full and three incrementals (edits, additions, deletions, renames, links, odd names)', async () => {
    const s0 = await snapshotAndSend(0);
    expect(s0.r, s0.lines.join('\n')).toMatchObject({ server: 'web1', kind: 'full' });
    expect(s0.r.key).toMatch(/^full\/web1\/20240101T020000Z-[0-9a-f]+\/20240101T020000Z\.[0-9a-f]+\.tar\.zst\.gpg$/);

    // S1: edits, additions, mode and owner changes
    file('home/alice/notes.txt', 'first notes\nand a second line\n', 0o644, 1000, 1000, T + 100);
    dir('home/bob', 0o750, 1001, 1001);
    file('home/bob/new.txt', 'new file\n', 0o644, 1001, 1001, T + 100);
    chmodSync(bp('home/alice/secret'), 0o640);
    chownSync(bp('home/alice/big.bin'), 2000, 2000);
    stampDirs(T + 100);
    const s1 = await snapshotAndSend(1);
    expect(s1.r, s1.lines.join('\n')).toMatchObject({ kind: 'incremental' });

    // S2: deletions, renames, a new hard link to an unchanged file, type changes both ways
    rmSync(bp('home/alice/olddir'), { recursive: true });
    renameSync(bp('home/alice/to-rename'), bp('home/alice/renamed'));
    linkSync(bp('home/alice/secret'), bp('home/alice/secret-link'));
    unlinkSync(bp('home/alice/typechange'));
    dir('home/alice/typechange');
    file('home/alice/typechange/inside', 'now a directory\n', 0o644, 1000, 1000, T + 200);
    rmSync(bp('home/alice/typechange2'), { recursive: true });
    file('home/alice/typechange2', 'now a file\n', 0o644, 1000, 1000, T + 200);
    renameSync(bp('srv/www'), bp('srv/web'));
    stampDirs(T + 200);
    const s2 = await snapshotAndSend(2);
    expect(s2.r, s2.lines.join('\n')).toMatchObject({ kind: 'incremental' });

    // S3: symlink retarget, a hard link broken, odd names, an empty dir, non-UTF-8 symlink target
    unlinkSync(bp('home/alice/link'));
    symlink('home/alice/link', '../bob/new.txt', T + 300);
    unlinkSync(bp('home/alice/hard2'));
    file('home/alice/hard2', 'linked content\n', 0o644, 1000, 1000, T);
    file('home/alice/new\nline', 'newline in the name\n');
    file('home/alice/-leading-dash', 'dash\n');
    file(Buffer.from([...Buffer.from('home/alice/caf'), 0xe9, ...Buffer.from('.txt')]), 'latin-1 name\n');
    file('home/alice/ with spaces and * ? [ ] \\ ', 'glob chars\n');
    symlink(Buffer.from('home/alice/odd-link'), Buffer.from([0x2e, 0x2f, 0xff, 0xfe]), T + 300);
    dir('home/carol/empty');
    stampDirs(T + 300);
    const s3 = await snapshotAndSend(3);
    expect(s3.r, s3.lines.join('\n')).toMatchObject({ kind: 'incremental' });

    // the same snapshot again: nothing to send
    const again = await offsitePhase(config, [{ server: 'web1', snapshotDir: snapDirs[3], id: IDS[3], ok: true }], { log: () => {}, now: new Date(dateOfSnapshotId(IDS[3]).getTime() + 120_000) });
    expect(again[0].kind).toBe('skipped');

    const recs = await readUploads(uploadsFile(data));
    expect(recs.map((r) => [r.snapshot, r.kind, r.base ?? null])).toEqual([
      [IDS[0], 'full', null],
      [IDS[1], 'incremental', IDS[0]],
      [IDS[2], 'incremental', IDS[1]],
      [IDS[3], 'incremental', IDS[2]],
    ]);
    expect(new Set(recs.map((r) => r.chainId)).size).toBe(1);
    for (const r of recs) expect(existsSync(join(store, r.key)) && existsSync(join(store, r.manifestKey))).toBe(true);
    // an incremental after small changes is small: no unchanged big file in it
    expect(recs[2].bytes).toBeLessThan(100_000);
  });

  it('pullvault restore reproduces each point in time exactly', async () => {
    for (const [i, id] of IDS.entries()) {
      const to = join(work, `restore-${i}`);
      const { value, out, err } = await quietly(() => pullvault(['restore', '--target', `dir:${store}`, '--server', 'web1', '--at', id, '--to', to, '--gpg-homedir', owner.homedir]));
      expect(value, out + err).toBe(0);
      expect(treeSignature(join(to, 'files'))).toEqual(treeSignature(join(snapDirs[i], 'files')));
      expect(readFileSync(join(to, 'manifest.jsonl'))).toEqual(readFileSync(join(snapDirs[i], 'manifest.jsonl')));
      expect(existsSync(join(to, '.pullvault'))).toBe(false);
    }
    // hard-link identity is part of the signature; check it once explicitly too
    const sig = treeSignature(join(work, 'restore-3', 'files')).join('\n');
    expect(sig).toMatch(/link#\d+\/2/);
  });

  it('each recipient alone decrypts; a key that is not a recipient gets a clear error', async () => {
    const pf = join(work, 'escrow-pass');
    writeFileSync(pf, escrow.passphrase + '\n', { mode: 0o600 });
    // escrow: openpgp.js with an armored, passphrase-protected key (streaming decrypt)
    const { value, out, err } = await quietly(() =>
      pullvault(['restore', '--target', `dir:${store}`, '--server', 'web1', '--to', join(work, 'escrow-restore'), '--key', escrow.secretFile, '--passphrase-file', pf]),
    );
    expect(value, out + err).toBe(0);
    expect(treeSignature(join(work, 'escrow-restore', 'files'))).toEqual(treeSignature(join(snapDirs[3], 'files')));
    // escrow through gpg too
    const g = await quietly(() => pullvault(['restore', '--target', `dir:${store}`, '--server', 'web1', '--at', IDS[0], '--to', join(work, 'escrow-gpg'), '--gpg-homedir', escrow.homedir, '--passphrase-file', pf]));
    expect(g.value, g.out + g.err).toBe(0);
    // a stranger: both decryptors say so clearly
    const target = new DirTarget(store);
    await expect(restore({ target, server: 'web1', to: join(work, 's1'), decryptor: { kind: 'key', privateKey: await loadPrivateKey(readFileSync(stranger.secretFile, 'utf8')) }, log: () => {} })).rejects.toThrow(/cannot decrypt: key [0-9A-F]{40} is not a recipient/);
    await expect(restore({ target, server: 'web1', to: join(work, 's2'), decryptor: { kind: 'gpg', homedir: stranger.homedir }, log: () => {} })).rejects.toThrow(/cannot decrypt: no secret key here is a recipient/);
    const s = await quietly(() => pullvault(['restore', '--target', `dir:${store}`, '--server', 'web1', '--to', join(work, 's3'), '--gpg-homedir', stranger.homedir]));
    expect(s.value).toBe(1);
    expect(s.err).toMatch(/cannot decrypt: no secret key here is a recipient/);
  });

  it('restores a part with --path, and refuses a non-empty target without --force', async () => {
    const to = join(work, 'part');
    const r = await quietly(() => pullvault(['restore', '--target', `dir:${store}`, '--server', 'web1', '--path', '/home/alice', '--to', to, '--gpg-homedir', owner.homedir]));
    expect(r.value, r.out + r.err).toBe(0);
    expect(treeSignature(join(to, 'files/home/alice'))).toEqual(treeSignature(join(snapDirs[3], 'files/home/alice')));
    expect(existsSync(join(to, 'files/home/bob'))).toBe(false);
    const refused = await quietly(() => pullvault(['restore', '--target', `dir:${store}`, '--server', 'web1', '--to', to, '--gpg-homedir', owner.homedir]));
    expect(refused.value).toBe(1);
    expect(refused.err).toMatch(/not empty.*--force/);
    const forced = await quietly(() => pullvault(['restore', '--target', `dir:${store}`, '--server', 'web1', '--to', to, '--gpg-homedir', owner.homedir, '--force']));
    expect(forced.value, forced.out + forced.err).toBe(0);
  });

  it('verify passes on the good store, and names a corrupted or missing object', async () => {
    const ok = await quietly(() => pullvault(['verify', '--target', `dir:${store}`, '--server', 'web1', '--gpg-homedir', owner.homedir]));
    expect(ok.value, ok.out + ok.err).toBe(0);
    expect(ok.out).toMatch(/ok — 4 archive\(s\) in 1 chain\(s\), restore drill of 20240104T020000Z/);

    const recs = await readUploads(uploadsFile(data));
    const copy = join(work, 'store-copy');
    // corrupted: one byte flipped in the middle of the second incremental
    cpSync(store, copy, { recursive: true });
    const victim = join(copy, recs[2].key);
    const buf = readFileSync(victim);
    buf[buf.length >> 1] ^= 0x55;
    writeFileSync(victim, buf);
    const bad = await quietly(() => pullvault(['verify', '--target', `dir:${copy}`, '--server', 'web1', '--gpg-homedir', owner.homedir]));
    expect(bad.value).toBe(1);
    expect(bad.out).toContain(recs[2].key);
    expect(bad.out).toMatch(/FAILED/);

    // missing: the first incremental is gone
    rmSync(copy, { recursive: true });
    cpSync(store, copy, { recursive: true });
    rmSync(join(copy, recs[1].key));
    const gone = await quietly(() => pullvault(['verify', '--target', `dir:${copy}`, '--server', 'web1', '--gpg-homedir', owner.homedir]));
    expect(gone.value).toBe(1);
    expect(gone.out).toContain(`missing object: the archive of manifest ${recs[1].manifestKey}`);

    // a key that cannot decrypt
    const nokey = await quietly(() => pullvault(['verify', '--target', `dir:${store}`, '--server', 'web1', '--gpg-homedir', stranger.homedir]));
    expect(nokey.value).toBe(1);
    expect(nokey.out).toMatch(/cannot decrypt: no secret key here is a recipient/);
  });
});
