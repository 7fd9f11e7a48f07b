// Delta incrementals, the restore side: after an archive is extracted, each patch it lists in
// .pullvault/deltas.json is applied to the version the tree holds from the archives before it
// (`zstd -d --patch-from`), checked against the index's sha256, and written over that file in
// place (its inode and hard links stay; no directory mtime changes); the patch member's mode,
// owner, mtime, extended attributes and ACLs (the new file's, see deltas.ts) are then copied onto
// it. docs/restore-by-hand.md does the same with zstd and cp.
//
// Along a chain, a file patched in archive after archive is checked once: each patch is applied
// by zstd, whose content checksum fails on a wrong base or a damaged patch, and the sha256 in the
// index is compared when the chain is done with the file (flushDeltas: after the last archive,
// unless a later archive replaced or removed it; the patch after it would have failed otherwise).
// A zstd dump stays decompressed in the scratch folder meanwhile (DeltaCache): the next patch
// applies to that copy, and the dump is compressed into the tree once. Patches of different files
// run side by side.
import { copyFile, lstat, readFile, rename, rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { DELTA_INDEX, APPLY_LONG, RECOMPRESS_ARGV, parseDeltaIndex, patchMember, recordPath, type DeltaIndex, type DeltaRecord } from './delta-plan.ts';
import { runFiles, sha256Of } from './deltas.ts';
import { isSafeRelative } from '../archive/tar-format.ts';

export class DeltaApplyError extends Error {}

/** Patched files whose sha256 is still to be compared (and dumps still to be compressed): path → what was left. */
export type DeltaCache = Map<string, { sha256: string; left: string; what: string; plain?: string }>;

export interface ApplyInput {
  /** the restore directory, with the archive just extracted into it */
  root: string;
  /** a scratch folder of the restore */
  work: string;
  /** the archive, for messages */
  what: string;
  /** paths this restore writes (a partial restore skips the others) */
  wanted: (p: Buffer) => boolean;
  /** kept across the archives of one restore (flushDeltas at the end) */
  cache?: DeltaCache;
}

/** How a tree file stands (a later tar extraction or deletion changes it: new inode, ctime). */
const stamp = (file: string) => lstat(file, { bigint: true }).then((s) => `${s.ino}:${s.size}:${s.ctimeNs}`, () => 'gone');

async function readIndex(root: string, what: string): Promise<DeltaIndex | undefined> {
  let text: string;
  try {
    text = await readFile(join(root, DELTA_INDEX), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return parseDeltaIndex(text, isSafeRelative);
  } catch (e) {
    throw new DeltaApplyError(`${what}: ${DELTA_INDEX}: ${(e as Error).message}`);
  }
}

/** Applies the archive's patches; returns how many. Throws DeltaApplyError naming the file when one does not rebuild it. */
export async function applyDeltas(a: ApplyInput): Promise<number> {
  const index = await readIndex(a.root, a.what);
  if (!index) return 0;
  const todo = index.deltas.filter((d) => a.wanted(recordPath(d)));
  const cache: DeltaCache = a.cache ?? new Map();
  // two at a time: zstd and the hashing of one file overlap the other's
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const k = next++;
      await applyOne(a, index, todo[k], k, cache);
    }
  };
  await Promise.all([worker(), worker()]);
  if (!a.cache) await flushDeltas(cache, a.root);
  return todo.length;
}

async function applyOne(a: ApplyInput, index: DeltaIndex, d: DeltaRecord, k: number, cache: DeltaCache): Promise<void> {
  const p = recordPath(d);
  const rel = p.toString('utf8');
  const fail = (why: string) => new DeltaApplyError(`${a.what}: delta of ${JSON.stringify(rel)} (against ${index.base}): ${why}`);
  const file = join(a.root, rel);
  const patch = join(a.root, patchMember(p, d.mode).toString('utf8'));
  if (!(await lstat(patch).then((s) => s.isFile(), () => false))) throw fail(`its patch ${patchMember(p, d.mode).toString('utf8')} is not in the archive`);
  if (!(await lstat(file).then((s) => s.isFile(), () => false))) throw fail('the previous version is not in the tree (restore the whole chain, from its full)');
  const out = join(a.work, `delta-${k}-${Date.now()}`);
  const held = cache.get(rel);
  cache.delete(rel);
  const current = held && held.left === (await stamp(file)) ? held : undefined;
  if (held?.plain && !current) await rm(held.plain, { force: true });
  let ref = file;
  let scratchRef: string | undefined;
  if (d.mode === 'unzst') {
    if (current?.plain && current.sha256 === d.refSha256) ref = scratchRef = current.plain;
    else {
      if (current?.plain) await rm(current.plain, { force: true });
      ref = scratchRef = `${out}.ref`;
      await runFiles(['zstd', '-dcq'], file, ref).catch(() => Promise.reject(fail('the previous version is not a zstd file')));
    }
  }
  try {
    const applied = await runFiles(['zstd', '-dq', '-f', `--long=${APPLY_LONG}`, `--patch-from=${ref}`, '-o', out, '--', patch]).catch((e: Error) => e);
    if (applied instanceof Error) {
      // which side is wrong: the version in the tree, or the patch
      if ((await sha256Of(ref)) !== d.refSha256) throw fail('the tree does not hold the version the patch applies to (sha256 differs)');
      throw fail(`zstd cannot apply the patch (corrupted?): ${applied.message}`);
    }
    const entry = { sha256: d.sha256, what: a.what };
    if (d.mode === 'unzst') {
      // compressed into the tree once, at the end (flushDeltas); the tree file gets its attributes now
      await runFiles(['cp', '--attributes-only', '--preserve=all', '--', patch, file]);
      const plain = `${out}.plain`;
      await rename(out, plain);
      cache.set(rel, { ...entry, plain, left: await stamp(file) });
      return;
    }
    // in place: the same inode (hard links, directory mtimes untouched)
    await copyFile(out, file);
    await runFiles(['cp', '--attributes-only', '--preserve=all', '--', patch, file]);
    cache.set(rel, { ...entry, left: await stamp(file) });
  } finally {
    await rm(out, { force: true });
    if (scratchRef) await rm(scratchRef, { force: true });
  }
}

/**
 * The end of the chain for every patched file still as the patches left it: its sha256 against
 * the index (DeltaApplyError naming the file when it differs), and the dumps compressed into the
 * tree (as the Pi stored them: the same bytes), attributes kept.
 */
export async function flushDeltas(cache: DeltaCache, root: string): Promise<void> {
  try {
    for (const [rel, held] of cache) {
      const file = join(root, rel);
      // a later archive replaced or removed it: the tree's file stands
      if (held.left !== (await stamp(file))) continue;
      const content = held.plain ?? file;
      if ((await sha256Of(content)) !== held.sha256) throw new DeltaApplyError(`${held.what}: delta of ${JSON.stringify(rel)}: the patched file does not match the sha256 in the index (corrupted patch)`);
      if (!held.plain) continue;
      const st = await lstat(file);
      await runFiles([...RECOMPRESS_ARGV, '-T0'], held.plain, file);
      // writing changed the mtime: put back what the patch member gave it
      await utimes(file, st.atime, st.mtime);
    }
  } finally {
    for (const held of cache.values()) if (held.plain) await rm(held.plain, { force: true });
    cache.clear();
  }
}
