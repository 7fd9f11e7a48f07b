// Memory that does not grow with the tree: the manifest build, both offsite selections, the
// incremental's manifest diff and composing it back, of a 200 000-entry tree, run under a heap
// limit that the whole-array versions could not stay under (they held ~280 bytes a walk entry
// and ~295 bytes a manifest entry, twice for an incremental: well over 100 MiB here). Not timed; the peak RSS is printed, figures are in bench/README.md.
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../provision/state.ts';

const DIRS = 200;
const PER_DIR = 1000;
const HEAP_MIB = 48;

describe('flat memory', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'flatmem-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  it(`manifest + selections of ${DIRS * PER_DIR} files under --max-old-space-size=${HEAP_MIB}`, () => {
    const a = join(tmp, 'a');
    for (let d = 0; d < DIRS; d++) {
      const dir = join(a, 'files', `d${String(d).padStart(3, '0')}`);
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < PER_DIR; f++) writeFileSync(join(dir, `f${f}`), `${d}/${f}\n`);
    }
    // the second snapshot: hard links to the first (rsync --link-dest), a few files changed, one gone, one new
    const b = join(tmp, 'b');
    expect(spawnSync('cp', ['-al', a, b]).status).toBe(0);
    rmSync(join(b, 'files/d007/f7'));
    writeFileSync(join(b, 'files/d007/f7'), 'changed\n');
    rmSync(join(b, 'files/d100/f1'));
    writeFileSync(join(b, 'files/d199/new'), 'new\n');
    utimesSync(join(b, 'files/d100'), 1, 1);
    const sortDir = join(tmp, 'sort');
    mkdirSync(sortDir);
    const r = spawnSync(process.execPath, [`--max-old-space-size=${HEAP_MIB}`, '--import', 'tsx', join(REPO_ROOT, 'test/fixtures/flat-memory-run.ts'), a, b, sortDir], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 600_000 });
    expect(r.stderr.slice(-2000)).not.toMatch(/heap out of memory/);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { filesA: number; filesB: number; hashedB: number; members: number; include: string[]; deletions: string[]; diffStats: { removed: number; added: number }; composedSame: boolean; vmHwmKiB: number };
    console.log(`flat memory: ${DIRS * PER_DIR} files, peak RSS ${(out.vmHwmKiB / 1024).toFixed(0)} MiB (heap limit ${HEAP_MIB} MiB)`);
    expect(out.filesA).toBe(DIRS * PER_DIR);
    expect(out.filesB).toBe(DIRS * PER_DIR);
    // the linked files reuse their hashes: only the two written ones are hashed
    expect(out.hashedB).toBe(2);
    expect(out.members).toBe(DIRS * PER_DIR + DIRS + 1);
    expect(out.include.sort()).toEqual(['files', 'files/d007', 'files/d007/f7', 'files/d100', 'files/d199', 'files/d199/new']);
    expect(out.deletions).toEqual(['files/d100/f1']);
    // the incremental's manifest is what changed: f7 and its three directories (out and in), f1 out, new in
    expect(out.diffStats).toEqual({ removed: 5, added: 5 });
    expect(out.composedSame).toBe(true);
  }, 900_000);
});
