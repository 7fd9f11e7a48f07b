// Delta incrementals through the real offsite phase (GNU tar, zstd --patch-from, OpenPGP) into a
// dir target over five days of changes: a block-rewritten image, an appended log and a
// regenerated zstd SQL dump travel as patches (the dump's on its decompressed content), a file
// above the memory cap and a new big file go whole and the index says why; `pullvault restore`
// rebuilds every point byte for byte; a corrupted patch fails with a message naming the file.
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, openSync, readFileSync, closeSync, writeSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { dateOfSnapshotId } from '../../contract/disk-layout.ts';
import { offsitePhase } from '../../runtime/offsite/phase.ts';
import { main as pullvault } from '../../runtime/cli.ts';
import { applyDeltas } from '../../runtime/offsite/delta-apply.ts';
import type { DeltaIndex } from '../../runtime/offsite/delta-plan.ts';
import { readUploads, uploadsFile } from '../../runtime/offsite/uploads.ts';
import { buildManifest } from '../../runtime/pull/manifest.ts';
import { dirTargetConfig, genKey, makeSnapshot, offsiteWorkspace, quietly, sqlDump, type TestKey, treeSignature } from './offsite-fixture.ts';

const root = process.getuid?.() === 0;
const IDS = ['20240101T020000Z', '20240102T020000Z', '20240103T020000Z', '20240104T020000Z', '20240105T020000Z', '20240106T020000Z'];
/** the day the dump is replaced by unrelated content: it goes whole that day and the next, then as patches again */
const REPLACED = 3;
const MiB = 1 << 20;

let work: string;
let src: string;
let store: string;
let data: string;
let owner: TestKey;
let config: RuntimeConfig;
const snapDirs: string[] = [];
const sent: { key: string; bytes: number }[] = [];
const logs: string[][] = [];

function rewriteBlocks(file: string, n: number) {
  const fd = openSync(file, 'r+');
  const size = Number(execFileSync('stat', ['-c', '%s', file]).toString());
  for (let i = 0; i < n; i++) writeSync(fd, randomBytes(4096), 0, 4096, Math.floor(Math.random() * (size / 4096)) * 4096);
  closeSync(fd);
}

/** The decrypted archive's member `name` (gpg → zstd → tar). */
function member(key: string, name: string): Buffer {
  return execFileSync('bash', ['-c', `set -o pipefail; gpg --homedir "$H" --batch -q -d "$A" | zstd -dcq | tar -xO -f - "$M"`], { env: { ...process.env, H: owner.homedir, A: join(store, key), M: name }, maxBuffer: 1 << 28 });
}

