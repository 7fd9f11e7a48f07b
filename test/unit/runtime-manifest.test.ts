// The manifest builder on real files in a temporary directory: order by path bytes, exact
// whole-second mtimes, lines byte-identical to JSON.stringify of the entry, hash reuse only for
// the same inode, hard-link groups, and the hashing threads agreeing with a plain sha256.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryPath, type ManifestEntry } from '../../contract/disk-layout.ts';
import { buildManifest, hashFiles, MANIFEST_FILE } from '../../runtime/pull/manifest.ts';
import { T_DIR, T_FILE, T_LINK, walk } from '../../runtime/pull/walk.ts';

const B = (s: string) => Buffer.from(s, 'latin1');
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(`${tmpdir()}/pv-manifest-`);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function readLines(dir: string): { lines: string[]; entries: ManifestEntry[] } {
  const lines = readFileSync(`${dir}/${MANIFEST_FILE}`, 'utf8').split('\n').filter(Boolean);
  return { lines, entries: lines.map((l) => JSON.parse(l) as ManifestEntry) };
}

/** a snapshot dir with the awkward cases */
function makeSnapshot(dir: string): void {
  const f = `${dir}/files/srv`;
  mkdirSync(`${f}/a/b`, { recursive: true });
  mkdirSync(`${f}/a-c`);
  writeFileSync(`${f}/a/b/x`, 'x');
  writeFileSync(`${f}/a-c/y`, 'yy');
  writeFileSync(`${f}/a.txt`, 'hello\n');
  writeFileSync(B(`${f}/bad\xff\xfename`), 'bad');
  writeFileSync(`${f}/quote"back\\slash`, 'q');
  writeFileSync(`${f}/new\nline`, 'nl');
  writeFileSync(`${f}/ünïcödé`, 'u');
  linkSync(`${f}/a.txt`, `${f}/z-hardlink`);
  symlinkSync('a.txt', `${f}/link`);
  symlinkSync(B('/nowhere\xff'), `${f}/dangling`);
  // mtimes on and next to whole seconds (the number stat's edge cases)
  execFileSync('touch', ['-h', '-d', '@1700000000', `${f}/a-c/y`]);
  execFileSync('touch', ['-h', '-d', '@1700000000.999999999', `${f}/a/b/x`]);
  execFileSync('touch', ['-h', '-d', '@1700000001.000000001', `${f}/ünïcödé`]);
  execFileSync('touch', ['-h', '-d', '@-1.5', `${f}/quote"back\\slash`]);
}

