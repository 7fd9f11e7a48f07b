// The pre-hasher on real rsync output: names rsync prints (--out-format='%b %i %n', with its \#ooo
// escapes) are hashed while "rsync runs"; the manifest takes a pre-hash only for the very same
// inode in the very same state. Adversarial: files changed after their pre-hash (same size, same
// mtime), replaced, and hints that name FIFOs, symlinks, directories or paths outside the tree.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HASH_CHUNK } from '../../runtime/pull/hash-pool.ts';
import { buildManifest, MANIFEST_FILE } from '../../runtime/pull/manifest.ts';
import { hashableName, PreHasher, RsyncNameLines, unescapeRsyncName } from '../../runtime/pull/prehash.ts';

const B = (s: string) => Buffer.from(s, 'latin1');
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(`${tmpdir()}/pv-prehash-`);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** a source tree with names rsync must escape, and a few hundred ordinary files */
function makeSource(src: string): number {
  mkdirSync(`${src}/sub/deeper`, { recursive: true });
  const files: [string, string][] = [
    ['plain.txt', 'plain'],
    ['with space', 'space'],
    ['new\nline', 'nl'],
    ['back\\#012slash', 'literal backslash-hash'],
    ['bad\xff\xfename', 'latin1'],
    ['ünïcödé', 'utf8'],
    ['sub/deeper/-dash', 'dash'],
  ];
  for (const [n, c] of files) writeFileSync(B(`${src}/${n}`), c);
  for (let i = 0; i < 300; i++) writeFileSync(`${src}/sub/f${i}`, Buffer.alloc(i * 97, i % 251));
  // several HASH_CHUNKs and a ragged end: the hint reader's bounded loop
  writeFileSync(`${src}/sub/big`, Buffer.from(Array.from({ length: 3 * HASH_CHUNK + 12345 }, (_, i) => (i * 31) & 0xff)));
  symlinkSync('plain.txt', `${src}/link`);
  return files.length + 301;
}

/**
 * A source tree rsync'ed for real (locally) into <tmp>/<name>/files, its --out-format='%b %i %n'
 * stdout fed to a pre-hasher in odd-sized chunks (names split across writes). The caller closes it.
 */
async function prehashedCopy(name: string): Promise<{ snap: string; dest: string; src: string; n: number; pre: PreHasher }> {
  const src = `${tmp}/${name}-src`;
  const n = makeSource(src);
  const snap = `${tmp}/${name}`;
  const dest = `${snap}/files`;
  mkdirSync(dest, { recursive: true });
  const r = spawnSync('rsync', ['-a', '--out-format=%b %i %n', `${src}/`, `${dest}/`], { env: { PATH: process.env.PATH, LANG: 'C.UTF-8' } });
  expect(r.status, r.stderr.toString()).toBe(0);
  const pre = new PreHasher({ threads: 2 });
  const feed = pre.feed(dest);
  for (let o = 0; o < r.stdout.length; o += 7) feed.write(r.stdout.subarray(o, o + 7));
  feed.end();
  await pre.finish();
  return { snap, dest, src, n, pre };
}

describe('rsync name output', () => {
  it('unescapes \\#ooo (a literal \\# arrives escaped too), splits lines across chunks, keeps raw bytes', () => {
    expect(unescapeRsyncName('new\\#012line')).toBe('new\nline');
    expect(unescapeRsyncName('back\\#134#012slash')).toBe('back\\#012slash');
    expect(unescapeRsyncName('bad\\#377')).toBe('bad\xff');
    const l = new RsyncNameLines();
    expect(l.push(B('a\nb'))).toEqual(['a']);
    expect(l.push(B('c\n\xc3'))).toEqual(['bc']);
    expect(l.end()).toEqual(['\xc3']);
    expect(['x', 'a/b', 'dir/', './', '../x', 'a/../b', '/abs', ''].filter(hashableName)).toEqual(['x', 'a/b']);
  });
});

