// The policies of the offsite store, as pure functions of the inventory's S3 target and the
// account: what the Pi may do (add objects, nothing else), what the owner's restore user may do
// (read), and the bucket policy that holds even if the Pi's user is given too much by mistake.
import type { S3TargetSpec } from '../../contract/inventory-schema.ts';
import { chainPrefixes } from '../../contract/s3-layout.ts';

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
  /** the writer's IAM unique id (AIDA…), read at provision time: a recreated user of the same name has another */
  writerUserId: string;
  /** the bucket's default encryption, read at provision time */
  encryption: BucketEncryption;
}

/** A bucket's default encryption: SSE-S3, or SSE-KMS with the AWS managed key (no ARN) or a customer-managed one. */
export interface BucketEncryption {
  algorithm: 'AES256' | 'aws:kms' | 'aws:kms:dsse';
  /** the customer-managed KMS key, as a key ARN */
  kmsKeyArn?: string;
}

export const SSE_S3: BucketEncryption = { algorithm: 'AES256' };

/**
 * The bucket default as GetBucketEncryption reports it, with the key as an ARN (IAM names keys
 * only by key ARN). A bare key id is completed with the bucket's region and account; an alias
 * cannot be resolved without KMS, so it is refused with what to do.
 */
export function bucketEncryptionFrom(algorithm: string | undefined, kmsMasterKeyId: string | undefined, t: S3TargetSpec, accountId: string): BucketEncryption {
  if (!algorithm || algorithm === 'AES256') return SSE_S3;
  if (algorithm !== 'aws:kms' && algorithm !== 'aws:kms:dsse') throw new Error(`bucket ${t.bucket}: default encryption ${algorithm} is not one pullvault knows`);
  const id = kmsMasterKeyId?.trim();
  if (!id || id === 'alias/aws/s3' || /:alias\/aws\/s3$/.test(id)) return { algorithm };
  if (/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/.test(id)) return { algorithm, kmsKeyArn: id };
  if (/^(mrk-)?[A-Za-z0-9-]{20,}$/.test(id)) return { algorithm, kmsKeyArn: `arn:${partitionOf(t.region)}:kms:${t.region}:${accountId}:key/${id}` };
  throw new Error(
    `bucket ${t.bucket}: default encryption names the KMS key as "${id}"; pullvault grants KMS use by key ARN — set the bucket default to the key's ARN (arn:…:kms:…:key/…)`,
  );
}

/** Archive storage classes: objects in them must be restored (s3:RestoreObject) before they can be read. */
const ARCHIVE_STORAGE_CLASSES = ['GLACIER', 'DEEP_ARCHIVE', 'INTELLIGENT_TIERING'] as const;

/** The storage class every upload lands in: the inventory's, STANDARD when unset. */
function uploadStorageClass(t: S3TargetSpec): string {
  return t.storageClass ?? 'STANDARD';
}