describe('manifest', () => {
  let s1: string;
  beforeAll(async () => {
    s1 = `${tmp}/s1`;
    makeSnapshot(s1);
    await buildManifest(s1, { threads: 1 });
  });

  it('walks in path-byte order (a < a-c < a/b) and skips its own files', async () => {
    const rels = (await walk(s1, new Set([MANIFEST_FILE]))).map((r) => B(r.rel));
    expect(rels).toEqual([...rels].sort(Buffer.compare));
    const names = rels.map((b) => b.toString('latin1'));
    expect(names.indexOf('files/srv/a-c')).toBeLessThan(names.indexOf('files/srv/a/b'));
    expect(names).not.toContain(MANIFEST_FILE);
  });

  it("the walk's fields (from find) are what Node's lstat gives, to the last bit of the ms times", async () => {
    const s0 = `${tmp}/s0`;
    makeSnapshot(s0);
    chmodSync(`${s0}/files/srv/a/b/x`, 0o4751);
    chmodSync(`${s0}/files/srv/a-c`, 0o3775);
    const recs = await walk(s0);
    expect(recs.length).toBeGreaterThan(10);
    for (const r of recs) {
      const st = lstatSync(B(`${s0}/${r.rel}`));
      const type = st.isDirectory() ? T_DIR : st.isSymbolicLink() ? T_LINK : T_FILE;
      expect({ rel: r.rel, type: r.type, mode: r.mode, uid: r.uid, gid: r.gid, size: r.size, dev: r.dev, ino: r.ino, nlink: r.nlink, mtimeMs: r.mtimeMs, ctimeMs: r.ctimeMs }).toEqual({
        rel: r.rel, type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: type === T_FILE ? st.size : 0, dev: st.dev, ino: st.ino, nlink: st.nlink, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs,
      });
    }
    expect(recs.find((r) => r.rel === 'files/srv/a/b/x')!.mode).toBe(0o4751);
    expect(recs.find((r) => r.rel === 'files/srv/a-c')!.mode).toBe(0o3775);
  });

  it('a tree whose listing spans many of find\'s output chunks: every entry once, none garbled at a chunk boundary', async () => {
    const d = `${tmp}/walk-chunks`;
    const names: string[] = [];
    for (let i = 0; i < 40; i++) {
      mkdirSync(`${d}/dir-${i}`, { recursive: true });
      names.push(`dir-${i}`);
      for (let j = 0; j < 60; j++) {
        // long names with spaces and a byte that is not UTF-8: about 250 KiB of find output in all
        const n = `dir-${i}/file ${j} ${'x'.repeat(40 + ((i * 7 + j) % 50))}\xff`;
        writeFileSync(B(`${d}/${n}`), String(j));
        names.push(n);
      }
    }
    const recs = await walk(d);
    expect(recs.map((r) => r.rel)).toEqual([...names].sort());
    expect(recs.filter((r) => r.type === T_FILE).every((r) => r.size === r.rel.split(' ')[1]!.length)).toBe(true);
  });

  it('a walk that cannot finish fails with find\'s reason, not a short list', async () => {
    await expect(walk(`${tmp}/no-such-dir`)).rejects.toThrow(/^walking \/.*no-such-dir: find: .*No such file/);
  });

  it('every line is exactly JSON.stringify of its entry; fields and hashes right', () => {
    const { lines, entries } = readLines(s1);
    for (let i = 0; i < lines.length; i++) expect(lines[i]).toBe(JSON.stringify(entries[i]));
    const by = new Map(entries.map((e) => [entryPath(e).toString('latin1'), e]));
    expect(by.get('files/srv/a.txt')).toMatchObject({ t: 'f', s: 6, h: sha('hello\n') });
    expect(by.get('files/srv/a.txt')!.hl).toBeUndefined();
    expect(by.get('files/srv/z-hardlink')).toMatchObject({ h: sha('hello\n'), hl: 'files/srv/a.txt' });
    expect(by.get('files/srv/bad\xff\xfename')).toMatchObject({ pb: B('files/srv/bad\xff\xfename').toString('base64'), h: sha('bad') });
    expect(by.get('files/srv/quote"back\\slash')!.p).toBe('files/srv/quote"back\\slash');
    expect(by.get('files/srv/new\nline')!.p).toBe('files/srv/new\nline');
    const uni = Buffer.from('files/srv/ünïcödé').toString('latin1');
    expect(by.get(uni)!.p).toBe('files/srv/ünïcödé');
    expect(by.get('files/srv/link')).toMatchObject({ t: 'l', s: 0, l: 'a.txt' });
    expect(by.get('files/srv/dangling')).toMatchObject({ t: 'l', lb: B('/nowhere\xff').toString('base64') });
    expect(by.get('files/srv/a')).toMatchObject({ t: 'd', s: 0 });
    // whole seconds, truncated toward zero like the BigInt division (find %Ts prints the same)
    expect(by.get('files/srv/a-c/y')!.m).toBe(1700000000);
    expect(by.get('files/srv/a/b/x')!.m).toBe(1700000000);
    expect(by.get(uni)!.m).toBe(1700000001);
    expect(by.get('files/srv/quote"back\\slash')!.m).toBe(-1);
  });

  it('a hard-linked copy reuses every hash; a rewritten file (new inode) and a changed mode are handled', async () => {
    const s2 = `${tmp}/s2`;
    execFileSync('cp', ['-a', '--link', `${s1}/.`, s2]);
    rmSync(`${s2}/${MANIFEST_FILE}`);
    const r = await buildManifest(s2, { prevDir: s1, threads: 1 });
    expect(r.stats.hashedFiles).toBe(0);
    expect(readLines(s2).lines).toEqual(readLines(s1).lines); // same inodes → same entries (dirs keep their mtimes: cp -a)

    const s3 = `${tmp}/s3`;
    execFileSync('cp', ['-a', '--link', `${s1}/.`, s3]);
    rmSync(`${s3}/${MANIFEST_FILE}`);
    // same size and mtime, different content, new inode: must be hashed, not reused
    rmSync(`${s3}/files/srv/a-c/y`);
    writeFileSync(`${s3}/files/srv/a-c/y`, 'zz');
    execFileSync('touch', ['-d', '@1700000000', `${s3}/files/srv/a-c/y`]);
    const r3 = await buildManifest(s3, { prevDir: s1, threads: 1 });
    expect(r3.stats.hashedFiles).toBe(1);
    const y = readLines(s3).entries.find((e) => e.p === 'files/srv/a-c/y')!;
    expect(y).toMatchObject({ s: 2, m: 1700000000, h: sha('zz') });
  });

  it('the hashing threads give the same hashes as a plain sha256, in order', async () => {
    const d = `${tmp}/many`;
    mkdirSync(d);
    const paths: string[] = [];
    const sizes: number[] = [];
    const want: string[] = [];
    for (let i = 0; i < 600; i++) {
      const content = Buffer.alloc(i * 37 + (i % 100 === 0 ? 3 << 20 : 0), i % 251);
      writeFileSync(`${d}/f${i}`, content);
      paths.push(`${d}/f${i}`);
      sizes.push(content.length);
      want.push(sha(content));
    }
    expect(await hashFiles(paths, sizes, { threads: 3, poolMinBytes: 0 })).toEqual(want);
    expect(await hashFiles(paths, sizes, { threads: 1 })).toEqual(want);
    await expect(hashFiles([...paths, `${d}/missing`], [...sizes, 1], { threads: 2, poolMinBytes: 0 })).rejects.toThrow(/hashing: .*ENOENT/);
  });
});