describe('pre-hashing', () => {
  it('every file rsync wrote is pre-hashed; the manifest is byte-identical to one hashed from scratch', async () => {
    const { snap, n, pre } = await prehashedCopy('snap1');
    try {
      expect(pre.stats.hashed).toBe(n);
      const r = await buildManifest(snap, { known: pre.lookup, threads: 1 });
      expect(r.stats.prehashedFiles).toBe(n);
      expect(r.stats.hashedFiles).toBe(n);
      const withHints = readFileSync(`${snap}/${MANIFEST_FILE}`);
      const r2 = await buildManifest(snap, { threads: 1 });
      expect(r2.stats.prehashedFiles).toBe(0);
      expect(readFileSync(`${snap}/${MANIFEST_FILE}`).equals(withHints)).toBe(true);
    } finally {
      await pre.close();
    }
  });

  it('a file changed after its pre-hash (same size, mtime put back) or replaced is hashed again, with its true content', async () => {
    const { snap, dest, n, pre } = await prehashedCopy('snap2');
    try {
      // rewritten in place: same size, mtime put back to the nanosecond; only ctime tells
      const before = lstatSync(`${dest}/plain.txt`);
      const mtime = execFileSync('stat', ['-c', '%.9Y', `${dest}/plain.txt`]).toString().trim();
      writeFileSync(`${dest}/plain.txt`, 'PLAIN');
      execFileSync('touch', ['-m', '-d', `@${mtime}`, `${dest}/plain.txt`]);
      const after = lstatSync(`${dest}/plain.txt`);
      expect([after.ino, after.size, after.mtimeMs]).toEqual([before.ino, before.size, before.mtimeMs]);
      // replaced by another inode with the same size and mtime
      const m2 = execFileSync('stat', ['-c', '%.9Y', `${dest}/with space`]).toString().trim();
      writeFileSync(`${dest}/with space.tmp`, 'SPACE');
      execFileSync('touch', ['-m', '-d', `@${m2}`, `${dest}/with space.tmp`]);
      renameSync(`${dest}/with space.tmp`, `${dest}/with space`);
      const r = await buildManifest(snap, { known: pre.lookup, threads: 1 });
      expect(r.stats.prehashedFiles).toBe(n - 2);
      const lines = readFileSync(`${snap}/${MANIFEST_FILE}`, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      expect(lines.find((e) => e.p === 'files/plain.txt').h).toBe(sha('PLAIN'));
      expect(lines.find((e) => e.p === 'files/with space').h).toBe(sha('SPACE'));
    } finally {
      await pre.close();
    }
  });

  it('hints naming a FIFO, a symlink out of the tree, a directory, a missing file or ../ are never read through (no hang); non-files are not queued', async () => {
    const d = `${tmp}/odd`;
    mkdirSync(`${d}/dir`, { recursive: true });
    execFileSync('mkfifo', [`${d}/fifo`]);
    writeFileSync(`${tmp}/outside`, 'secret-ish');
    symlinkSync(`${tmp}/outside`, `${d}/link-out`);
    writeFileSync(`${d}/ok`, 'ok');
    const pre = new PreHasher({ threads: 1 });
    try {
      const feed = pre.feed(d);
      // as if each had been itemized a regular file (a name whose file was replaced since): opened
      // O_NOFOLLOW|O_NONBLOCK, found not to be a regular file, never read
      const f = (n: string) => `0 >f+++++++++ ${n}\n`;
      feed.write(B(f('fifo') + f('link-out') + f('dir') + f('missing') + f('../outside') + 'no number\n' + f('ok')));
      // what rsync itemizes as a directory, symlink, device or special file is not even queued
      feed.write(B('0 cd+++++++++ dir/\n0 cL+++++++++ link-out -> /x\n0 cD+++++++++ dev\n0 cS+++++++++ fifo\ncreated directory x\n'));
      feed.end();
      await pre.finish();
      expect(pre.stats.hinted).toBe(5); // ../outside is not even queued
      expect(pre.stats.hashed).toBe(1);
    } finally {
      await pre.close();
    }
  }, 10_000);

  it('hints in any order, twice over, under a destination with a trailing slash, meet the sorted walk (merge-join by path)', async () => {
    const snap = `${tmp}/order`;
    const dest = `${snap}/files`;
    mkdirSync(`${dest}/a`, { recursive: true });
    const names = ['a-b', 'a/x', 'a\xff', 'b'];
    for (const n of names) writeFileSync(B(`${dest}/${n}`), n);
    const pre = new PreHasher({ threads: 1, sortDir: tmp });
    try {
      const feed = pre.feed(`${dest}/`);
      // byte order is "a-b" < "a/x" < "a\xff" < "b": hinted backwards, "b" twice
      for (const n of [...names].reverse().concat('b')) feed.write(B(`0 >f+++++++++ ${n}\n`));
      feed.end();
      await pre.finish();
      const r = await buildManifest(snap, { known: pre.lookup, threads: 1 });
      expect(r.stats.prehashedFiles).toBe(names.length);
      const lines = readFileSync(`${snap}/${MANIFEST_FILE}`, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      expect(lines.find((e) => e.p === 'files/b').h).toBe(sha('b'));
    } finally {
      await pre.close();
    }
  });
});
