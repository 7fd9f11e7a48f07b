// What an archive holds. A full archive holds every manifest entry; an incremental holds what
// changed or appeared since the base (the last *uploaded* snapshot) plus a deletion list.
// Manifests are sorted by path bytes, so the incremental is a merge-join of the two streams and
// neither is held whole: memory grows with what changed (and with the hard-linked files), not
// with the tree. The full's list (every path, in tree order for tar) goes through an external
// sort on disk.
import type { ManifestEntry } from '../../contract/disk-layout.ts';
import { compareTreeOrder } from '../archive/tar-format.ts';
import { compareTreeText, ExternalSorter, type RecordList } from '../archive/external-sort.ts';
import { keyedInOrder, manifestKey } from '../archive/manifest-stream.ts';

export interface Selection {
  /** paths (relative to the snapshot root) for tar, in tree order */
  include: Buffer[];
  /** paths to remove before extracting, in tree order; a removed directory covers its subtree */
  deletions: Buffer[];
  /** manifest entries whose content is in the archive (for stats) */
  changedFiles: number;
  changedBytes: number;
}

/** A full archive's members: the paths (latin1) in tree order, on disk. */
export interface FullSelection {
  members: RecordList;
  changedFiles: number;
  changedBytes: number;
  /** removes the list's files */
  dispose(): void;
}

function sameEntry(a: ManifestEntry, b: ManifestEntry): boolean {
  return (
    a.t === b.t && a.s === b.s && a.m === b.m && a.mode === b.mode && a.u === b.u && a.g === b.g &&
    a.h === b.h && a.l === b.l && a.lb === b.lb && a.hl === b.hl
  );
}

function sortTree(paths: Iterable<string>): Buffer[] {
  return [...paths].map((p) => Buffer.from(p, 'latin1')).sort(compareTreeOrder);
}

/** Every entry of `cur`, in tree order, the list kept in files under `tmpParent` (`runBytes`: the in-memory budget). */
export function selectFull(cur: Iterable<ManifestEntry>, tmpParent: string, runBytes?: number): FullSelection {
  const sorter = new ExternalSorter(tmpParent, compareTreeText, runBytes);
  let changedFiles = 0;
  let changedBytes = 0;
  try {
    for (const [k, e] of keyedInOrder(cur, 'manifest')) {
      sorter.add(k);
      if (e.t === 'f') {
        changedFiles++;
        changedBytes += e.s;
      }
    }
    return { members: sorter.toList(), changedFiles, changedBytes, dispose: () => sorter.dispose() };
  } catch (e) {
    sorter.dispose();
    throw e;
  }
}

/** More changed paths than the incremental may hold in memory (selectIncremental's `maxChanges`). */
export class TooManyChanges extends Error {}

function parentOf(p: string): string | null {
  const i = p.lastIndexOf('/');
  return i > 0 ? p.slice(0, i) : null;
}

/** One pass over `cur`: type and size of the keys asked for (absent: not in cur). */
function lookUp(cur: Iterable<ManifestEntry>, keys: Set<string>, known: Map<string, { t: string; s: number } | null>): void {
  const want = new Set([...keys].filter((k) => !known.has(k)));
  if (!want.size) return;
  for (const e of cur) {
    const k = manifestKey(e);
    if (want.has(k)) known.set(k, { t: e.t, s: e.s });
  }
  for (const k of want) if (!known.has(k)) known.set(k, null);
}

/**
 * The incremental from `base` to `cur`, both sorted by path bytes (a manifest file is; anything
 * else throws). `cur` is read once for the merge, once more when it has hard links (the members
 * and heads of the touched groups), and once for the directories above touched paths.
 */
export function selectIncremental(base: Iterable<ManifestEntry>, cur: Iterable<ManifestEntry>, maxChanges = Infinity): Selection {
  const include = new Set<string>();
  const deleted = new Set<string>();
  /** the `hl` fields (hard-link groups) of the changed entries: only those, never every group of the tree */
  const touched = new Set<string>();
  let links = false;

  const a = keyedInOrder(base, 'base manifest');
  const b = keyedInOrder(cur, 'manifest');
  let x = a.next();
  let y = b.next();
  while (!x.done || !y.done) {
    const c = x.done ? 1 : y.done ? -1 : x.value[0] < y.value[0] ? -1 : x.value[0] > y.value[0] ? 1 : 0;
    if (include.size + deleted.size > maxChanges) throw new TooManyChanges(`more than ${maxChanges} paths changed since the base`);
    if (c < 0) {
      deleted.add(x.value![0]);
      x = a.next();
      continue;
    }
    const [k, e] = y.value!;
    let changed = c > 0;
    if (c === 0) {
      const o = x.value![1];
      if (!sameEntry(o, e)) {
        changed = true;
        // a path that changes type is removed first (a directory cannot be replaced in place)
        if (o.t !== e.t) deleted.add(k);
      }
      x = a.next();
    }
    if (changed) include.add(k);
    if (e.t === 'f' && e.hl !== undefined) {
      links = true;
      if (changed) touched.add(e.hl);
    }
    y = b.next();
  }

  const known = new Map<string, { t: string; s: number } | null>();
  // hard links: tar only links to a member of the same archive, so a touched group travels whole:
  // one more pass over cur takes every member of a group with a changed member or a changed head.
  // hl holds the head's path in p or pb form: find the head entry either way
  const headsOf = (hlField: string) => [Buffer.from(hlField, 'utf8').toString('latin1'), Buffer.from(hlField, 'base64').toString('latin1')];
  if (links) {
    const heads = new Set<string>();
    for (const hlField of touched) for (const h of headsOf(hlField)) heads.add(h);
    for (const e of cur) {
      const k = manifestKey(e);
      if (heads.has(k)) known.set(k, { t: e.t, s: e.s });
      if (e.t === 'f' && e.hl !== undefined && (touched.has(e.hl) || headsOf(e.hl).some((h) => include.has(h)))) include.add(k);
    }
    for (const hlField of touched) {
      const head = headsOf(hlField).find((h) => known.get(h));
      if (head !== undefined) include.add(head);
    }
  }

  // every directory above a touched path, so tar restores its mtime after the change
  const above = new Set<string>();
  for (const p of [...include, ...deleted]) for (let d = parentOf(p); d !== null && !above.has(d); d = parentOf(d)) above.add(d);
  lookUp(cur, new Set([...above, ...include]), known);
  for (const d of above) if (known.get(d)?.t === 'd') include.add(d);

  // a deleted directory takes its subtree with it: keep only the topmost deletion
  const deletions = sortTree(deleted).filter((p) => {
    for (let d = parentOf(p.toString('latin1')); d !== null; d = parentOf(d)) if (deleted.has(d)) return false;
    return true;
  });
  let changedFiles = 0;
  let changedBytes = 0;
  for (const p of include) {
    const e = known.get(p);
    if (e?.t === 'f') {
      changedFiles++;
      changedBytes += e.s;
    }
  }
  return { include: sortTree(include), deletions, changedFiles, changedBytes };
}
