// What both sides agree on about each kind of offsite store: whether it needs a credentials file
// (the writer's on the Pi, a read-only one for the owner's restore) and how its place is said to
// people. The runtime's kinds (runtime/offsite/target-*.ts: open, put-once, list, get) take their
// credentials need from here; the admin side (install-runtime, the recovery kit) asks here instead
// of testing offsite.type. Pure.
import type { DirTargetSpec, OffsiteSpec, S3TargetSpec } from './inventory-schema.ts';

interface OffsiteKindContract<S extends OffsiteSpec> {
  /** 'file': it needs a credentials file (paths.awsCredentialsFile on the Pi, --credentials for a restore) */
  credentials: 'none' | 'file';
  /** where the objects are, for people: "s3://bucket/prefix/ (eu-west-1)", "folder /srv/offsite" */
  describe(spec: S): string;
  /** the start of every object's address, and the key prefix under it: ("s3://bucket/", "pv/"), ("/srv/offsite/", "") */
  keyRoot(spec: S): { root: string; prefix: string };
}

const s3: OffsiteKindContract<S3TargetSpec> = {
  credentials: 'file',
  describe: (o) => `s3://${o.bucket}/${o.prefix} (${o.region})`,
  keyRoot: (o) => ({ root: `s3://${o.bucket}/`, prefix: o.prefix }),
};

const dir: OffsiteKindContract<DirTargetSpec> = {
  credentials: 'none',
  describe: (o) => `folder ${o.path}`,
  keyRoot: (o) => ({ root: `${o.path.replace(/\/$/, '')}/`, prefix: '' }),
};

/** One entry per kind of the inventory's offsite union (the type makes a missing one a compile error). */
export const OFFSITE_KINDS: { [T in OffsiteSpec['type']]: OffsiteKindContract<Extract<OffsiteSpec, { type: T }>> } = { s3, dir };

const kindOf = (spec: OffsiteSpec) => OFFSITE_KINDS[spec.type] as OffsiteKindContract<OffsiteSpec>;

/** The store needs a credentials file (the Pi's writer credentials; a read-only pair for a restore). */
export const needsCredentialsFile = (spec: OffsiteSpec): boolean => kindOf(spec).credentials === 'file';

export const describeOffsite = (spec: OffsiteSpec): string => kindOf(spec).describe(spec);

export const offsiteKeyRoot = (spec: OffsiteSpec): { root: string; prefix: string } => kindOf(spec).keyRoot(spec);