describe.skipIf(!root)('offsite: delta incrementals, restored to every point', () => {
  beforeAll(async () => {
    ({ work, src, store, data } = offsiteWorkspace('pv-deltas-'));
    owner = genKey(work, 'owner');
    config = dirTargetConfig(data, store, work, [owner]);
    mkdirSync(join(src, 'srv'));
    mkdirSync(join(src, 'var/log'), { recursive: true });
    writeFileSync(join(src, 'srv/disk.img'), randomBytes(4 * MiB));
    writeFileSync(join(src, 'srv/huge.img'), randomBytes(7 * MiB)); // above the 6 MiB cap the test sets
    writeFileSync(join(src, 'var/log/app.log'), randomBytes(MiB + 12345).toString('base64'));
    writeFileSync(join(src, 'small.txt'), 'small\n');
    for (const [i, id] of IDS.entries()) {
      if (i > 0) {
        rewriteBlocks(join(src, 'srv/disk.img'), 8);
        rewriteBlocks(join(src, 'srv/huge.img'), 2);
        appendFileSync(join(src, 'var/log/app.log'), `day ${i}: ${randomBytes(20000).toString('hex')}\n`);
        writeFileSync(join(src, 'small.txt'), `small ${i}\n`);
      }
      if (i === 2) writeFileSync(join(src, 'srv/new.img'), randomBytes(2 * MiB));
      const dir = makeSnapshot(data, 'web1', id, src);
      mkdirSync(join(dir, 'dumps/mariadb'), { recursive: true });
      // compressed as runtime/pull/dumps.ts does: zstd -3 from a pipe
      const sql = i === REPLACED ? randomBytes(4 * MiB).toString('base64') : sqlDump(60000 + 300 * i, i);
      writeFileSync(join(dir, 'dumps/mariadb/app.sql.zst'), execFileSync('zstd', ['-q', '-c', '-3'], { input: sql, maxBuffer: 1 << 28 }));
      await buildManifest(dir, { threads: 1 });
      snapDirs[i] = dir;
      const lines: string[] = [];
      const now = new Date(dateOfSnapshotId(id).getTime() + 60_000);
      const [r] = await offsitePhase(config, [{ server: 'web1', snapshotDir: dir, id, ok: true }], { log: (l) => lines.push(l), now, deltas: { minBytes: MiB, capBytes: 6 * MiB } });
      expect(r.key, lines.join('\n')).toBeDefined();
      sent.push({ key: r.key!, bytes: r.bytes! });
      logs.push(lines);
    }
  }, 300_000);
  afterAll(() => {
    spawnSync('gpgconf', ['--homedir', owner.homedir, '--kill', 'all']);
    if (work && !process.env.PV_KEEP) rmSync(work, { recursive: true, force: true });
  });

  it('sends the changed big files as patches, and says which went whole and why', async () => {
    const recs = await readUploads(uploadsFile(data));
    expect(recs.map((r) => r.kind)).toEqual(['full', ...IDS.slice(1).map(() => 'incremental')]);
    for (let i = 1; i < IDS.length; i++) {
      const index = JSON.parse(member(sent[i].key, '.pullvault/deltas.json').toString()) as DeltaIndex;
      expect(index.base).toBe(IDS[i - 1]);
      const deltas = Object.fromEntries(index.deltas.map((d) => [d.p, d]));
      const whole = Object.fromEntries(index.whole.map((w) => [w.p, w.reason]));
      const dumpWhole = i === REPLACED || i === REPLACED + 1;
      expect(Object.keys(deltas).sort(), logs[i].join('\n')).toEqual([...(dumpWhole ? [] : ['dumps/mariadb/app.sql.zst']), 'files/srv/disk.img', 'files/var/log/app.log']);
      if (dumpWhole) expect(whole['dumps/mariadb/app.sql.zst']).toBe('not smaller');
      else expect(deltas['dumps/mariadb/app.sql.zst'].mode).toBe('unzst');
      expect(deltas['files/srv/disk.img'].mode).toBe('raw');
      for (const d of index.deltas) expect(d.patchBytes).toBeLessThan(d.bytes / 2);
      expect(whole['files/srv/huge.img']).toBe('above the memory cap');
      if (i === 2) expect(whole['files/srv/new.img']).toBe('no previous version');
      // the patches are in the archive, the whole files they replace are not
      const list = execFileSync('bash', ['-c', `set -o pipefail; gpg --homedir "$H" --batch -q -d "$A" | zstd -dcq | tar -t -f -`], { env: { ...process.env, H: owner.homedir, A: join(store, sent[i].key) } }).toString().split('\n');
      expect(list).toContain('.pullvault/delta/files/srv/disk.img.zst-patch');
      if (!dumpWhole) expect(list).toContain('.pullvault/delta/dumps/mariadb/app.sql.zst.unzst-patch');
      expect(list).not.toContain('files/srv/disk.img');
      expect(list).toContain('files/srv/huge.img');
    }
    // an incremental costs the whole huge.img (7 MiB, above the cap, random) and little else
    expect(sent[5].bytes).toBeLessThan(7 * MiB + 600_000);
  });

  // point 3: the dump patched the day before waits decompressed, and the whole one of day 3 must win
  it('pullvault restore rebuilds every point byte for byte (and the manifest check passes)', async () => {
    for (const [i, id] of IDS.entries()) {
      const to = join(work, `restore-${i}`);
      const { value, out, err } = await quietly(() => pullvault(['restore', '--target', `dir:${store}`, '--server', 'web1', '--at', id, '--to', to, '--gpg-homedir', owner.homedir]));
      expect(value, out + err).toBe(0);
      if (i > 0) expect(out + err).toMatch(/\d delta\(s\)/);
      for (const top of ['files', 'dumps']) expect(treeSignature(join(to, top)), `${id} ${top}`).toEqual(treeSignature(join(snapDirs[i], top)));
      expect(existsSync(join(to, '.pullvault'))).toBe(false);
    }
  }, 120_000);

  it('a partial restore applies the patches under its path only', async () => {
    const to = join(work, 'restore-part');
    const { value, out, err } = await quietly(() => pullvault(['restore', '--target', `dir:${store}`, '--server', 'web1', '--to', to, '--path', '/srv', '--gpg-homedir', owner.homedir]));
    expect(value, out + err).toBe(0);
    expect(treeSignature(join(to, 'files/srv'))).toEqual(treeSignature(join(snapDirs[IDS.length - 1], 'files/srv')));
    expect(existsSync(join(to, 'files/var'))).toBe(false);
  }, 60_000);

  it('without room on the backup disk for the staging, the big files go whole and say so', async () => {
    const w = offsiteWorkspace('pv-deltas-room-');
    try {
      // the disk's free-space floor (pi.dataDisk.minFreeMiB) above what any disk here has
      const tight = { ...config, paths: { ...config.paths, dataDir: w.data }, inventory: { ...config.inventory, offsite: { type: 'dir', path: w.store }, pi: { dataDisk: { minFreeMiB: 2 ** 40 } } } } as unknown as RuntimeConfig;
      writeFileSync(join(w.src, 'disk.img'), randomBytes(2 * MiB));
      const keys: string[] = [];
      for (const [i, id] of IDS.slice(0, 2).entries()) {
        if (i) rewriteBlocks(join(w.src, 'disk.img'), 4);
        const dir = makeSnapshot(w.data, 'web1', id, w.src);
        const [r] = await offsitePhase(tight, [{ server: 'web1', snapshotDir: dir, id, ok: true }], { log: () => {}, now: new Date(dateOfSnapshotId(id).getTime() + 60_000), deltas: { minBytes: MiB, capBytes: 6 * MiB } });
        keys.push(r.key!);
      }
      store = w.store;
      const index = JSON.parse(member(keys[1], '.pullvault/deltas.json').toString()) as DeltaIndex;
      expect(index.deltas).toEqual([]);
      expect(index.whole).toEqual([{ p: 'files/disk.img', bytes: 2 * MiB, reason: 'no staging space' }]);
    } finally {
      store = join(work, 'store');
      rmSync(w.work, { recursive: true, force: true });
    }
  }, 60_000);

  it('a corrupted patch fails clearly, naming the file', async () => {
    const tree = join(work, 'restore-3-copy');
    execFileSync('cp', ['-a', join(work, 'restore-3'), tree]);
    execFileSync('bash', ['-c', `set -o pipefail; gpg --homedir "$H" --batch -q -d "$A" | zstd -dcq | tar -x -f - -C "$T" .pullvault`], { env: { ...process.env, H: owner.homedir, A: join(store, sent[4].key), T: tree } });
    const patch = join(tree, '.pullvault/delta/files/srv/disk.img.zst-patch');
    const bytes = readFileSync(patch);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(patch, bytes);
    const before = readFileSync(join(tree, 'files/srv/disk.img'));
    const scratch = join(work, 'scratch');
    mkdirSync(scratch, { recursive: true });
    await expect(applyDeltas({ root: tree, work: scratch, what: sent[4].key, wanted: () => true })).rejects.toThrow(/delta of "files\/srv\/disk\.img" \(against 20240104T020000Z\): (zstd cannot apply the patch|the patched file does not match)/);
    // the previous version is left as it was
    expect(readFileSync(join(tree, 'files/srv/disk.img')).equals(before)).toBe(true);
    // the patch put back as it was, the index naming another result: applied, then refused by the sha256
    writeFileSync(patch, readFileSync(patch).map((b, i) => (i === Math.floor(bytes.length / 2) ? b ^ 0xff : b)));
    const indexFile = join(tree, '.pullvault/deltas.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8')) as DeltaIndex;
    for (const d of index.deltas) if (d.p === 'files/srv/disk.img') d.sha256 = '0'.repeat(64);
    writeFileSync(indexFile, JSON.stringify(index));
    // (the log's patch was applied by the first attempt already)
    await expect(applyDeltas({ root: tree, work: scratch, what: sent[4].key, wanted: (p) => p.toString() === 'files/srv/disk.img' })).rejects.toThrow(/delta of "files\/srv\/disk\.img": the patched file does not match the sha256 in the index/);
  }, 60_000);
});
