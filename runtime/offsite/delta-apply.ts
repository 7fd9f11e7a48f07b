// Delta incrementals, the restore side: after an archive is extracted, each patch it lists in
// .pullvault/deltas.json is applied to the version the tree holds from the archives before it
// (`zstd -d --patch-from`), checked against the index's sha256, and written over that file in
// place (its inode and hard links stay; no directory mtime changes); the patch member's mode,
// owner, mtime, extended attributes and ACLs (the new file's, see deltas.ts) are then copied onto
// it. docs/restore-by-hand.md does the same with zstd and cp.
import { copyFile, lstat, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DELTA_INDEX, APPLY_LONG, RECOMPRESS_ARGV, parseDeltaIndex, patchMember, recordPath, type DeltaIndex } from './delta-plan.ts';
import { runFiles, sha256Of } from './deltas.ts';
import { isSafeRelative } from '../archive/tar-format.ts';

export class DeltaApplyError extends Error {}

export interface ApplyInput {
  /** the restore directory, with the archive just extracted into it */
  root: string;
  /** a scratch folder of the restore */
  work: string;
  /** the archive, for messages */
  what: string;
  /** paths this restore writes (a partial restore skips the others) */
  wanted: (p: Buffer) => boolean;
}

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
  let n = 0;
  for (const d of index.deltas) {
    const p = recordPath(d);
    if (!a.wanted(p)) continue;
    const rel = p.toString('utf8');
    const fail = (why: string) => new DeltaApplyError(`${a.what}: delta of ${JSON.stringify(rel)} (against ${index.base}): ${why}`);
    const file = join(a.root, rel);
    const patch = join(a.root, patchMember(p, d.mode).toString('utf8'));
    if (!(await lstat(patch).then((s) => s.isFile(), () => false))) throw fail(`its patch ${patchMember(p, d.mode).toString('utf8')} is not in the archive`);
    if (!(await lstat(file).then((s) => s.isFile(), () => false))) throw fail('the previous version is not in the tree (restore the whole chain, from its full)');
    const ref = d.mode === 'unzst' ? join(a.work, 'delta-ref') : file;
    const out = join(a.work, 'delta-new');
    try {
      if (d.mode === 'unzst') await runFiles(['zstd', '-dcq'], file, ref).catch(() => Promise.reject(fail('the previous version is not a zstd file')));
      if ((await sha256Of(ref)) !== d.refSha256) throw fail('the tree does not hold the version the patch applies to (sha256 differs)');
      await runFiles(['zstd', '-dq', '-f', `--long=${APPLY_LONG}`, `--patch-from=${ref}`, '-o', out, '--', patch]).catch((e: Error) => Promise.reject(fail(`zstd cannot apply the patch (corrupted?): ${e.message}`)));
      if ((await sha256Of(out)) !== d.sha256) throw fail('the patched file does not match the sha256 in the index (corrupted patch)');
      // in place: the same inode (hard links, directory mtimes untouched)
      if (d.mode === 'unzst') await runFiles(RECOMPRESS_ARGV, out, file);
      else await copyFile(out, file);
      await runFiles(['cp', '--attributes-only', '--preserve=all', '--', patch, file]);
      n++;
    } finally {
      await rm(out, { force: true });
      if (d.mode === 'unzst') await rm(ref, { force: true });
    }
  }
  return n;
}
