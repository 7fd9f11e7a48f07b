// Pure: does this run send a full archive, an incremental, or nothing?
// The lifecycle rules (provision/aws/lifecycle.ts) keep incrementals for as long as a chain
// can span: no incremental is sent once the chain's full is fullEveryDays old (less SLACK),
// whatever happened since — a full that keeps failing means no new point, never a longer chain.
import type { UploadRecord } from './uploads.ts';

export type Decision =
  | { kind: 'full'; reason: string }
  | { kind: 'incremental'; base: UploadRecord; reason: string }
  | { kind: 'skipped'; reason: string };

const DAY = 86_400_000;
/** runs are cron-driven: "every day" must not slip a day because today's run started a minute earlier */
const SLACK = 3_600_000;

export interface ScheduleInput {
  /** this server's upload records, any order */
  records: UploadRecord[];
  /** the snapshot this run would send */
  snapshot: string;
  now: Date;
  fullEveryDays: number;
  incrementalEveryDays?: number;
  /** whether the base snapshot's manifest is still on the disk (local retention may have pruned it) */
  haveSnapshot: (id: string) => boolean;
}

export function decide(i: ScheduleInput): Decision {
  const recs = [...i.records].sort((a, b) => a.uploadedAt.localeCompare(b.uploadedAt));
  const lastFull = [...recs].reverse().find((r) => r.kind === 'full');
  const last = recs[recs.length - 1];
  if (!lastFull || !last) return { kind: 'full', reason: 'no full archive uploaded yet' };
  const since = (r: UploadRecord) => i.now.getTime() - Date.parse(r.uploadedAt);
  if (since(lastFull) + SLACK >= i.fullEveryDays * DAY) return { kind: 'full', reason: `last full is ${(since(lastFull) / DAY).toFixed(1)} days old (every ${i.fullEveryDays})` };
  if (last.snapshot === i.snapshot) return { kind: 'skipped', reason: `snapshot ${i.snapshot} already uploaded` };
  if (last.snapshot > i.snapshot) return { kind: 'skipped', reason: `snapshot ${i.snapshot} is older than the last uploaded ${last.snapshot}` };
  if (i.incrementalEveryDays === undefined) return { kind: 'skipped', reason: `fulls only, next in ${((i.fullEveryDays * DAY - since(lastFull)) / DAY).toFixed(1)} days` };
  if (since(last) + SLACK < i.incrementalEveryDays * DAY) return { kind: 'skipped', reason: `last upload ${(since(last) / 3_600_000).toFixed(1)} h ago (incremental every ${i.incrementalEveryDays} days)` };
  if (!i.haveSnapshot(last.snapshot)) return { kind: 'full', reason: `base snapshot ${last.snapshot} is no longer on the disk` };
  return { kind: 'incremental', base: last, reason: `changes since ${last.snapshot}` };
}
