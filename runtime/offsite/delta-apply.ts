// Delta incrementals, the restore side: after an archive is extracted, each patch it lists in
// .pullvault/deltas.json is applied to the version the tree holds from the archives before it
// (`zstd -d --patch-from`), checked against the index's sha256, and written over that file in
// place (its inode and hard links stay; no directory mtime changes); the patch member's mode,
// owner, mtime, extended attributes and ACLs (the new file's, see deltas.ts) are then copied onto
// it. docs/restore-by-hand.md does the same with zstd and cp.
//
// Along a chain, a file patched in archive after archive is written into the tree once: each
// patch applies to the previous result, kept in the scratch folder (a zstd dump decompressed
// there once); the tree file takes each patch's attributes at once and keeps the content its base
// archive left until the chain is done with it (flushDeltas: after the last archive, unless a
// later archive replaced or removed it). Each
// patch is applied by zstd, whose content checksum fails on a wrong base or a damaged patch; the
// sha256 in the index is compared once, at the end. The patches run in the background, two at a
// time, one after the other for each file: the next archives are extracted meanwhile, and the
// chains of different files do not wait for each other at every archive. The first patch of a
// chain reads the tree file, so the archive that brought it waits for that one.
import { copyFile, lstat, readFile, rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { DELTA_INDEX, APPLY_LONG, RECOMPRESS_ARGV, parseDeltaIndex, patchMember, recordPath, type DeltaIndex, type DeltaRecord } from './delta-plan.ts';
import { runFiles, sha256Of } from './deltas.ts';
import { isSafeRelative } from '../archive/tar-format.ts';

export class DeltaApplyError extends Error {}

/** A patched file: where its chain stands (the result in the scratch folder once `done`). */
interface Held {
  /** what the last patch gives (the index's sha256) */
  sha256: string;
  /** the tree file as the chain found it (stamp): a later archive that replaces or removes it ends the chain */
  left: string;
  what: string;
  mode: 'raw' | 'unzst';
  /** the result, in the scratch folder */
  plain: string;
  done: Promise<void>;
}

/** The patched files of one restore, across its archives (flushDeltas at the end). */
export class DeltaChains {
  readonly held = new Map<string, Held>();
  private readonly jobs: Promise<void>[] = [];
  private readonly errors: unknown[] = [];
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private seq = 0;

  constructor(private readonly parallel = 2) {}

  next(): number {
    return this.seq++;
  }

  /** runs `f` when one of the `parallel` slots is free (zstd needs about twice the file in memory) */
  async slot<T>(f: () => Promise<T>): Promise<T> {
    if (this.running >= this.parallel) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await f();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  track(p: Promise<void>): Promise<void> {
    const t = p.catch((e: unknown) => {
      this.errors.push(e);
    });
    this.jobs.push(t);
    return p;
  }

  /** the first failure so far, thrown (a later archive need not be applied) */
  throwIfFailed(): void {
    if (this.errors.length) throw this.errors[0];
  }

  /** waits for every patch still running (before the scratch folder goes), then throws the first failure */
  async settle(): Promise<void> {
    for (let n = 0; n < this.jobs.length; n = this.jobs.length) await Promise.all(this.jobs.slice(n));
    this.throwIfFailed();
  }

  /** after a failure: waits for what runs, removes what it left */
  async abandon(): Promise<void> {
    await this.settle().catch(() => {});
    for (const h of this.held.values()) await rm(h.plain, { force: true });
    this.held.clear();
  }
}

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
  chains?: DeltaChains;
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

/**
 * Takes the archive's patches into their files' chains; returns how many. Throws DeltaApplyError
 * naming the file when one does not rebuild it (a later patch's failure may surface at the next
 * archive or at flushDeltas). Without `chains`, applies and flushes at once.
 */
export async function applyDeltas(a: ApplyInput): Promise<number> {
  const chains = a.chains ?? new DeltaChains();
  chains.throwIfFailed();
  const index = await readIndex(a.root, a.what);
  if (!index) return 0;
  const todo = index.deltas.filter((d) => a.wanted(recordPath(d)));
  const starts: Promise<void>[] = [];
  for (const d of todo) {
    const { start } = await takeOne(a, index, d, chains);
    if (start) starts.push(start);
  }
  // a chain's first patch reads the tree file: done before a later archive may replace it
  const r = await Promise.allSettled(starts);
  for (const x of r) if (x.status === 'rejected') throw x.reason;
  if (!a.chains) await flushDeltas(chains, a.root);
  return todo.length;
}

/** One patch into its file's chain; returns the job when it starts a chain (it reads the tree file; in an object: an async function's promise would wait for it). */
async function takeOne(a: ApplyInput, index: DeltaIndex, d: DeltaRecord, chains: DeltaChains): Promise<{ start?: Promise<void> }> {
  const p = recordPath(d);
  const rel = p.toString('utf8');
  const fail = (why: string) => new DeltaApplyError(`${a.what}: delta of ${JSON.stringify(rel)} (against ${index.base}): ${why}`);
  const file = join(a.root, rel);
  const member = join(a.root, patchMember(p, d.mode).toString('utf8'));
  if (!(await lstat(member).then((s) => s.isFile(), () => false))) throw fail(`its patch ${patchMember(p, d.mode).toString('utf8')} is not in the archive`);
  if (!(await lstat(file).then((s) => s.isFile(), () => false))) throw fail('the previous version is not in the tree (restore the whole chain, from its full)');
  const out = join(a.work, `delta-${chains.next()}`);
  // the archive's .pullvault goes before the next one: a copy of the patch waits in the scratch folder
  const patch = `${out}.patch`;
  await copyFile(member, patch);
  const held = chains.held.get(rel);
  // the chain goes on from the previous result, unless a later archive replaced the file
  const prev = held && held.left === (await stamp(file)) && held.sha256 === d.refSha256 ? held : undefined;
  if (held && !prev) chains.track(held.done.finally(() => rm(held.plain, { force: true })));
  // the tree file gets its attributes now, its content when the chain is done (flushDeltas)
  await runFiles(['cp', '--attributes-only', '--preserve=all', '--', member, file]);
  const left = await stamp(file);
  const apply = async () => {
    let ref = prev?.plain ?? file;
    let scratchRef: string | undefined;
    try {
      if (!prev && d.mode === 'unzst') {
        ref = scratchRef = `${out}.ref`;
        await runFiles(['zstd', '-dcq'], file, ref).catch(() => Promise.reject(fail('the previous version is not a zstd file')));
      }
      const applied = await runFiles(['zstd', '-dq', '-f', `--long=${APPLY_LONG}`, `--patch-from=${ref}`, '-o', out, '--', patch]).catch((e: Error) => e);
      if (applied instanceof Error) {
        await rm(out, { force: true });
        // which side is wrong: the version in the tree, or the patch
        if ((await sha256Of(ref)) !== d.refSha256) throw fail('the tree does not hold the version the patch applies to (sha256 differs)');
        throw fail(`zstd cannot apply the patch (corrupted?): ${applied.message}`);
      }
    } finally {
      await rm(patch, { force: true });
      if (scratchRef) await rm(scratchRef, { force: true });
      if (prev) await rm(prev.plain, { force: true });
    }
  };
  const done = (prev ? prev.done : Promise.resolve()).then(() => chains.slot(apply));
  chains.track(done);
  chains.held.set(rel, { sha256: d.sha256, left, what: a.what, mode: d.mode, plain: out, done });
  return { start: prev ? undefined : done };
}

/**
 * The end of the chain for every patched file still as its chain found it: its sha256 against
 * the index (DeltaApplyError naming the file when it differs), then written over the tree file
 * in place (a dump compressed as the Pi stored it: the same bytes), and the last patch member's
 * attributes copied onto it.
 */
export async function flushDeltas(chains: DeltaChains, root: string): Promise<void> {
  try {
    // each file as soon as its own chain is done (a dump's compression overlaps the other chains)
    await Promise.all(
      [...chains.held].map(async ([rel, held]) => {
        await held.done;
        const file = join(root, rel);
        // a later archive replaced or removed it: the tree's file stands
        if (held.left !== (await stamp(file))) return;
        if ((await sha256Of(held.plain)) !== held.sha256) throw new DeltaApplyError(`${held.what}: delta of ${JSON.stringify(rel)}: the patched file does not match the sha256 in the index (corrupted patch)`);
        // in place: the same inode (hard links, directory mtimes untouched), mode and owner kept
        const st = await lstat(file);
        await runFiles(held.mode === 'unzst' ? [...RECOMPRESS_ARGV, '-T0'] : ['cat'], held.plain, file);
        // writing changed the mtime: put back what the patch member gave it
        await utimes(file, st.atime, st.mtime);
      }),
    );
    await chains.settle();
  } finally {
    await chains.abandon();
  }
}
