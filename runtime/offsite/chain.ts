// Pure: from an object listing, which archives rebuild the server's tree as of --at.
// An archive counts only with its manifest object beside it (both are written before the
// Pi records an upload). Incrementals are followed by the base named in their key.
import { dateOfSnapshotId } from '../../contract/disk-layout.ts';
import { parseObjectKey, type ArchiveName } from '../../contract/offsite-naming.ts';
import type { ListedObject } from './target.ts';

export interface Step extends ArchiveName {
  key: string;
  manifestKey: string;
  size: number;
  /** when the store took the archive, where the store says */
  modified?: Date;
}

export interface Plan {
  snapshot: string;
  chainId: string;
  steps: Step[];
}

export interface Listing {
  archives: Step[];
  /** archives without a manifest object (an upload that failed half-way, or a lost manifest) */
  orphans: string[];
  /** manifest objects whose archive is missing */
  missing: string[];
}

const stemOf = (n: ArchiveName) => `${n.chainId}/${n.kind}/${n.snapshot}/${n.base ?? ''}/${n.tag}`;

export function readListing(objects: ListedObject[], prefix: string, server: string): Listing {
  const archives = new Map<string, { n: ArchiveName; key: string; size: number; modified?: Date }>();
  const manifests = new Map<string, string>();
  for (const o of objects) {
    const n = parseObjectKey(prefix, o.key);
    if (!n || n.server !== server) continue;
    if (n.object === 'archive') archives.set(stemOf(n), { n, key: o.key, size: o.size, ...(o.modified ? { modified: o.modified } : {}) });
    else manifests.set(stemOf(n), o.key);
  }
  const out: Listing = { archives: [], orphans: [], missing: [] };
  for (const [s, a] of archives) {
    const m = manifests.get(s);
    if (m) out.archives.push({ ...a.n, key: a.key, manifestKey: m, size: a.size, ...(a.modified ? { modified: a.modified } : {}) });
    else out.orphans.push(a.key);
  }
  for (const [s, m] of manifests) if (!archives.has(s)) out.missing.push(m);
  out.archives.sort((a, b) => (a.key < b.key ? -1 : 1));
  return out;
}

/** Every snapshot reachable from a full, with the steps to get there (shortest first found). */
export function reachable(archives: Step[]): { snapshot: string; chainId: string; steps: Step[] }[] {
  const out: { snapshot: string; chainId: string; steps: Step[] }[] = [];
  const chains = new Map<string, Step[]>();
  for (const a of archives) chains.set(a.chainId, [...(chains.get(a.chainId) ?? []), a]);
  for (const [chainId, items] of chains) {
    for (const full of items.filter((a) => a.kind === 'full')) {
      const seen = new Map<string, Step[]>([[full.snapshot, [full]]]);
      const queue = [full.snapshot];
      while (queue.length) {
        const at = queue.shift()!;
        for (const inc of items.filter((a) => a.kind === 'incremental' && a.base === at)) {
          if (seen.has(inc.snapshot)) continue;
          seen.set(inc.snapshot, [...seen.get(at)!, inc]);
          queue.push(inc.snapshot);
        }
      }
      for (const [snapshot, steps] of seen) out.push({ snapshot, chainId, steps });
    }
  }
  return out;
}

/**
 * The points nothing else builds on, one per branch of each chain, newest first: restoring
 * each of them applies every reachable archive of the store at least once. A branch is an
 * upload that reached the store but was never recorded on the Pi: the Pi's next incremental
 * builds on the last upload it did record, beside it.
 */
export function leaves(archives: Step[]): Plan[] {
  const all = reachable(archives);
  const inner = new Set(all.flatMap((r) => r.steps.slice(0, -1).map((s) => s.key)));
  return all.filter((r) => !inner.has(r.steps[r.steps.length - 1].key)).sort((a, b) => (a.snapshot < b.snapshot ? 1 : a.snapshot > b.snapshot ? -1 : 0));
}

/** Log lines about the other branches of the chosen point's chain (which restore does not apply). */
export function branchesOf(archives: Step[], plan: Plan): string[] {
  const onPath = new Set(plan.steps.map((s) => s.key));
  return leaves(archives)
    .filter((l) => l.chainId === plan.chainId && !onPath.has(l.steps[l.steps.length - 1].key))
    .map((l) => {
      const fork = l.steps.findIndex((s) => !onPath.has(s.key));
      return `note: chain ${plan.chainId} branches after ${l.steps[fork - 1].snapshot}: ${l.snapshot} is on another branch (an upload the Pi did not record); ${plan.snapshot} is ${plan.snapshot > l.snapshot ? 'newer' : 'the one asked for'}; --at ${l.snapshot} restores the other`;
    });
}

/** Incrementals whose base cannot be reached in their chain (an earlier archive is gone). */
export function unreachable(archives: Step[]): Step[] {
  const ok = new Set(reachable(archives).flatMap((r) => r.steps.map((s) => s.key)));
  return archives.filter((a) => !ok.has(a.key));
}

export function planRestore(listing: Listing, at?: Date): Plan {
  const all = reachable(listing.archives);
  if (all.length === 0) throw new Error('no complete archive (full + manifest) for this server in the store');
  const limit = at ? at.getTime() : Infinity;
  const fit = all.filter((r) => dateOfSnapshotId(r.snapshot).getTime() <= limit);
  if (fit.length === 0) throw new Error(`no snapshot at or before ${at!.toISOString()}; the oldest is ${all.map((r) => r.snapshot).sort()[0]}`);
  fit.sort((a, b) => (a.snapshot !== b.snapshot ? (a.snapshot < b.snapshot ? 1 : -1) : a.chainId !== b.chainId ? (a.chainId < b.chainId ? 1 : -1) : a.steps.length - b.steps.length));
  return fit[0];
}

/** --at: an ISO time ("2024-05-01", "2024-05-01T12:00:00Z") or a snapshot id. */
export function parseAt(s: string): Date {
  if (/^\d{8}T\d{6}Z$/.test(s)) return dateOfSnapshotId(s);
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(s) ? `${s}T23:59:59Z` : s);
  if (Number.isNaN(d.getTime())) throw new Error(`--at: not a time: ${s}`);
  return d;
}
