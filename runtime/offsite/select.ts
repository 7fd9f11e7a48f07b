// Pure: what an archive holds. A full archive holds every manifest entry; an incremental holds
// what changed or appeared since the base (the last *uploaded* snapshot) plus a deletion list.
import { entryPath, type ManifestEntry } from '../../contract/disk-layout.ts';
import { compareTreeOrder } from '../archive/tar-format.ts';

export interface Selection {
  /** paths (relative to the snapshot root) for tar, in tree order */
  include: Buffer[];
  /** paths to remove before extracting, in tree order; a removed directory covers its subtree */
  deletions: Buffer[];
  /** manifest entries whose content is in the archive (for stats) */
  changedFiles: number;
  changedBytes: number;
}

const key = (e: ManifestEntry): string => entryPath(e).toString('latin1');

function sameEntry(a: ManifestEntry, b: ManifestEntry): boolean {
  return (
    a.t === b.t && a.s === b.s && a.m === b.m && a.mode === b.mode && a.u === b.u && a.g === b.g &&
    a.h === b.h && a.l === b.l && a.lb === b.lb && a.hl === b.hl
  );
}

function sortTree(paths: Iterable<string>): Buffer[] {
  return [...paths].map((p) => Buffer.from(p, 'latin1')).sort(compareTreeOrder);
}

export function selectFull(cur: ManifestEntry[]): Selection {
  const include = sortTree(cur.map(key));
  const files = cur.filter((e) => e.t === 'f');
  return { include, deletions: [], changedFiles: files.length, changedBytes: files.reduce((n, e) => n + e.s, 0) };
}

function parentOf(p: string): string | null {
  const i = p.lastIndexOf('/');
  return i > 0 ? p.slice(0, i) : null;
}

export function selectIncremental(base: ManifestEntry[], cur: ManifestEntry[]): Selection {
  const old = new Map<string, ManifestEntry>();
  for (const e of base) old.set(key(e), e);
  const now = new Map<string, ManifestEntry>();
  for (const e of cur) now.set(key(e), e);

  const include = new Set<string>();
  const deleted = new Set<string>();
  for (const [p, e] of now) {
    const o = old.get(p);
    if (!o) include.add(p);
    else if (!sameEntry(o, e)) {
      include.add(p);
      // a path that changes type is removed first (a directory cannot be replaced in place)
      if (o.t !== e.t) deleted.add(p);
    }
  }
  for (const p of old.keys()) if (!now.has(p)) deleted.add(p);

  // hard links: tar only links to a member of the same archive, so a touched group travels whole
  const groups = new Map<string, string[]>();
  for (const [p, e] of now) {
    if (e.t !== 'f' || e.hl === undefined) continue;
    const list = groups.get(e.hl) ?? [];
    list.push(p);
    groups.set(e.hl, list);
  }
  for (const [hlField, members] of groups) {
    // hl holds the head's path in p or pb form: find the head entry either way
    const asText = Buffer.from(hlField, 'utf8').toString('latin1');
    const headKey = now.has(asText) ? asText : Buffer.from(hlField, 'base64').toString('latin1');
    const all = now.has(headKey) ? [headKey, ...members] : members;
    if (all.some((m) => include.has(m))) for (const m of all) include.add(m);
  }

  // every directory above a touched path, so tar restores its mtime after the change
  for (const p of [...include, ...deleted]) {
    for (let d = parentOf(p); d !== null; d = parentOf(d)) {
      if (include.has(d)) break;
      if (now.get(d)?.t === 'd') include.add(d);
    }
  }

  // a deleted directory takes its subtree with it: keep only the topmost deletion
  const deletions = sortTree(deleted).filter((p) => {
    for (let d = parentOf(p.toString('latin1')); d !== null; d = parentOf(d)) if (deleted.has(d)) return false;
    return true;
  });
  let changedFiles = 0;
  let changedBytes = 0;
  for (const p of include) {
    const e = now.get(p)!;
    if (e.t === 'f') {
      changedFiles++;
      changedBytes += e.s;
    }
  }
  return { include: sortTree(include), deletions, changedFiles, changedBytes };
}
