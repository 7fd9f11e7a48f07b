// Policy semantics, adversarially: the generated identity + bucket policies evaluated by
// @cloud-copilot/iam-simulate (AWS's evaluation logic) for every action the Pi may and may not do,
// also when an admin mistakenly gives the Pi's user s3:* (the bucket policy must hold alone).
// The simulator evaluates the context it is given; `request` below builds it the way AWS does
// (which keys a signed request always has, which only with a header), and the first suite pins
// the documented operator semantics the policies rely on.
import { describe, expect, it } from 'vitest';
import { runSimulation, runUnsafeSimulation } from '@cloud-copilot/iam-simulate';
import type { S3TargetSpec } from '../../contract/inventory-schema.ts';
import {
  bucketEncryptionFrom,
  bucketPolicy,
  mergeBucketPolicy,
  ownedSids,
  parsePolicy,
  restoreIdentityPolicy,
  samePolicy,
  writerIdentityPolicy,
  normalizedJson,
  SSE_S3,
  type PolicyDocument,
  type PolicyStatement,
} from '../../provision/aws/policies.ts';
import { fullKey, incrementalKey, manifestKey } from '../../contract/s3-layout.ts';

const ACCT = '111122223333';
const target: S3TargetSpec = { type: 's3', bucket: 'pi-backups-example', region: 'eu-central-1', prefix: 'pi01/', retentionDays: { full: 120, incremental: 60 } };
const WRITER = `arn:aws:iam::${ACCT}:user/pullvault-pi01-writer`;
const RESTORE = `arn:aws:iam::${ACCT}:user/pullvault-pi01-restore`;
const ADMIN = `arn:aws:iam::${ACCT}:user/admin`;
const WRITER_ID = 'AIDAWRITERPI01EXAMPLE1';
const params = { target, accountId: ACCT, writerUser: 'pullvault-pi01-writer', piName: 'pi01', writerUserId: WRITER_ID, encryption: SSE_S3 };
const identity = writerIdentityPolicy(params);
const bucket = bucketPolicy(params);
const sloppy: PolicyDocument = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] };
const allowAll: PolicyDocument = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };

const B = `arn:aws:s3:::${target.bucket}`;
const obj = `${B}/${fullKey('pi01/', 'web1', '20261102T030000Z', '20261102T030000Z')}`;
const incr = `${B}/${incrementalKey('pi01/', 'web1', '20261102T030000Z', '20261103T030000Z')}`;
const man = `${B}/${manifestKey('pi01/', 'web1', '20261102T030000Z', '20261102T030000Z')}`;
// The S3 condition keys of the headers a write may carry: in the context only when sent.
const SSE = 's3:x-amz-server-side-encryption';
const SSE_KMS_KEY = 's3:x-amz-server-side-encryption-aws-kms-key-id';
const SSE_C = 's3:x-amz-server-side-encryption-customer-algorithm';
const STORAGE_CLASS = 's3:x-amz-storage-class';
const FOREIGN_KEY = 'arn:aws:kms:eu-central-1:999999999999:key/0c0ffee0-aaaa-bbbb-cccc-000000000001';
const TLS = { 'aws:SecureTransport': 'true' };
const create = { ...TLS, 's3:ObjectCreationOperation': 'true' };
const conditional = { ...create, 's3:if-none-match': '*' };
const step = { ...TLS, 's3:ObjectCreationOperation': 'false' };

type Expect = 'Allowed' | 'Denied';
type Case = [label: string, action: string, resource: string, ctx: Record<string, string>, expected: Expect];

