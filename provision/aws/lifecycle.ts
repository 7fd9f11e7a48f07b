// The bucket's lifecycle rules for one Pi, by prefix (never by tag — the Pi cannot tag):
// each kind of object expires after its retention, old versions and delete markers are cleaned
// up, incomplete multipart uploads are aborted. Pure; rules of others are kept untouched.
//
// Lifecycle expires each object by its own age, but a restore point needs its chain's full and
// every incremental before it. retentionDays.incremental is therefore how long every restore
// point stays restorable, and incremental objects live that long plus the longest a chain can
// span (see incrementalLifecycleDays).
import type { S3TargetSpec } from '../../contract/inventory-schema.ts';
import { manifestRetentionDays } from '../../contract/inventory-defaults.ts';
import { chainPrefixes } from '../../contract/s3-layout.ts';

/** Days a version stays after it stopped being current (an expiry or an admin's delete): a grace period. */
const NONCURRENT_DAYS = 30;
/** Incomplete multipart uploads (a Pi that died mid-upload) are aborted after this many days. */
const ABORT_MULTIPART_DAYS = 7;

/**
 * How much longer than fullEveryDays a chain can span, from its full's upload to the end of the
 * upload of its last incremental: the Pi sends no incremental once the chain's full is
 * fullEveryDays old less an hour (runtime/offsite/schedule.ts), and that last incremental's
 * upload must finish within the rest of this day.
 */
export const CHAIN_SLACK_DAYS = 1;

/** The longest a chain can span, in days: the age of its last incremental's base chain at upload. */
export function maxChainDays(fullEveryDays: number): number {
  return fullEveryDays + CHAIN_SLACK_DAYS;
}

/**
 * Days an incremental object is kept: the first incremental of a chain must still exist when
 * the chain's last point is retentionDays.incremental days old.
 */
export function incrementalLifecycleDays(t: S3TargetSpec, fullEveryDays: number): number {
  return t.retentionDays.incremental + maxChainDays(fullEveryDays);
}

export interface LifecycleRule {
  ID: string;
  Status: 'Enabled' | 'Disabled';
  Filter: { Prefix: string };
  Expiration?: { Days?: number; ExpiredObjectDeleteMarker?: boolean };
  NoncurrentVersionExpiration?: { NoncurrentDays: number };
  AbortIncompleteMultipartUpload?: { DaysAfterInitiation: number };
}

export interface LifecycleConfiguration {
  Rules: LifecycleRule[];
}

/** Rule ids pullvault owns start with this; other rules are left alone. */
export function ruleIdPrefix(piName: string): string {
  return `pullvault-${piName}-`;
}

export function lifecycleRules(t: S3TargetSpec, piName: string, fullEveryDays: number): LifecycleRule[] {
  const p = chainPrefixes(t.prefix);
  const id = ruleIdPrefix(piName);
  const expire = (kind: string, prefix: string, days: number): LifecycleRule => ({
    ID: `${id}${kind}`,
    Status: 'Enabled',
    Filter: { Prefix: prefix },
    Expiration: { Days: days },
  });
  return [
    expire('full', p.full, t.retentionDays.full),
    expire('incr', p.incr, incrementalLifecycleDays(t, fullEveryDays)),
    expire('manifest', p.manifest, manifestRetentionDays(t)),
    {
      ID: `${id}cleanup`,
      Status: 'Enabled',
      Filter: { Prefix: t.prefix },
      Expiration: { ExpiredObjectDeleteMarker: true },
      NoncurrentVersionExpiration: { NoncurrentDays: NONCURRENT_DAYS },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: ABORT_MULTIPART_DAYS },
    },
  ];
}

/** The configuration for a bucket used only by this Pi. */
export function lifecycleConfiguration(t: S3TargetSpec, piName: string, fullEveryDays: number): LifecycleConfiguration {
  return { Rules: lifecycleRules(t, piName, fullEveryDays) };
}

/** Reduces a rule as the SDK returns it to the fields we manage, in one shape (Prefix → Filter.Prefix). */
export function canonicalRule(r: Record<string, unknown>): Record<string, unknown> {
  const filter = r.Filter as { Prefix?: string } | undefined;
  const out: Record<string, unknown> = { ID: r.ID, Status: r.Status, Filter: { Prefix: filter?.Prefix ?? (r.Prefix as string | undefined) ?? '' } };
  const e = r.Expiration as { Days?: number; ExpiredObjectDeleteMarker?: boolean; Date?: unknown } | undefined;
  if (e && (e.Days !== undefined || e.ExpiredObjectDeleteMarker !== undefined || e.Date !== undefined))
    out.Expiration = Object.fromEntries(Object.entries({ Days: e.Days, ExpiredObjectDeleteMarker: e.ExpiredObjectDeleteMarker, Date: e.Date }).filter(([, v]) => v !== undefined));
  const n = r.NoncurrentVersionExpiration as { NoncurrentDays?: number } | undefined;
  if (n?.NoncurrentDays !== undefined) out.NoncurrentVersionExpiration = { NoncurrentDays: n.NoncurrentDays };
  const a = r.AbortIncompleteMultipartUpload as { DaysAfterInitiation?: number } | undefined;
  if (a?.DaysAfterInitiation !== undefined) out.AbortIncompleteMultipartUpload = { DaysAfterInitiation: a.DaysAfterInitiation };
  for (const k of ['Transitions', 'NoncurrentVersionTransitions'] as const) if (Array.isArray(r[k]) && (r[k] as unknown[]).length) out[k] = r[k];
  return out;
}

/** Our rules replace those with our id prefix; everyone else's rules stay, in their order, first. */
export function mergeLifecycle(current: Record<string, unknown>[], t: S3TargetSpec, piName: string, fullEveryDays: number): { Rules: Record<string, unknown>[] } {
  const mine = ruleIdPrefix(piName);
  const foreign = current.filter((r) => !String(r.ID ?? '').startsWith(mine));
  return { Rules: [...foreign, ...lifecycleRules(t, piName, fullEveryDays)] as unknown as Record<string, unknown>[] };
}

/** Minimum storage duration (days) billed per class: expiring sooner still costs the full period. */
const MIN_STORAGE_DAYS: Record<string, number> = {
  STANDARD: 0,
  INTELLIGENT_TIERING: 0,
  STANDARD_IA: 30,
  ONEZONE_IA: 30,
  GLACIER_IR: 90,
  GLACIER: 90,
  DEEP_ARCHIVE: 180,
};

/** Warnings about the storage class against the retention (objects are uploaded straight into it). */
export function storageClassWarnings(t: S3TargetSpec, fullEveryDays: number): string[] {
  const cls = t.storageClass ?? 'STANDARD';
  const min = MIN_STORAGE_DAYS[cls] ?? 0;
  const out: string[] = [];
  const r: [string, number, string][] = [
    ['full', t.retentionDays.full, `${t.retentionDays.full}`],
    ['incremental', incrementalLifecycleDays(t, fullEveryDays), `${t.retentionDays.incremental}, kept ${incrementalLifecycleDays(t, fullEveryDays)} days`],
    ['manifest', manifestRetentionDays(t), `${manifestRetentionDays(t)}`],
  ];
  for (const [k, d, shown] of r)
    if (d < min) out.push(`offsite.retentionDays.${k} (${shown}) is below ${cls}'s minimum storage duration (${min} days): those objects are billed for ${min} days anyway`);
  if (cls === 'GLACIER' || cls === 'DEEP_ARCHIVE') out.push(`offsite.storageClass ${cls}: archives must be restored (hours) before a restore can read them`);
  return out;
}
