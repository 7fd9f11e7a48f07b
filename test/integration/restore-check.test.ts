// The restore's final check (offsite/restore.ts checkTree) against a real tree and the manifest the
// pull writes for it (buildManifest): a tree as the manifest says passes; each kind of difference a
// restore could leave is found and named; an mtime a hair under the next second (where a number
// stat's milliseconds round up) is not a false alarm.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestEntries } from '../../runtime/archive/manifest-stream.ts';
import { checkTree } from '../../runtime/offsite/restore.ts';
import { buildManifest } from '../../runtime/pull/manifest.ts';

const root = process.getuid?.() === 0;
let work: string;
let snap: string;
const T = 1_700_000_000;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pv-check-'));
  snap = join(work, 'snap');
  const f = join(snap, 'files');
  mkdirSync(join(f, 'd', 'e'), { recursive: true });
  writeFileSync(join(f, 'd', 'a.txt'), 'alpha\n');
  writeFileSync(join(f, 'd', 'b.txt'), 'bravo\n');
  writeFileSync(join(f, 'd', 'e', 'c.txt'), 'charlie\n');
  linkSync(join(f, 'd', 'a.txt'), join(f, 'd', 'a-link.txt'));
  symlinkSync('a.txt', join(f, 'd', 'sym'));
  stamp(f);
  await buildManifest(snap);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** a copy of the snapshot, changed by `tamper`, checked against the snapshot's manifest */
async function check(name: string, tamper: (files: string) => void) {
  const to = join(work, name);
  cpSync(snap, to, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  // cpSync keeps neither hard links nor sub-second times: put them back as tar would
  const f = join(to, 'files');
  unlinkSync(join(f, 'd', 'a-link.txt'));
  linkSync(join(f, 'd', 'a.txt'), join(f, 'd', 'a-link.txt'));
  stamp(f);
  tamper(f);
  const r = await checkTree(to, manifestEntries(join(snap, 'manifest.jsonl')), undefined, work);
  return r.problems;
}

/**
 * The tree's times: c.txt and b.txt 999 999 999 ns past a second (a number stat's mtimeMs rounds that
 * up to the next second), the rest on it; directories last (adding entries changes their mtime).
 */
function stamp(f: string) {
  const at = (t: string, ...rels: string[]) => execFileSync('touch', ['-h', '-d', `@${t}`, ...rels.map((r) => join(f, r))]);
  at(`${T}.999999999`, 'd/e/c.txt', 'd/b.txt');
  at(`${T}`, 'd/a.txt', 'd/sym', 'd/e', 'd', '.');
}

describe('the restore check', () => {
  it('passes the tree as the manifest has it, sub-second mtimes included', async () => {
    expect(await check('same', () => {})).toEqual([]);
  });

  it('names content, mode, mtime, missing, extra, hard-link and symlink differences', async () => {
    const problems = await check('changed', (f) => {
      chmodSync(join(f, 'd', 'b.txt'), 0o600);
      utimesSync(join(f, 'd', 'b.txt'), T + 5, T + 5);
      unlinkSync(join(f, 'd', 'a-link.txt'));
      writeFileSync(join(f, 'd', 'a-link.txt'), readFileSync(join(f, 'd', 'a.txt')));
      unlinkSync(join(f, 'd', 'sym'));
      symlinkSync('b.txt', join(f, 'd', 'sym'));
      writeFileSync(join(f, 'd', 'extra'), 'x');
      rmSync(join(f, 'd', 'e'), { recursive: true });
      mkdirSync(join(f, 'd', 'e'));
      writeFileSync(join(f, 'd', 'e', 'c.txt.gone'), '');
      for (const d of ['d/e', 'd']) utimesSync(join(f, d), T, T);
    });
    const text = problems.join('\n');
    expect(text).toContain('"files/d/b.txt": mode 600, manifest 644');
    expect(text).toContain(`"files/d/b.txt": mtime ${T + 5}, manifest ${T}`);
    // a-link.txt sorts first: it heads the group and a.txt names it
    expect(text).toContain('"files/d/a.txt": not hard-linked to "files/d/a-link.txt"');
    expect(text).toContain('"files/d/sym": symlink to "b.txt", manifest "a.txt"');
    expect(text).toContain('not in the manifest: "files/d/extra"');
    expect(text).toContain('missing: "files/d/e/c.txt"');
    expect(text).toContain('not in the manifest: "files/d/e/c.txt.gone"');
  });

  it('names a hard link the manifest does not have, on the group\'s first path', async () => {
    const problems = await check('extra-link', (f) => {
      linkSync(join(f, 'd', 'a.txt'), join(f, 'd', 'e', 'a-third'));
      stamp(f);
    });
    expect(problems).toEqual(['"files/d/a-link.txt": has 3 links, manifest has 2 (itself and 1 naming it)', 'not in the manifest: "files/d/e/a-third"']);
  });

  it('names a file whose bytes differ at the same size', async () => {
    const problems = await check('content', (f) => {
      writeFileSync(join(f, 'd', 'e', 'c.txt'), 'CHARLIE\n');
      stamp(f);
    });
    expect(problems).toEqual(['"files/d/e/c.txt": content differs (sha256)']);
  });

  it.skipIf(!root)('names an owner the manifest does not have', async () => {
    const problems = await check('owner', (f) => chownSync(join(f, 'd', 'a.txt'), 4242, 4243));
    expect(problems.join('\n')).toContain('"files/d/a.txt": owner 4242:4243, manifest 0:0');
  });
});