const writerCases: Case[] = [
  ['PutObject + If-None-Match:* (full)', 's3:PutObject', obj, conditional, 'Allowed'],
  ['PutObject + If-None-Match:* (incremental)', 's3:PutObject', incr, conditional, 'Allowed'],
  ['PutObject + If-None-Match:* (manifest)', 's3:PutObject', man, conditional, 'Allowed'],
  ['CreateMultipartUpload', 's3:PutObject', obj, step, 'Allowed'],
  ['UploadPart', 's3:PutObject', incr, step, 'Allowed'],
  ['CompleteMultipartUpload + If-None-Match:*', 's3:PutObject', obj, conditional, 'Allowed'],
  ['AbortMultipartUpload', 's3:AbortMultipartUpload', obj, TLS, 'Allowed'],
  ['ListParts', 's3:ListMultipartUploadParts', obj, TLS, 'Allowed'],
  ['PutObject without If-None-Match (overwrite)', 's3:PutObject', obj, create, 'Denied'],
  ['CompleteMultipartUpload without If-None-Match', 's3:PutObject', incr, create, 'Denied'],
  ['PutObject whose context lacks s3:ObjectCreationOperation, without If-None-Match', 's3:PutObject', obj, TLS, 'Denied'],
  ['PutObject + If-None-Match naming the bucket default encryption (AES256)', 's3:PutObject', obj, { ...conditional, [SSE]: 'AES256' }, 'Allowed'],
  ['PutObject + If-None-Match naming the configured storage class (STANDARD)', 's3:PutObject', obj, { ...conditional, [STORAGE_CLASS]: 'STANDARD' }, 'Allowed'],
  ['PutObject + If-None-Match with SSE-C (a key only the Pi holds)', 's3:PutObject', obj, { ...conditional, [SSE_C]: 'AES256' }, 'Denied'],
  ['CreateMultipartUpload with SSE-C', 's3:PutObject', incr, { ...step, [SSE_C]: 'AES256' }, 'Denied'],
  ['PutObject + If-None-Match asking SSE-KMS on an SSE-S3 bucket', 's3:PutObject', obj, { ...conditional, [SSE]: 'aws:kms' }, 'Denied'],
  ['PutObject + If-None-Match with a foreign KMS key', 's3:PutObject', obj, { ...conditional, [SSE]: 'aws:kms', [SSE_KMS_KEY]: FOREIGN_KEY }, 'Denied'],
  ['CreateMultipartUpload with a foreign KMS key', 's3:PutObject', incr, { ...step, [SSE]: 'aws:kms', [SSE_KMS_KEY]: FOREIGN_KEY }, 'Denied'],
  ['PutObject + If-None-Match into DEEP_ARCHIVE (not the configured class)', 's3:PutObject', obj, { ...conditional, [STORAGE_CLASS]: 'DEEP_ARCHIVE' }, 'Denied'],
  ['CreateMultipartUpload into ONEZONE_IA (not the configured class)', 's3:PutObject', incr, { ...step, [STORAGE_CLASS]: 'ONEZONE_IA' }, 'Denied'],
  ['PutObject + If-None-Match over plain HTTP', 's3:PutObject', obj, { ...conditional, 'aws:SecureTransport': 'false' }, 'Denied'],
  ['UploadPart over plain HTTP', 's3:PutObject', obj, { ...step, 'aws:SecureTransport': 'false' }, 'Denied'],
  ['PutObject + If-None-Match to another Pi\'s prefix', 's3:PutObject', `${B}/pi02/full/web1/c/x.tar.zst.gpg`, conditional, 'Denied'],
  ['PutObject + If-None-Match outside the layout (prefix root)', 's3:PutObject', `${B}/pi01/other.txt`, conditional, 'Denied'],
  ['PutObject + If-None-Match to the bucket root', 's3:PutObject', `${B}/x`, conditional, 'Denied'],
  ['CreateMultipartUpload outside the prefix', 's3:PutObject', `${B}/pi02/incr/a/b/c`, step, 'Denied'],
  ['AbortMultipartUpload outside the prefix', 's3:AbortMultipartUpload', `${B}/pi02/full/a/b/c`, TLS, 'Denied'],
  ['GetObject', 's3:GetObject', obj, TLS, 'Denied'],
  ['GetObjectVersion', 's3:GetObjectVersion', obj, TLS, 'Denied'],
  ['GetObjectAttributes', 's3:GetObjectAttributes', obj, TLS, 'Denied'],
  ['ListBucket', 's3:ListBucket', B, TLS, 'Denied'],
  ['ListBucketVersions', 's3:ListBucketVersions', B, TLS, 'Denied'],
  ['ListBucketMultipartUploads', 's3:ListBucketMultipartUploads', B, TLS, 'Denied'],
  ['ListAllMyBuckets', 's3:ListAllMyBuckets', '*', TLS, 'Denied'],
  ['DeleteObject', 's3:DeleteObject', obj, TLS, 'Denied'],
  ['DeleteObjectVersion', 's3:DeleteObjectVersion', obj, TLS, 'Denied'],
  ['DeleteBucket', 's3:DeleteBucket', B, TLS, 'Denied'],
  ['PutObjectTagging (retag into a short expiry)', 's3:PutObjectTagging', obj, TLS, 'Denied'],
  ['PutObjectVersionTagging', 's3:PutObjectVersionTagging', obj, TLS, 'Denied'],
  ['DeleteObjectTagging', 's3:DeleteObjectTagging', obj, TLS, 'Denied'],
  ['PutObjectAcl', 's3:PutObjectAcl', obj, TLS, 'Denied'],
  ['PutBucketAcl', 's3:PutBucketAcl', B, TLS, 'Denied'],
  ['PutObjectRetention (shorten retention)', 's3:PutObjectRetention', obj, TLS, 'Denied'],
  ['PutObjectLegalHold', 's3:PutObjectLegalHold', obj, TLS, 'Denied'],
  ['BypassGovernanceRetention', 's3:BypassGovernanceRetention', obj, TLS, 'Denied'],
  ['PutBucketObjectLockConfiguration', 's3:PutBucketObjectLockConfiguration', B, TLS, 'Denied'],
  ['PutBucketPolicy', 's3:PutBucketPolicy', B, TLS, 'Denied'],
  ['DeleteBucketPolicy', 's3:DeleteBucketPolicy', B, TLS, 'Denied'],
  ['PutLifecycleConfiguration', 's3:PutLifecycleConfiguration', B, TLS, 'Denied'],
  ['PutBucketVersioning (suspend)', 's3:PutBucketVersioning', B, TLS, 'Denied'],
  ['PutEncryptionConfiguration', 's3:PutEncryptionConfiguration', B, TLS, 'Denied'],
  ['PutBucketPublicAccessBlock', 's3:PutBucketPublicAccessBlock', B, TLS, 'Denied'],
  ['PutBucketOwnershipControls', 's3:PutBucketOwnershipControls', B, TLS, 'Denied'],
  ['RestoreObject', 's3:RestoreObject', obj, TLS, 'Denied'],
  ['ReplicateObject', 's3:ReplicateObject', obj, TLS, 'Denied'],
];

