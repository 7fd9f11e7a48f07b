// Pure: what the owner's watchdog (`pullvault watch`) reads from the store, and what it finds.
// It trusts nothing the Pi says about itself: ages come from the store's listing (the earlier of
// the snapshot id and the time the store took the object, so a Pi that names its archives in the
// future gains nothing), completeness from the chain the keys describe, decryptability and totals
// from the manifests and archives it decrypts itself.
import { dateOfSnapshotId } from '../../contract/disk-layout.ts';
import { reachable, type Listing, type Step } from '../offsite/chain.ts';
import type { ManifestHeader } from '../offsite/restore.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface WatchPolicy {
  fullEveryDays: number;
  /** absent: fulls only */
  incrementalEveryDays?: number;
  /** added to every expected interval (a run's own length, cron spacing) */
  slackHours: number;
  /** a newest manifest with fewer than (1 - dropRatio) × the previous one's files or bytes is flagged */
  dropRatio: number;
}

export const DEFAULT_SLACK_HOURS = 12;
export const DEFAULT_DROP_RATIO = 0.5;

export interface Totals {
  files: number;
  bytes: number;
}

/** A manifest object the watchdog decrypted (or failed to). */
export interface ManifestCheck {
  key: string;
  /** the archive it belongs to */
  archive: string;
  error?: string;
  header?: ManifestHeader;
  /** counted from the manifest's entries (not from what the Pi wrote in its header): an incremental's by composing its chain's (its full's entries, then each diff) */
  totals?: Totals;
}

/** An archive the watchdog downloaded, decrypted and checked against its manifest. */
export interface DataCheck {
  key: string;
  error?: string;
}

export interface WatchPlan {
  newest?: Step;
  /** archives of the newest archive's chain: their manifests are decrypted */
  chain: Step[];
  /** from the chain's full to the newest archive, when the keys link up */
  path?: Step[];
  /** the point before the newest (any chain): its manifest's totals are compared */
  previous?: Step;
  /** from the previous point's full to it: an incremental's manifest is a diff, its totals come from the whole chain */
  previousPath?: Step[];
  /** archives whose data is downloaded and decrypted */
  data: Step[];
}

export interface ServerEvidence {
  server: string;
  listing: Listing;
  /** the listing itself failed (credentials, network) */
  listError?: string;
  manifests: ManifestCheck[];
  data: DataCheck[];
}

export type CheckName = 'store' | 'age' | 'full' | 'chain' | 'manifest' | 'data' | 'totals';

export interface Finding {
  check: CheckName;
  level: 'error' | 'warning';
  message: string;
}

export interface ServerVerdict {
  server: string;
  ok: boolean;
  newest?: { snapshot: string; kind: Step['kind']; key: string; at: string; ageHours: number };
  full?: { snapshot: string; at: string; ageDays: number };
  chain?: { chainId: string; archives: number; complete: boolean };
  totals?: Totals & { previous?: Totals };
  /** manifests decrypted, archives read */
  checked: { manifests: number; archives: number };
  findings: Finding[];
}

/** When the archive came to be, as far as the store can tell: never later than the store took it. */
function archiveTime(s: Step): Date {
  const named = dateOfSnapshotId(s.snapshot);
  return s.modified && s.modified.getTime() < named.getTime() ? s.modified : named;
}

const byTime = (a: Step, b: Step) => archiveTime(a).getTime() - archiveTime(b).getTime() || (a.snapshot < b.snapshot ? -1 : a.snapshot > b.snapshot ? 1 : a.key < b.key ? -1 : 1);

export interface PlanOptions {
  /** every archive on the path (otherwise the newest and a sample) */
  readData: boolean;
  /** archives read when not readData: the newest, then others of the path picked by `pick` */
  sample: number;
  /** picks an index below n (the cron job's randomness; tests pass a fixed one) */
  pick?: (n: number) => number;
}

export function watchPlan(listing: Listing, o: PlanOptions): WatchPlan {
  const all = [...listing.archives].sort(byTime);
  const newest = all[all.length - 1];
  if (!newest) return { chain: [], data: [] };
  const chain = all.filter((a) => a.chainId === newest.chainId);
  const path = reachable(chain).find((r) => r.steps[r.steps.length - 1].key === newest.key)?.steps;
  const previous = [...all].reverse().find((a) => a.snapshot < newest.snapshot);
  const previousPath = previous && reachable(all.filter((a) => a.chainId === previous.chainId)).find((r) => r.steps[r.steps.length - 1].key === previous.key)?.steps;
  let data: Step[];
  if (o.readData) data = path ?? chain;
  else {
    const rest = (path ?? chain).filter((s) => s.key !== newest.key);
    data = [newest];
    const pick = o.pick ?? ((n: number) => Math.floor(Math.random() * n));
    while (data.length < o.sample && rest.length) data.push(rest.splice(pick(rest.length), 1)[0]);
  }
  return { newest, chain, path, previous, previousPath, data };
}

const fmtH = (h: number) => (h < 48 ? `${h.toFixed(1)} h` : `${(h / 24).toFixed(1)} days`);
const pct = (a: number, b: number) => `${Math.round((1 - a / b) * 100)}%`;

