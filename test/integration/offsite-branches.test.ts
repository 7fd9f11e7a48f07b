// Uploads that reached the store but were never recorded on the Pi, and chains checked whole,
// through the real pipeline (GNU tar, zstd, gpg) into a dir target:
// - the disk fills while the Pi records an upload (its record file is pointed at /dev/full just
//   then): the archive and its manifest are in the store, the Pi does not know;
// - the Pi's next incremental builds on the last upload it did record (a branch beside the
//   unrecorded one, which it can neither list nor read with write-only credentials);
// - restore and verify choose by what the store holds: the newest point, on the new branch; the
//   unrecorded point restores too with --at;
// - verify --all drills every chain and branch: one flipped byte in an older chain's full, or
//   in the unrecorded branch, is found and named, where the default verify does not look.
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { dateOfSnapshotId } from '../../contract/disk-layout.ts';
import { offsitePhase } from '../../runtime/offsite/phase.ts';
import { main as pullvault } from '../../runtime/cli.ts';
import { readUploads, uploadsFile } from '../../runtime/offsite/uploads.ts';
import { dirTargetConfig, genKey, makeSnapshot, offsiteWorkspace, quietly, type TestKey, treeSignature } from './offsite-fixture.ts';

const root = process.getuid?.() === 0;
// a chain A (S0 full, S1, S2 unrecorded, S3 from S1), then chain B (S4 full, 31 days on)
const IDS = ['20240101T020000Z', '20240102T020000Z', '20240103T020000Z', '20240104T020000Z', '20240201T020000Z'];

let work: string;
let src: string;
let store: string;
let data: string;
let owner: TestKey;
let config: RuntimeConfig;
const snapDirs: string[] = [];

async function snapshotAndSend(i: number, onStored?: () => void) {
  writeFileSync(join(src, `file-${i}.txt`), `written before snapshot ${i}\n`);
  writeFileSync(join(src, 'changing.txt'), `state ${i}\n`);
  if (i === 3) unlinkSync(join(src, 'file-1.txt'));
  snapDirs[i] = makeSnapshot(data, 'web1', IDS[i], src);
  const lines: string[] = [];
  const log = (l: string) => {
    lines.push(l);
    if (onStored && / stored /.test(l)) onStored();
  };
  const r = await offsitePhase(config, [{ server: 'web1', snapshotDir: snapDirs[i], id: IDS[i], ok: true }], { log, now: new Date(dateOfSnapshotId(IDS[i]).getTime() + 60_000) });
  return { r: r[0], lines };
}

const key = ['--gpg-homedir'];
const restoreTo = (dir: string, to: string, ...more: string[]) => quietly(() => pullvault(['restore', '--target', `dir:${dir}`, '--server', 'web1', '--to', to, ...key, owner.homedir, ...more]));
const verify = (dir: string, ...more: string[]) => quietly(() => pullvault(['verify', '--target', `dir:${dir}`, '--server', 'web1', ...key, owner.homedir, ...more]));

function flipByteOf(storeDir: string, objectKey: string) {
  const f = join(storeDir, objectKey);
  const buf = readFileSync(f);
  buf[buf.length >> 1] ^= 0x55;
  writeFileSync(f, buf);
}