/** Who signs a request: an IAM user's ARN and its unique id (AIDA…). */
interface Signer {
  arn: string;
  id: string;
}
const writer: Signer = { arn: WRITER, id: WRITER_ID };
/** The writer's user deleted and created again under the same name: same ARN, new unique id. */
const recreatedWriter: Signer = { arn: WRITER, id: 'AIDARECREATEDSAMENAME9' };
const restorer: Signer = { arn: RESTORE, id: 'AIDARESTOREPI01EXAMPL' };
const admin: Signer = { arn: ADMIN, id: 'AIDAADMINEXAMPLE00001' };

/**
 * The request context AWS builds for an IAM user's signed request: aws:PrincipalArn (the user's
 * ARN) and aws:userid (its unique id) are always present (IAM User Guide, "AWS global condition
 * context keys"); the case adds the keys of what the request carries (a header's S3 key only when
 * the header is sent).
 */
function request(who: Signer, ctx: Record<string, string>): Record<string, string> {
  return { 'aws:PrincipalArn': who.arn, 'aws:userid': who.id, ...ctx };
}

/**
 * KMS puts each pair of a request's encryption context in the context as
 * `kms:EncryptionContext:<pair key>` (KMS Developer Guide, "kms:EncryptionContext:context-key");
 * the simulator's key catalogue recognises variable keys only after a '/', so it drops these. Such
 * requests are evaluated by its engine without that catalogue check (the same evaluation logic).
 */
const ENCRYPTION_CONTEXT_KEY = 'kms:EncryptionContext:';

