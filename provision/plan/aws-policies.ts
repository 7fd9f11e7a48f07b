// The policies of the offsite store, as pure functions of the inventory's S3 target and the
// account: what the Pi may do (add objects, nothing else), what the owner's restore user may do
// (read), and the bucket policy that holds even if the Pi's user is given too much by mistake.
import type { S3TargetSpec } from '../inventory/schema.ts';
import { chainPrefixes } from './s3-layout.ts';

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal?: '*' | { AWS: string | string[] };
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: '2012-10-17';
  Statement: PolicyStatement[];
}

export interface PolicyParams {
  target: S3TargetSpec;
  accountId: string;
  /** the Pi's IAM user name (defaults.writerUserName) */
  writerUser: string;
  /** pi name: makes the bucket policy's Sids unique when several Pis share a bucket */
  piName: string;
}

/** aws, aws-cn or aws-us-gov, from the region. */
export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

export function bucketArn(t: S3TargetSpec): string {
  return `arn:${partitionOf(t.region)}:s3:::${t.bucket}`;
}

export function userArn(t: S3TargetSpec, accountId: string, userName: string): string {
  return `arn:${partitionOf(t.region)}:iam::${accountId}:user/${userName}`;
}

/** Where the Pi may write: only the layout's three kind prefixes, so lifecycle covers every object. */
export function writableObjectArns(t: S3TargetSpec): string[] {
  const p = chainPrefixes(t.prefix);
  return [p.full, p.incr, p.manifest].map((k) => `${bucketArn(t)}/${k}*`);
}

/** The actions the Pi needs: PutObject covers CreateMultipartUpload, UploadPart and Complete. */
export const WRITER_ACTIONS = ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'] as const;

/** The Sids pullvault owns in the bucket policy; statements with other Sids are left alone. */
export function ownedSids(piName: string): string[] {
  const tag = piName.replace(/[^A-Za-z0-9]/g, '');
  return ['WriterMustUseIfNoneMatch', 'WriterMayDoNothingElse', 'WriterConfinedToItsPrefix', 'DenyInsecureTransport'].map((s) => `Pullvault${tag}${s}`);
}

/**
 * The Pi's identity policy: PutObject only with If-None-Match (create, never overwrite), the
 * multipart steps that cannot carry the header (CreateMultipartUpload, UploadPart report
 * s3:ObjectCreationOperation=false), and aborting/listing the parts of its own uploads.
 */
export function writerIdentityPolicy(p: Pick<PolicyParams, 'target'>): PolicyDocument {
  const res = writableObjectArns(p.target);
  return {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'CreateOnlyWithIfNoneMatch', Effect: 'Allow', Action: 's3:PutObject', Resource: res, Condition: { Null: { 's3:if-none-match': 'false' } } },
      {
        Sid: 'MultipartStepsThatCannotCarryTheHeader',
        Effect: 'Allow',
        Action: 's3:PutObject',
        Resource: res,
        Condition: { Bool: { 's3:ObjectCreationOperation': 'false' } },
      },
      { Sid: 'MultipartHousekeeping', Effect: 'Allow', Action: ['s3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], Resource: res },
    ],
  };
}

/**
 * The bucket policy statements pullvault owns: explicit Denies for the Pi's user that hold
 * whatever its identity policy says (an admin's `s3:*` mistake included), and no plain HTTP.
 */
export function bucketPolicyStatements(p: PolicyParams): PolicyStatement[] {
  const [mustIfNoneMatch, nothingElse, confined, tls] = ownedSids(p.piName);
  const writer = { AWS: userArn(p.target, p.accountId, p.writerUser) };
  const bucket = bucketArn(p.target);
  const both = [bucket, `${bucket}/*`];
  return [
    {
      Sid: mustIfNoneMatch,
      Effect: 'Deny',
      Principal: writer,
      Action: 's3:PutObject',
      Resource: `${bucket}/*`,
      Condition: { Null: { 's3:if-none-match': 'true' }, Bool: { 's3:ObjectCreationOperation': 'true' } },
    },
    { Sid: nothingElse, Effect: 'Deny', Principal: writer, NotAction: [...WRITER_ACTIONS], Resource: both },
    { Sid: confined, Effect: 'Deny', Principal: writer, Action: 's3:*', NotResource: writableObjectArns(p.target) },
    { Sid: tls, Effect: 'Deny', Principal: '*', Action: 's3:*', Resource: both, Condition: { Bool: { 'aws:SecureTransport': 'false' } } },
  ];
}

