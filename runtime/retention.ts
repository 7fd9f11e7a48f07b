// Local retention, decided purely: borg-prune semantics over snapshot ids (UTC timestamps).
//
// For each rule in order (hourly, daily, weekly, monthly), walk the snapshots newest first;
// the first snapshot seen in each new period (hour / day / ISO week / month, in UTC) is kept
// by that rule unless an earlier rule already kept it (a snapshot already kept still "uses up"
// its period, as in borg). When a rule has not reached its count when the list runs out, the
// oldest snapshot is kept too ("hourly[oldest]"), again as borg does. On top of the rules:
// the newest complete snapshot is never deleted, nor the newest one (`latest`, even if partial),
// nor anything dated after `now` (a clock that jumped back must not cost us backups).
import type { RetentionSpec } from '../contract/inventory-schema.ts';
import { dateOfSnapshotId } from '../contract/disk-layout.ts';

export interface SnapshotRef {
  id: string;
  /** flagged partial (rsync 23/24 or a failed dump) */
  partial?: boolean;
}

export interface RetentionDecision {
  id: string;
  keep: boolean;
  /** e.g. 'daily #2', 'monthly[oldest] #3', 'newest complete', 'in the future', 'no rule keeps it' */
  reason: string;
}

const RULES = ['hourly', 'daily', 'weekly', 'monthly'] as const;
export type Rule = (typeof RULES)[number];

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** ISO 8601 week-numbering year and week, e.g. '2024-W01' (UTC). */
export function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7; // Mon=1..Sun=7
  t.setUTCDate(t.getUTCDate() + 4 - day); // Thursday of this week decides the year
  const year = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7);
  return `${year}-W${pad(week)}`;
}

export function periodOf(rule: Rule, d: Date): string {
  const y = d.getUTCFullYear();
  const m = pad(d.getUTCMonth() + 1);
  const day = pad(d.getUTCDate());
  switch (rule) {
    case 'hourly':
      return `${y}-${m}-${day}T${pad(d.getUTCHours())}`;
    case 'daily':
      return `${y}-${m}-${day}`;
    case 'weekly':
      return isoWeek(d);
    case 'monthly':
      return `${y}-${m}`;
  }
}

/** The newest complete and the newest snapshot not dated after now; `items` newest first. */
function newestOf(items: (SnapshotRef & { date: Date })[], now: Date): { newestComplete?: string; newest?: string } {
  const present = items.filter((s) => s.date.getTime() <= now.getTime());
  return { newestComplete: present.find((s) => !s.partial)?.id, newest: present[0]?.id };
}

const newestFirst = (snapshots: SnapshotRef[]) =>
  snapshots
    .map((s) => ({ ...s, date: dateOfSnapshotId(s.id) }))
    .sort((a, b) => b.date.getTime() - a.date.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));

/**
 * Decide which snapshots of one server to keep. Input order does not matter; the result is
 * newest first. Ids that are not snapshot ids throw (the caller lists only real snapshots).
 */
export function planRetention(snapshots: SnapshotRef[], retention: RetentionSpec, now: Date): RetentionDecision[] {
  const items = newestFirst(snapshots);
  const why = new Map<string, string>();

  for (const s of items) if (s.date.getTime() > now.getTime()) why.set(s.id, 'in the future');
  const { newestComplete, newest } = newestOf(items, now);
  if (newestComplete) why.set(newestComplete, 'newest complete');
  // `latest` points at the newest snapshot even when it is partial: never leave it dangling
  if (newest && !why.has(newest)) why.set(newest, 'newest (partial)');

  const present = items.filter((s) => s.date.getTime() <= now.getTime());
  const ruleKept = new Set<string>();
  for (const rule of RULES) {
    const n = retention[rule];
    if (!n) continue;
    let last: string | undefined;
    let count = 0;
    let lastSeen: (typeof items)[number] | undefined;
    for (const s of present) {
      lastSeen = s;
      const period = periodOf(rule, s.date);
      if (period === last) continue;
      last = period;
      if (ruleKept.has(s.id)) continue;
      ruleKept.add(s.id);
      count++;
      why.set(s.id, `${rule} #${count}`);
      if (count === n) break;
    }
    if (lastSeen && count < n && !ruleKept.has(lastSeen.id)) {
      ruleKept.add(lastSeen.id);
      count++;
      why.set(lastSeen.id, `${rule}[oldest] #${count}`);
    }
  }

  return items.map((s) => {
    const reason = why.get(s.id);
    return reason ? { id: s.id, keep: true, reason } : { id: s.id, keep: false, reason: 'no rule keeps it' };
  });
}

/**
 * The snapshots that may go to make room for the pull about to make `newId`, in the order to
 * delete them (oldest first): those the rules drop once `newId` exists, i.e. what retention
 * after this pull deletes anyway, only sooner. Never the newest complete snapshot nor the newest
 * one that exists now: the pull may still fail, and then they are what the server has. Nothing
 * beyond the rules: the configured counts are the history the owner was promised, so a disk too
 * small for them is refused with the numbers rather than thinned silently.
 */
export function planRoomFor(snapshots: SnapshotRef[], retention: RetentionSpec, newId: string, now: Date): RetentionDecision[] {
  const existing = snapshots.filter((s) => s.id !== newId);
  const { newestComplete, newest } = newestOf(newestFirst(existing), now);
  const droppedNow = new Set(planRetention(existing, retention, now).filter((d) => !d.keep).map((d) => d.id));
  return planRetention([...existing, { id: newId }], retention, now)
    .filter((d) => !d.keep && d.id !== newestComplete && d.id !== newest)
    .reverse()
    .map((d) => ({ ...d, reason: droppedNow.has(d.id) ? d.reason : `${d.reason} once ${newId} exists` }));
}