describe.skipIf(!root)('offsite: an unrecorded upload, branches, verify --all', () => {
  let unrecorded: { key: string; manifestKey: string };

  beforeAll(() => {
    ({ work, src, store, data } = offsiteWorkspace('pv-offsite-br-'));
    owner = genKey(work, 'owner');
    config = dirTargetConfig(data, store, work, [owner]);
  });
  afterAll(() => {
    if (work && !process.env.PV_KEEP) rmSync(work, { recursive: true, force: true });
  });

  it('an upload whose record hits a full disk is in the store, not in the records; the next incremental branches from the last record', async () => {
    expect((await snapshotAndSend(0)).r.kind).toBe('full');
    expect((await snapshotAndSend(1)).r.kind).toBe('incremental');
    const records = uploadsFile(data);
    const saved = readFileSync(records);
    // the disk is full the moment the Pi appends the record: writes to /dev/full fail with ENOSPC
    const s2 = await snapshotAndSend(2, () => {
      unlinkSync(records);
      symlinkSync('/dev/full', records);
    });
    unlinkSync(records);
    writeFileSync(records, saved, { mode: 0o600 });
    expect(s2.r.kind).toBe('skipped');
    expect(s2.r.error).toMatch(/ENOSPC/);
    expect(s2.r.error).toMatch(/^stored \S+ but could not record it in .*restore and verify find it in the store/);
    const stored = /stored (\S+)/.exec(s2.lines.join('\n'))![1];
    unrecorded = { key: stored, manifestKey: stored.replace(/^incr\//, 'manifest/').replace(/\.tar\.zst\.gpg$/, '.jsonl.zst.gpg') };
    expect(readFileSync(join(store, unrecorded.key)).length).toBeGreaterThan(0);
    expect(readFileSync(join(store, unrecorded.manifestKey)).length).toBeGreaterThan(0);
    expect((await readUploads(records)).map((r) => r.snapshot)).toEqual([IDS[0], IDS[1]]);

    // next run: S3 builds on S1 (the last recorded upload), beside the unrecorded S2
    const s3 = await snapshotAndSend(3);
    expect(s3.r.kind, s3.lines.join('\n')).toBe('incremental');
    const recs = await readUploads(records);
    expect(recs.map((r) => [r.snapshot, r.base ?? null])).toEqual([[IDS[0], null], [IDS[1], IDS[0]], [IDS[3], IDS[1]]]);
    expect(new Set(recs.map((r) => r.chainId)).size).toBe(1);
    expect(unrecorded.key).toContain(`/${recs[0].chainId}/${IDS[2]}.from-${IDS[1]}.`);

    // a month on: a new chain
    expect((await snapshotAndSend(4)).r.kind).toBe('full');
  });

  it('restore picks the newest point by the store (S4), --at the branch tip (S3) and the unrecorded point (S2)', async () => {
    const latest = await restoreTo(store, join(work, 'r-latest'));
    expect(latest.value, latest.out + latest.err).toBe(0);
    expect(latest.out).toContain(`as of ${IDS[4]}`);
    expect(treeSignature(join(work, 'r-latest', 'files'))).toEqual(treeSignature(join(snapDirs[4], 'files')));
    for (const i of [3, 2]) {
      const to = join(work, `r-${i}`);
      const r = await restoreTo(store, to, '--at', IDS[i]);
      expect(r.value, r.out + r.err).toBe(0);
      expect(r.out).toContain(`as of ${IDS[i]}`);
      expect(treeSignature(join(to, 'files'))).toEqual(treeSignature(join(snapDirs[i], 'files')));
    }
    // restoring S3 names the other branch, so nobody mistakes it for the newest
    const again = await restoreTo(store, join(work, 'r-3b'), '--at', IDS[3]);
    expect(again.err).toContain(`branches after ${IDS[1]}: ${IDS[2]} is on another branch`);
  });

  it('verify drills the newest point; verify --all drills every chain and branch', async () => {
    const one = await verify(store);
    expect(one.value, one.out + one.err).toBe(0);
    expect(one.out).toMatch(new RegExp(`ok — 5 archive\\(s\\) in 2 chain\\(s\\), restore drill of ${IDS[4]} matches`));
    expect(one.out).toContain('2 other chain(s) or branch(es) are not: --all checks every one');
    const all = await verify(store, '--all');
    expect(all.value, all.out + all.err).toBe(0);
    expect(all.out).toContain(`restore drills of ${IDS[4]}, ${IDS[3]}, ${IDS[2]} match their manifests`);
    const both = await quietly(() => pullvault(['verify', '--target', `dir:${store}`, '--server', 'web1', '--all', '--at', IDS[1]]));
    expect(both.value).toBe(2);
  });

  it('verify --all finds and names one flipped byte in the older chain full, and in the unrecorded branch', async () => {
    const recs = await readUploads(uploadsFile(data));
    for (const victim of [recs[0].key, unrecorded.key]) {
      const copy = join(work, 'store-copy');
      rmSync(copy, { recursive: true, force: true });
      cpSync(store, copy, { recursive: true });
      flipByteOf(copy, victim);
      // the default verify looks only at the newest point's archives: it does not see it
      const one = await verify(copy);
      expect(one.value, one.out).toBe(0);
      const all = await verify(copy, '--all');
      expect(all.value, all.out + all.err).toBe(1);
      expect(all.out).toMatch(/FAILED/);
      expect(all.out).toContain(victim);
      // the rest is still checked: the newer chain's drill is not reported
      expect(all.out).not.toContain(`point ${IDS[4]}`);
    }
  });

  it('a manifest that describes its archive as another snapshot is refused, by restore and by verify --all', async () => {
    const recs = await readUploads(uploadsFile(data));
    const copy = join(work, 'store-forged');
    rmSync(copy, { recursive: true, force: true });
    cpSync(store, copy, { recursive: true });
    // S1's manifest object, rewritten (by anyone with the public key) to say the archive is of S2
    const m = join(copy, recs[1].manifestKey);
    const plain = execFileSync('bash', ['-o', 'pipefail', '-c', 'gpg --batch --quiet --decrypt "$1" | zstd -dq', 'x', m], { env: { ...process.env, GNUPGHOME: owner.homedir } }).toString();
    const [head, ...rest] = plain.split('\n');
    const forged = [JSON.stringify({ ...JSON.parse(head), snapshot: IDS[2] }), ...rest].join('\n');
    const enc = execFileSync('bash', ['-o', 'pipefail', '-c', 'zstd -q -c | gpg --batch --quiet --trust-model always --encrypt -r "$1"', 'x', owner.fingerprint], { input: forged, env: { ...process.env, GNUPGHOME: owner.homedir } });
    writeFileSync(m, enc);
    const r = await restoreTo(copy, join(work, 'r-forged'), '--at', IDS[3]);
    expect(r.value).toBe(1);
    expect(r.err).toContain(`${recs[1].manifestKey}: its snapshot is "${IDS[2]}", the key names "${IDS[1]}"`);
    const all = await verify(copy, '--all');
    expect(all.value).toBe(1);
    expect(all.out).toContain(`its snapshot is "${IDS[2]}"`);
    // the plain verify checks every manifest object as restore would, not only the newest point's
    const one = await verify(copy);
    expect(one.value, one.out + one.err).toBe(1);
    expect(one.out + one.err).toContain(`${recs[1].manifestKey}: its snapshot is "${IDS[2]}"`);
  });
});