/** The findings for one server: what the plan gathered, the schedule, the time. */
export function judge(ev: ServerEvidence, plan: WatchPlan, policy: WatchPolicy, now: Date): ServerVerdict {
  const findings: Finding[] = [];
  const err = (check: CheckName, message: string) => findings.push({ check, level: 'error', message });
  const warn = (check: CheckName, message: string) => findings.push({ check, level: 'warning', message });
  const v: ServerVerdict = { server: ev.server, ok: false, checked: { manifests: ev.manifests.length, archives: ev.data.length }, findings };
  if (ev.listError) {
    err('store', `cannot list the store: ${ev.listError}`);
    return v;
  }
  const { newest } = plan;
  if (!newest) {
    err('store', 'no complete archive (archive + manifest) in the store');
    return v;
  }
  const slack = policy.slackHours * HOUR;
  const ageOf = (s: Step) => now.getTime() - archiveTime(s).getTime();

  // age of the newest archive against the schedule
  const everyDays = policy.incrementalEveryDays ?? policy.fullEveryDays;
  const age = ageOf(newest);
  v.newest = { snapshot: newest.snapshot, kind: newest.kind, key: newest.key, at: archiveTime(newest).toISOString(), ageHours: age / HOUR };
  if (age > everyDays * DAY + slack)
    err('age', `stale: the newest archive (${newest.snapshot}) is ${fmtH(age / HOUR)} old; one is due every ${everyDays} day(s) (+${policy.slackHours} h slack): the Pi has stopped uploading`);

  // a full within fullEveryDays (+ slack)
  const fulls = ev.listing.archives.filter((a) => a.kind === 'full').sort(byTime);
  const full = fulls[fulls.length - 1];
  if (!full) err('full', 'no full archive in the store');
  else {
    const fa = ageOf(full);
    v.full = { snapshot: full.snapshot, at: archiveTime(full).toISOString(), ageDays: fa / DAY };
    if (fa > policy.fullEveryDays * DAY + slack)
      err('full', `the newest full archive (${full.snapshot}) is ${(fa / DAY).toFixed(1)} days old; one is due every ${policy.fullEveryDays} days (+${policy.slackHours} h slack): once lifecycle expires the last full, nothing restores`);
  }

  // the chain from its full to the newest archive: every link in the store
  const byKey = new Map(plan.chain.map((s) => [s.key, s]));
  v.chain = { chainId: newest.chainId, archives: plan.path?.length ?? 0, complete: plan.path !== undefined };
  if (!plan.path) {
    let at: Step | undefined = newest;
    const seen = new Set<string>();
    while (at && at.kind === 'incremental' && !seen.has(at.key)) {
      seen.add(at.key);
      const base: Step | undefined = plan.chain.find((s) => s.snapshot === at!.base);
      if (!base) {
        err('chain', `chain ${newest.chainId} is broken: ${at.snapshot} builds on ${at.base}, which is not in the store; the newest point (${newest.snapshot}) cannot be restored`);
        break;
      }
      at = base;
    }
    if (at?.kind === 'full' && findings.every((f) => f.check !== 'chain')) err('chain', `chain ${newest.chainId}: the newest point (${newest.snapshot}) does not lead back to its full`);
  }
  for (const m of ev.listing.missing)
    if (m.includes(`/${newest.chainId}/`)) err('chain', `the archive of manifest ${m} is missing from the store (chain ${newest.chainId})`);
  for (const o of ev.listing.orphans)
    if (o.includes(`/${newest.chainId}/`)) warn('chain', `archive without a manifest (an upload that did not finish): ${o}`);

  // every manifest of the chain decrypts and describes its archive; the archives read match them
  for (const m of ev.manifests) {
    if (m.error) err('manifest', `${m.key}: ${m.error}`);
    else if (m.header && byKey.has(m.archive) && m.header.archive.bytes !== byKey.get(m.archive)!.size)
      err('manifest', `${m.archive}: ${byKey.get(m.archive)!.size} bytes in the store, ${m.header.archive.bytes} uploaded (truncated or replaced)`);
  }
  for (const d of ev.data) if (d.error) err('data', `${d.key}: ${d.error}`);

  // the newest manifest's totals against the point before it
  const totalsOf = (s?: Step) => (s ? ev.manifests.find((m) => m.archive === s.key)?.totals : undefined);
  const cur = totalsOf(newest);
  const prev = totalsOf(plan.previous);
  if (cur) {
    v.totals = { ...cur, ...(prev ? { previous: prev } : {}) };
    const floor = 1 - policy.dropRatio;
    if (prev && prev.files > 0 && cur.files < prev.files * floor)
      err('totals', `the newest manifest (${newest.snapshot}) lists ${cur.files} files, ${plan.previous!.snapshot} listed ${prev.files} (−${pct(cur.files, prev.files)}): data vanished on the server or the pull read nothing`);
    if (prev && prev.bytes > 0 && cur.bytes < prev.bytes * floor)
      err('totals', `the newest manifest (${newest.snapshot}) holds ${cur.bytes} bytes, ${plan.previous!.snapshot} held ${prev.bytes} (−${pct(cur.bytes, prev.bytes)})`);
    if (!prev && cur.files === 0) warn('totals', `the newest manifest (${newest.snapshot}) lists no files`);
  }
  v.ok = findings.every((f) => f.level !== 'error');
  return v;
}