/** The bucket policy with only pullvault's statements (what a new bucket gets). */
export function bucketPolicy(p: PolicyParams): PolicyDocument {
  return { Version: '2012-10-17', Statement: bucketPolicyStatements(p) };
}

/**
 * Merges pullvault's statements into an existing policy: statements with other Sids (or none)
 * are kept as they are and where they are; ours replace their old versions, appended at the end.
 */
export function mergeBucketPolicy(current: PolicyDocument | null, p: PolicyParams): PolicyDocument {
  const owned = new Set(ownedSids(p.piName));
  const foreign = (current?.Statement ?? []).filter((s) => !(s.Sid && owned.has(s.Sid)));
  return { Version: '2012-10-17', Statement: [...foreign, ...bucketPolicyStatements(p)] };
}

/** Read-only access to the prefix for the owner's admin machine (restore, verify). Never on the Pi. */
export function restoreIdentityPolicy(p: Pick<PolicyParams, 'target'>): PolicyDocument {
  const t = p.target;
  const bucket = bucketArn(t);
  return {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'ReadArchives', Effect: 'Allow', Action: ['s3:GetObject', 's3:GetObjectVersion', 's3:GetObjectAttributes'], Resource: `${bucket}/${t.prefix}*` },
      {
        Sid: 'ListPrefix',
        Effect: 'Allow',
        Action: ['s3:ListBucket', 's3:ListBucketVersions'],
        Resource: bucket,
        Condition: { StringLike: { 's3:prefix': [`${t.prefix}*`] } },
      },
      { Sid: 'BucketLocation', Effect: 'Allow', Action: 's3:GetBucketLocation', Resource: bucket },
    ],
  };
}

// ---- normalization: compare what AWS returns with what we want, whatever its formatting

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v as object)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  return v;
}

/** Key-sorted, 2-space JSON with a final newline: the form diffs and files use. */
export function normalizedJson(v: unknown): string {
  return JSON.stringify(sortKeys(v), null, 2) + '\n';
}

const LISTS = ['Action', 'NotAction', 'Resource', 'NotResource'] as const;
const asList = (v: string | string[]): string[] => [...new Set(Array.isArray(v) ? v : [v])].sort();

/** One statement in a canonical form: lists sorted, single values as lists, so equal meaning compares equal. */
export function canonicalStatement(s: PolicyStatement): PolicyStatement {
  const out: Record<string, unknown> = { ...s };
  for (const k of LISTS) if (s[k] !== undefined) out[k] = asList(s[k]!);
  if (s.Principal && s.Principal !== '*') out.Principal = { AWS: asList(s.Principal.AWS) };
  if (s.Condition)
    out.Condition = Object.fromEntries(
      Object.entries(s.Condition).map(([op, kv]) => [op, Object.fromEntries(Object.entries(kv).map(([k, v]) => [k, asList(v)]))]),
    );
  return sortKeys(out) as PolicyStatement;
}

export function canonicalPolicy(p: PolicyDocument): PolicyDocument {
  return { Version: p.Version, Statement: p.Statement.map(canonicalStatement) };
}

export function samePolicy(a: PolicyDocument | null, b: PolicyDocument | null): boolean {
  if (!a || !b) return a === b;
  return normalizedJson(canonicalPolicy(a)) === normalizedJson(canonicalPolicy(b));
}

/** Parses a policy as AWS returns it (IAM URL-encodes inline policies). */
export function parsePolicy(text: string | undefined | null): PolicyDocument | null {
  if (!text) return null;
  let t = text.trim();
  if (t.startsWith('%7B') || t.startsWith('%7b')) t = decodeURIComponent(t);
  const doc = JSON.parse(t) as PolicyDocument;
  if (!Array.isArray(doc.Statement)) doc.Statement = doc.Statement ? [doc.Statement as unknown as PolicyStatement] : [];
  return doc;
}