async function simulate(who: Signer, identities: PolicyDocument[], resourcePolicy: PolicyDocument | undefined, c: Case): Promise<string> {
  const [, action, resource, ctx] = c;
  const simulation = {
    request: { principal: who.arn, action, resource: { resource, accountId: ACCT }, contextVariables: request(who, ctx) },
    identityPolicies: identities.map((p, i) => ({ name: `p${i}`, policy: p })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy,
  };
  if (Object.keys(ctx).some((k) => k.startsWith(ENCRYPTION_CONTEXT_KEY))) {
    // its unchecked entry point loads the resource policy without a name unless it comes pre-validated
    const named = resourcePolicy && { __validated: true, policyDocument: resourcePolicy, metadata: { name: 'resource' }, errors: [] };
    return runUnsafeSimulation({ ...simulation, resourcePolicy: named as never }, {}) === 'Allowed' ? 'Allowed' : 'Denied';
  }
  const r = await runSimulation(simulation, { simulationMode: 'Strict' });
  if (r.resultType === 'error') return `ERROR ${JSON.stringify(r.errors).slice(0, 300)}`;
  return r.overallResult === 'Allowed' ? 'Allowed' : 'Denied';
}

describe('the Pi (writer): generated identity policy + bucket policy', () => {
  it.each(writerCases)('%s → %s', async (...c) => {
    expect(await simulate(writer, [identity], bucket, c)).toBe(c[4]);
  });
});

describe('the Pi mistakenly given s3:* (and even *:*): the bucket policy alone holds', () => {
  it.each(writerCases)('%s → %s', async (...c) => {
    expect(await simulate(writer, [identity, sloppy], bucket, c)).toBe(c[4]);
    expect(await simulate(writer, [allowAll], bucket, c)).toBe(c[4]);
  });
});

describe('identity policy alone (bucket policy removed by someone): still write-only', () => {
  const cases = writerCases.filter((c) => !/HTTP/.test(c[0]));
  it.each(cases)('%s → %s', async (...c) => {
    expect(await simulate(writer, [identity], undefined, c)).toBe(c[4]);
  });
});

describe('others are not locked out by the writer denies', () => {
  const adminCases: Case[] = [
    ['admin GetObject', 's3:GetObject', obj, TLS, 'Allowed'],
    ['admin unconditional PutObject', 's3:PutObject', obj, create, 'Allowed'],
    ['admin PutLifecycleConfiguration', 's3:PutLifecycleConfiguration', B, TLS, 'Allowed'],
    ['admin over plain HTTP', 's3:GetObject', obj, { 'aws:SecureTransport': 'false' }, 'Denied'],
  ];
  it.each(adminCases)('%s → %s', async (...c) => {
    expect(await simulate(admin, [sloppy], bucket, c)).toBe(c[4]);
  });

  const restore = restoreIdentityPolicy(params);
  const restoreCases: Case[] = [
    ['restore GetObject in the prefix', 's3:GetObject', obj, TLS, 'Allowed'],
    ['restore GetObjectVersion in the prefix', 's3:GetObjectVersion', man, TLS, 'Allowed'],
    ['restore ListBucket on the prefix', 's3:ListBucket', B, { ...TLS, 's3:prefix': 'pi01/full/' }, 'Allowed'],
    ['restore ListBucket on another prefix', 's3:ListBucket', B, { ...TLS, 's3:prefix': 'pi02/' }, 'Denied'],
    ['restore GetObject outside the prefix', 's3:GetObject', `${B}/pi02/full/a/b/c`, TLS, 'Denied'],
    ['restore PutObject', 's3:PutObject', obj, conditional, 'Denied'],
    ['restore DeleteObject', 's3:DeleteObject', obj, TLS, 'Denied'],
    ['restore over plain HTTP', 's3:GetObject', obj, { 'aws:SecureTransport': 'false' }, 'Denied'],
    ['restore RestoreObject (STANDARD: nothing to restore, not granted)', 's3:RestoreObject', obj, TLS, 'Denied'],
  ];
  it.each(restoreCases)('%s → %s', async (...c) => {
    expect(await simulate(restorer, [restore], bucket, c)).toBe(c[4]);
  });
});

describe("the simulator follows AWS's documented condition-operator semantics for an absent key", () => {
  // IAM User Guide, "Condition operators": a key absent from the context makes a condition false,
  // except …IfExists (true), negated operators such as StringNotEquals (true) and Null.
  const doc = (Effect: 'Allow' | 'Deny', Condition: PolicyStatement['Condition']): PolicyDocument => ({
    Version: '2012-10-17',
    Statement: [{ Effect, ...(Effect === 'Deny' ? { Principal: '*' as const } : {}), Action: 's3:PutObject', Resource: `${B}/*`, Condition }],
  });
  const lacking: Case = ['PutObject without s3:ObjectCreationOperation in its context', 's3:PutObject', obj, TLS, 'Denied'];
  it('a Deny on Bool does not match an absent key: it fails open', async () => {
    expect(await simulate(writer, [allowAll], doc('Deny', { Bool: { 's3:ObjectCreationOperation': 'true' } }), lacking)).toBe('Allowed');
  });
  it('a Deny on BoolIfExists matches an absent key', async () => {
    expect(await simulate(writer, [allowAll], doc('Deny', { BoolIfExists: { 's3:ObjectCreationOperation': 'true' } }), lacking)).toBe('Denied');
  });
  it('a Deny on StringNotEquals matches an absent key; with Null false it does not', async () => {
    expect(await simulate(writer, [allowAll], doc('Deny', { StringNotEquals: { [STORAGE_CLASS]: 'STANDARD' } }), lacking)).toBe('Denied');
    expect(await simulate(writer, [allowAll], doc('Deny', { Null: { [STORAGE_CLASS]: 'false' }, StringNotEquals: { [STORAGE_CLASS]: 'STANDARD' } }), lacking)).toBe('Allowed');
  });
  it('an Allow on StringEqualsIfExists matches an absent key and a present equal one, not another value', async () => {
    const allow = doc('Allow', { StringEqualsIfExists: { [STORAGE_CLASS]: 'STANDARD' } });
    const only = (ctx: Record<string, string>): Case => ['', 's3:PutObject', obj, ctx, 'Denied'];
    expect(await simulate(writer, [allow], undefined, only(TLS))).toBe('Allowed');
    expect(await simulate(writer, [allow], undefined, only({ ...TLS, [STORAGE_CLASS]: 'STANDARD' }))).toBe('Allowed');
    expect(await simulate(writer, [allow], undefined, only({ ...TLS, [STORAGE_CLASS]: 'GLACIER' }))).toBe('Denied');
  });
  it("the If-None-Match deny as it was (Bool s3:ObjectCreationOperation) let such a put through; the generated one does not", async () => {
    const asItWas: PolicyStatement = { ...bucket.Statement[0]!, Condition: { Null: { 's3:if-none-match': 'true' }, Bool: { 's3:ObjectCreationOperation': 'true' } } };
    const before: PolicyDocument = { ...bucket, Statement: [asItWas, ...bucket.Statement.slice(1)] };
    expect(await simulate(writer, [allowAll], before, lacking)).toBe('Allowed');
    expect(await simulate(writer, [allowAll], bucket, lacking)).toBe('Denied');
  });
});

describe('a user recreated under the writer\'s name (same ARN, new unique id) has no access', () => {
  const cases = writerCases.filter((c) => c[4] === 'Allowed');
  it.each(cases)('%s → Denied', async (...c) => {
    expect(await simulate(recreatedWriter, [identity, sloppy], bucket, c)).toBe('Denied');
    expect(await simulate(recreatedWriter, [allowAll], bucket, c)).toBe('Denied');
  });
  it('the provisioned writer itself still may', async () => {
    for (const c of cases) expect(await simulate(writer, [allowAll], bucket, c), c[0]).toBe('Allowed');
  });
});

describe('GLACIER and a customer-managed SSE-KMS default key', () => {
  const KEY = `arn:aws:kms:eu-central-1:${ACCT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
  const OTHER_KEY = `arn:aws:kms:eu-central-1:${ACCT}:key/99999999-12ab-34cd-56ef-1234567890ab`;
  const glacier: S3TargetSpec = { ...target, storageClass: 'GLACIER' };
  const p = { ...params, target: glacier, encryption: { algorithm: 'aws:kms' as const, kmsKeyArn: KEY } };
  const wIdentity = writerIdentityPolicy(p);
  const wBucket = bucketPolicy(p);
  const rIdentity = restoreIdentityPolicy(p);
  // KMS's default key policy: the account's IAM policies decide (KMS Developer Guide, "Default key policy")
  const keyPolicy: PolicyDocument = {
    Version: '2012-10-17',
    Statement: [{ Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCT}:root` }, Action: 'kms:*', Resource: '*' }],
  };
  const viaS3 = { 'kms:ViaService': 's3.eu-central-1.amazonaws.com' };
  const ctxOf = (arn: string) => ({ ...TLS, ...viaS3, 'kms:EncryptionContext:aws:s3:arn': arn });
  const glacierPut = { ...conditional, [STORAGE_CLASS]: 'GLACIER' };

  const writerS3: Case[] = [
    ['PutObject + If-None-Match into GLACIER, bucket-default encryption', 's3:PutObject', obj, glacierPut, 'Allowed'],
    ['PutObject + If-None-Match naming SSE-KMS and the bucket key', 's3:PutObject', obj, { ...glacierPut, [SSE]: 'aws:kms', [SSE_KMS_KEY]: KEY }, 'Allowed'],
    ['CreateMultipartUpload into GLACIER', 's3:PutObject', incr, { ...step, [STORAGE_CLASS]: 'GLACIER' }, 'Allowed'],
    ['UploadPart (no storage-class header)', 's3:PutObject', incr, step, 'Allowed'],
    ['CompleteMultipartUpload + If-None-Match (no storage-class header)', 's3:PutObject', incr, conditional, 'Allowed'],
    ['PutObject + If-None-Match into STANDARD (not the configured class)', 's3:PutObject', obj, { ...conditional, [STORAGE_CLASS]: 'STANDARD' }, 'Denied'],
    ['PutObject + If-None-Match asking SSE-S3 on an SSE-KMS bucket', 's3:PutObject', obj, { ...glacierPut, [SSE]: 'AES256' }, 'Denied'],
    ['PutObject + If-None-Match with another KMS key of the account', 's3:PutObject', obj, { ...glacierPut, [SSE]: 'aws:kms', [SSE_KMS_KEY]: OTHER_KEY }, 'Denied'],
    ['PutObject + If-None-Match with a foreign KMS key', 's3:PutObject', obj, { ...glacierPut, [SSE]: 'aws:kms', [SSE_KMS_KEY]: FOREIGN_KEY }, 'Denied'],
    ['PutObject + If-None-Match with SSE-C', 's3:PutObject', obj, { ...glacierPut, [SSE_C]: 'AES256' }, 'Denied'],
  ];
  it.each(writerS3)('writer (also given *:*): %s → %s', async (...c) => {
    expect(await simulate(writer, [wIdentity], wBucket, c)).toBe(c[4]);
    expect(await simulate(writer, [allowAll], wBucket, c)).toBe(c[4]);
  });

  const writerKms: Case[] = [
    ['kms:GenerateDataKey on the bucket key through S3 for its object', 'kms:GenerateDataKey', KEY, ctxOf(obj), 'Allowed'],
    ['kms:GenerateDataKey through S3 with an S3 Bucket Key (bucket ARN context)', 'kms:GenerateDataKey', KEY, ctxOf(B), 'Allowed'],
    ['kms:Decrypt through S3 for its object (completing a multipart upload)', 'kms:Decrypt', KEY, ctxOf(incr), 'Allowed'],
    ['kms:GenerateDataKey called directly (not through S3)', 'kms:GenerateDataKey', KEY, { ...TLS, 'kms:EncryptionContext:aws:s3:arn': obj }, 'Denied'],
    ['kms:Decrypt called directly', 'kms:Decrypt', KEY, TLS, 'Denied'],
    ['kms:GenerateDataKey through S3 for another prefix', 'kms:GenerateDataKey', KEY, ctxOf(`${B}/pi02/full/a/b/c`), 'Denied'],
    ['kms:GenerateDataKey on another key', 'kms:GenerateDataKey', OTHER_KEY, ctxOf(obj), 'Denied'],
    ['kms:Encrypt', 'kms:Encrypt', KEY, ctxOf(obj), 'Denied'],
    ['kms:ScheduleKeyDeletion', 'kms:ScheduleKeyDeletion', KEY, TLS, 'Denied'],
    ['kms:PutKeyPolicy', 'kms:PutKeyPolicy', KEY, TLS, 'Denied'],
  ];
  it.each(writerKms)('writer: %s → %s', async (...c) => {
    expect(await simulate(writer, [wIdentity], keyPolicy, c)).toBe(c[4]);
  });

  const restoreCases: Case[] = [
    ['restore RestoreObject in the prefix (GLACIER)', 's3:RestoreObject', obj, TLS, 'Allowed'],
    ['restore RestoreObject outside the prefix', 's3:RestoreObject', `${B}/pi02/full/a/b/c`, TLS, 'Denied'],
    ['restore GetObject in the prefix', 's3:GetObject', obj, TLS, 'Allowed'],
  ];
  it.each(restoreCases)('%s → %s', async (...c) => {
    expect(await simulate(restorer, [rIdentity], wBucket, c)).toBe(c[4]);
  });
  const restoreKms: Case[] = [
    ['restore kms:Decrypt through S3 for an object in the prefix', 'kms:Decrypt', KEY, ctxOf(man), 'Allowed'],
    ['restore kms:Decrypt through S3 for another prefix', 'kms:Decrypt', KEY, ctxOf(`${B}/pi02/full/a/b/c`), 'Denied'],
    ['restore kms:Decrypt called directly', 'kms:Decrypt', KEY, TLS, 'Denied'],
    ['restore kms:GenerateDataKey', 'kms:GenerateDataKey', KEY, ctxOf(obj), 'Denied'],
  ];
  it.each(restoreKms)('%s → %s', async (...c) => {
    expect(await simulate(restorer, [rIdentity], keyPolicy, c)).toBe(c[4]);
  });

  it('with SSE-S3 there is no KMS grant; with the AWS managed key neither (its key policy admits S3 callers)', () => {
    expect(JSON.stringify([identity, restoreIdentityPolicy(params)])).not.toContain('kms:');
    const managed = { ...params, encryption: bucketEncryptionFrom('aws:kms', undefined, target, ACCT) };
    expect(JSON.stringify([writerIdentityPolicy(managed), restoreIdentityPolicy(managed)])).not.toContain('kms:');
  });
});

