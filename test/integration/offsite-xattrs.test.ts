// Extended attributes (user.*, as rsync -X carries them into a snapshot) and POSIX ACLs (rsync
// -A: system.posix_acl_*) survive the offsite round trip through the real GNU tar, zstd and gpg:
// pullvault restore puts them back, and so does the plain `gpg -d | zstd -d | tar -x --xattrs
// --acls` of each archive in order.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { dateOfSnapshotId } from '../../contract/disk-layout.ts';
import { offsitePhase } from '../../runtime/offsite/phase.ts';
import { main as pullvault } from '../../runtime/cli.ts';
import { readUploads, uploadsFile } from '../../runtime/offsite/uploads.ts';
import { dirTargetConfig, genKey, makeSnapshot, offsiteWorkspace, quietly, type TestKey, treeSignature } from './offsite-fixture.ts';

const root = process.getuid?.() === 0;
const IDS = ['20240301T020000Z', '20240302T020000Z'];

/** every user.* attribute and ACL under `dir`, one "path name=value" line each, sorted (getfattr's walk order is readdir's) */
function xattrsOf(dir: string): string[] {
  const out = execFileSync('getfattr', ['-R', '-h', '-d', '-e', 'hex', '-m', '^(user\\.|system\\.posix_acl_)', '.'], { cwd: dir }).toString();
  return out
    .split('\n\n')
    .filter((b) => b.trim())
    .flatMap((b) => {
      const [head, ...attrs] = b.trim().split('\n');
      return attrs.map((a) => `${head.replace(/^# file: /, '')} ${a}`);
    })
    .sort();
}

const setx = (path: string, name: string, value: string) => execFileSync('setfattr', ['-h', '-n', name, '-v', value, path]);

describe.skipIf(!root)('offsite: extended attributes', () => {
  let work: string;
  let src: string;
  let store: string;
  let data: string;
  let owner: TestKey;
  let config: RuntimeConfig;
  const snaps: string[] = [];

  beforeAll(async () => {
    ({ work, src, store, data } = offsiteWorkspace('pv-offsite-xattr-'));
    mkdirSync(join(src, 'docs'), { recursive: true });
    owner = genKey(work, 'owner');
    config = dirTargetConfig(data, store, work, [owner]);
    writeFileSync(join(src, 'docs', 'a.txt'), 'first\n');
    writeFileSync(join(src, 'plain.txt'), 'no attributes\n');
    setx(join(src, 'docs', 'a.txt'), 'user.color', 'blue');
    setx(join(src, 'docs', 'a.txt'), 'user.mime_type', 'text/plain');
    setx(join(src, 'docs'), 'user.tag', 'a directory');
    // an access ACL granting uid 1234 read (the kernel's binary form, as setfacl -m u:1234:r writes it)
    setx(join(src, 'plain.txt'), 'system.posix_acl_access', '0x0200000001000600ffffffff02000400d204000004000400ffffffff10000400ffffffff20000400ffffffff');
  });
  afterAll(() => {
    if (work && !process.env.PV_KEEP) rmSync(work, { recursive: true, force: true });
  });

  async function send(i: number) {
    snaps[i] = makeSnapshot(data, 'web1', IDS[i], src);
    const r = await offsitePhase(config, [{ server: 'web1', snapshotDir: snaps[i], id: IDS[i], ok: true }], { log: () => {}, now: new Date(dateOfSnapshotId(IDS[i]).getTime() + 60_000) });
    return r[0];
  }

  it('a full and an incremental carry them; pullvault restore puts them back at each point', async () => {
    expect(xattrsOf(join(src))).toHaveLength(4);
    expect((await send(0)).kind).toBe('full');
    // S1: a.txt changes (content and an attribute), a new file with a binary attribute value
    writeFileSync(join(src, 'docs', 'a.txt'), 'second\n');
    setx(join(src, 'docs', 'a.txt'), 'user.color', 'green');
    writeFileSync(join(src, 'docs', 'b.bin'), 'new\n');
    setx(join(src, 'docs', 'b.bin'), 'user.raw', '0x00ff0a20');
    expect((await send(1)).kind).toBe('incremental');
    expect(xattrsOf(join(snaps[1], 'files'))).toEqual(xattrsOf(src));

    for (const [i, id] of IDS.entries()) {
      const to = join(work, `restore-${i}`);
      const { value: code, out, err } = await quietly(() => pullvault(['restore', '--target', `dir:${store}`, '--server', 'web1', '--at', id, '--to', to, '--gpg-homedir', owner.homedir]));
      expect(code, out + err).toBe(0);
      const want = xattrsOf(join(snaps[i], 'files'));
      expect(want.length).toBe(i === 0 ? 4 : 5);
      expect(xattrsOf(join(to, 'files'))).toEqual(want);
      expect(treeSignature(join(to, 'files'))).toEqual(treeSignature(join(snaps[i], 'files')));
    }
    expect(xattrsOf(join(work, 'restore-1', 'files')).join('\n')).toMatch(/a\.txt user\.color=0x677265656e/);
    expect(xattrsOf(join(work, 'restore-1', 'files')).join('\n')).toMatch(/plain\.txt system\.posix_acl_access=0x0200000001000600ffffffff02000400d2040000/);
  });

  it('plain gpg -d | zstd -d | tar -x --xattrs --acls of each archive in order gives the same attributes', async () => {
    const to = join(work, 'by-hand');
    mkdirSync(to);
    for (const rec of await readUploads(uploadsFile(data))) {
      execFileSync('bash', ['-o', 'pipefail', '-c', 'gpg --batch --quiet --decrypt "$1" | zstd -dq | tar -x --xattrs --acls --numeric-owner -C "$2"', 'by-hand', join(store, rec.key), to], {
        env: { ...process.env, GNUPGHOME: owner.homedir },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    }
    expect(readdirSync(join(to, 'files', 'docs')).sort()).toEqual(['a.txt', 'b.bin']);
    expect(xattrsOf(join(to, 'files'))).toEqual(xattrsOf(join(snaps[1], 'files')));
  });
});