/** aws, aws-cn or aws-us-gov, from the region. */
function partitionOf(region: string): string {
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
function writableObjectArns(t: S3TargetSpec): string[] {
  const p = chainPrefixes(t.prefix);
  return [p.full, p.incr, p.manifest].map((k) => `${bucketArn(t)}/${k}*`);
}

/** The actions the Pi needs: PutObject covers CreateMultipartUpload, UploadPart and Complete. */
const WRITER_ACTIONS = ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'] as const;

/** The Sids pullvault owns in the bucket policy; statements with other Sids are left alone. */
export function ownedSids(piName: string): string[] {
  const tag = piName.replace(/[^A-Za-z0-9]/g, '');
  return [
    'WriterMustUseIfNoneMatch',
    'WriterMayDoNothingElse',
    'WriterConfinedToItsPrefix',
    'DenyInsecureTransport',
    'WriterIsTheProvisionedUser',
    'WriterNoCustomerKeys',
    'WriterEncryptionPinned',
    'WriterKmsKeyPinned',
    'WriterStorageClassPinned',
  ].map((s) => `Pullvault${tag}${s}`);
}

// Condition keys of the headers a write may carry. AWS puts a header's key in the request
// context only when the request carries the header (S3 "Amazon S3 condition key examples").
const SSE = 's3:x-amz-server-side-encryption';
const SSE_KMS_KEY = 's3:x-amz-server-side-encryption-aws-kms-key-id';
const SSE_C = 's3:x-amz-server-side-encryption-customer-algorithm';
const STORAGE_CLASS = 's3:x-amz-storage-class';

type Conditions = NonNullable<PolicyStatement['Condition']>;

/**
 * What the writer's puts may say about encryption and storage class, for its identity policy's
 * Allows: no SSE-C header at all; SSE and storage-class headers, when sent, equal to the bucket
 * default and the configured class. `…IfExists` in an Allow is true when the key is absent (IAM
 * User Guide, "…IfExists condition operators"): a put that sends no header gets the defaults.
 */
function pinnedHeadersAllow(t: S3TargetSpec, enc: BucketEncryption): Conditions {
  return {
    Null: { [SSE_C]: 'true', ...(enc.kmsKeyArn ? {} : { [SSE_KMS_KEY]: 'true' }) },
    StringEqualsIfExists: { [SSE]: enc.algorithm, [STORAGE_CLASS]: uploadStorageClass(t), ...(enc.kmsKeyArn ? { [SSE_KMS_KEY]: enc.kmsKeyArn } : {}) },
  };
}

function withPins(c: Conditions, t: S3TargetSpec, enc: BucketEncryption): Conditions {
  const pins = pinnedHeadersAllow(t, enc);
  return { ...c, ...pins, Null: { ...c.Null, ...pins.Null } };
}

/**
 * KMS through S3 only, for objects of this bucket (S3's encryption context is the object ARN,
 * or the bucket ARN with S3 Bucket Keys): the key cannot be used directly, nor for other buckets.
 */
function kmsThroughS3(t: S3TargetSpec, enc: BucketEncryption, sid: string, actions: string[], objectArns: string[]): PolicyStatement[] {
  if (!enc.kmsKeyArn) return [];
  return [
    {
      Sid: sid,
      Effect: 'Allow',
      Action: actions,
      Resource: enc.kmsKeyArn,
      Condition: {
        StringEquals: { 'kms:ViaService': `s3.${t.region}.amazonaws.com` },
        StringLike: { 'kms:EncryptionContext:aws:s3:arn': [bucketArn(t), ...objectArns] },
      },
    },
  ];
}

/**
 * The Pi's identity policy: PutObject only with If-None-Match (create, never overwrite), the
 * multipart steps that cannot carry the header (CreateMultipartUpload, UploadPart report
 * s3:ObjectCreationOperation=false), and aborting/listing the parts of its own uploads; every
 * put with the bucket's encryption and the configured storage class. With a customer-managed
 * KMS default, the key through S3: GenerateDataKey to encrypt, and Decrypt, which S3 needs to
 * complete a multipart upload (S3 User Guide, "Multipart upload API and permissions"); reading
 * stays denied (no s3:GetObject, and the key is usable only through S3).
 */
export function writerIdentityPolicy(p: Pick<PolicyParams, 'target' | 'encryption'>): PolicyDocument {
  const t = p.target;
  const res = writableObjectArns(t);
  return {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'CreateOnlyWithIfNoneMatch', Effect: 'Allow', Action: 's3:PutObject', Resource: res, Condition: withPins({ Null: { 's3:if-none-match': 'false' } }, t, p.encryption) },
      {
        Sid: 'MultipartStepsThatCannotCarryTheHeader',
        Effect: 'Allow',
        Action: 's3:PutObject',
        Resource: res,
        // Bool in an Allow: a request without the key does not match (fails closed)
        Condition: withPins({ Bool: { 's3:ObjectCreationOperation': 'false' } }, t, p.encryption),
      },
      { Sid: 'MultipartHousekeeping', Effect: 'Allow', Action: ['s3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], Resource: res },
      ...kmsThroughS3(t, p.encryption, 'BucketKeyThroughS3', ['kms:GenerateDataKey', 'kms:Decrypt'], res),
    ],
  };
}

/**
 * The bucket policy statements pullvault owns: explicit Denies for the Pi's user that hold
 * whatever its identity policy says (an admin's `s3:*` mistake included), and no plain HTTP.
 */
function bucketPolicyStatements(p: PolicyParams): PolicyStatement[] {
  const [mustIfNoneMatch, nothingElse, confined, tls, provisioned, noSseC, sse, kmsKey, storageClass] = ownedSids(p.piName);
  const t = p.target;
  const bucket = bucketArn(t);
  const objects = `${bucket}/*`;
  const both = [bucket, objects];
  // The writer is named by aws:PrincipalArn (in the context of every signed request), not by the
  // Principal element: AWS stores a Principal user ARN as that user's unique id, so a Deny naming
  // it would not apply to a user recreated under the same name (IAM User Guide, "AWS JSON policy
  // elements: Principal"). Every user of that name is held by these denies, and one that is not
  // the provisioned user (another aws:userid) is denied everything.
  const writer = { ArnEquals: { 'aws:PrincipalArn': userArn(t, p.accountId, p.writerUser) } };
  const deny = (Sid: string, rest: Omit<PolicyStatement, 'Sid' | 'Effect' | 'Principal'>): PolicyStatement => ({
    Sid,
    Effect: 'Deny',
    Principal: '*',
    ...rest,
    Condition: { ...writer, ...rest.Condition },
  });
  // Deny …IfExists / negated operators are true when the key is absent, bare ones false (IAM User
  // Guide, "Condition operators"): each deny says explicitly whether an absent header is allowed.
  const present = (key: string) => ({ Null: { [key]: 'false' } });
  return [
    // BoolIfExists: a PutObject whose context lacks s3:ObjectCreationOperation is treated as a
    // creation, so it needs If-None-Match too (a bare Bool would not match it: fail open)
    deny(mustIfNoneMatch, { Action: 's3:PutObject', Resource: objects, Condition: { Null: { 's3:if-none-match': 'true' }, BoolIfExists: { 's3:ObjectCreationOperation': 'true' } } }),
    deny(nothingElse, { NotAction: [...WRITER_ACTIONS], Resource: both }),
    deny(confined, { Action: 's3:*', NotResource: writableObjectArns(t) }),
    { Sid: tls, Effect: 'Deny', Principal: '*', Action: 's3:*', Resource: both, Condition: { Bool: { 'aws:SecureTransport': 'false' } } },
    deny(provisioned, { Action: 's3:*', Resource: both, Condition: { StringNotEquals: { 'aws:userid': p.writerUserId } } }),
    // SSE-C: objects only the holder of the customer key can read
    deny(noSseC, { Action: 's3:PutObject', Resource: objects, Condition: present(SSE_C) }),
    deny(sse, { Action: 's3:PutObject', Resource: objects, Condition: { ...present(SSE), StringNotEquals: { [SSE]: p.encryption.algorithm } } }),
    // another KMS key (say one in an account the thief controls, deleted later): unreadable objects
    deny(kmsKey, {
      Action: 's3:PutObject',
      Resource: objects,
      Condition: { ...present(SSE_KMS_KEY), ...(p.encryption.kmsKeyArn ? { StringNotEquals: { [SSE_KMS_KEY]: p.encryption.kmsKeyArn } } : {}) },
    }),
    // the storage class header is sent by CreateMultipartUpload and PutObject, not by UploadPart or
    // Complete: only a header that is present and names another class is denied
    deny(storageClass, { Action: 's3:PutObject', Resource: objects, Condition: { ...present(STORAGE_CLASS), StringNotEquals: { [STORAGE_CLASS]: uploadStorageClass(t) } } }),
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

/**
 * Read-only access to the prefix for the owner's admin machine (restore, verify). Never on the Pi.
 * With an archive storage class, RestoreObject (a temporary readable copy); with a
 * customer-managed KMS default, Decrypt on that key through S3.
 */
export function restoreIdentityPolicy(p: Pick<PolicyParams, 'target' | 'encryption'>): PolicyDocument {
  const t = p.target;
  const bucket = bucketArn(t);
  const archived = (ARCHIVE_STORAGE_CLASSES as readonly string[]).includes(uploadStorageClass(t));
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
      ...(archived ? [{ Sid: 'RestoreArchivedObjects', Effect: 'Allow' as const, Action: 's3:RestoreObject', Resource: `${bucket}/${t.prefix}*` }] : []),
      ...kmsThroughS3(t, p.encryption, 'DecryptThroughS3', ['kms:Decrypt'], [`${bucket}/${t.prefix}*`]),
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
function canonicalStatement(s: PolicyStatement): PolicyStatement {
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