describe('the bucket default encryption as GetBucketEncryption reports it', () => {
  const KEY_ID = '1234abcd-12ab-34cd-56ef-1234567890ab';
  it('SSE-S3, the AWS managed key, a key ARN, a bare key id (completed to its ARN)', () => {
    expect(bucketEncryptionFrom(undefined, undefined, target, ACCT)).toEqual({ algorithm: 'AES256' });
    expect(bucketEncryptionFrom('AES256', undefined, target, ACCT)).toEqual({ algorithm: 'AES256' });
    expect(bucketEncryptionFrom('aws:kms', 'alias/aws/s3', target, ACCT)).toEqual({ algorithm: 'aws:kms' });
    const arn = `arn:aws:kms:eu-central-1:${ACCT}:key/${KEY_ID}`;
    expect(bucketEncryptionFrom('aws:kms', arn, target, ACCT)).toEqual({ algorithm: 'aws:kms', kmsKeyArn: arn });
    expect(bucketEncryptionFrom('aws:kms:dsse', KEY_ID, target, ACCT)).toEqual({ algorithm: 'aws:kms:dsse', kmsKeyArn: arn });
  });
  it('an alias is refused with what to do', () => {
    expect(() => bucketEncryptionFrom('aws:kms', 'alias/backups', target, ACCT)).toThrow(/set the bucket default to the key's ARN/);
  });
});

describe('policy documents', () => {
  it('has at least 30 writer cases', () => {
    expect(writerCases.length).toBeGreaterThanOrEqual(30);
  });

  it('merging keeps statements pullvault does not own, and replaces ours', () => {
    const foreign = { Sid: 'SomeoneElses', Effect: 'Allow' as const, Principal: { AWS: `arn:aws:iam::${ACCT}:root` }, Action: 's3:GetObject', Resource: `${B}/public/*` };
    const stale = { ...bucket.Statement[1], NotAction: ['s3:PutObject', 's3:DeleteObject'] };
    const merged = mergeBucketPolicy({ Version: '2012-10-17', Statement: [foreign, stale] }, params);
    expect(merged.Statement[0]).toEqual(foreign);
    expect(merged.Statement.slice(1)).toEqual(bucket.Statement);
    expect(merged.Statement.map((s) => s.Sid)).toEqual(['SomeoneElses', ...ownedSids('pi01')]);
  });

  it('compares policies by meaning, not formatting (as AWS returns them)', () => {
    const roundTrip = parsePolicy(encodeURIComponent(JSON.stringify(identity)));
    expect(samePolicy(roundTrip, identity)).toBe(true);
    const reordered = JSON.parse(JSON.stringify(bucket)) as PolicyDocument;
    reordered.Statement[1].NotAction = [...(reordered.Statement[1].NotAction as string[])].reverse();
    expect(samePolicy(reordered, bucket)).toBe(true);
    reordered.Statement[1].NotAction = [...(reordered.Statement[1].NotAction as string[]), 's3:GetObject'];
    expect(samePolicy(reordered, bucket)).toBe(false);
  });

  it('renders normalized, key-sorted JSON', () => {
    expect(normalizedJson({ b: 1, a: { d: 2, c: 3 } })).toBe('{\n  "a": {\n    "c": 3,\n    "d": 2\n  },\n  "b": 1\n}\n');
  });

  it('Sids are unique per Pi so two Pis can share a bucket', () => {
    expect(ownedSids('pi-02')).not.toEqual(ownedSids('pi01'));
    for (const s of ownedSids('pi-02')) expect(s).toMatch(/^[A-Za-z0-9]+$/);
  });
});
