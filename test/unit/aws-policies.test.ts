// Policy semantics, adversarially: the generated identity + bucket policies evaluated by
// @cloud-copilot/iam-simulate (AWS's evaluation logic) for every action the Pi may and may not do,
// also when an admin mistakenly gives the Pi's user s3:* (the bucket policy must hold alone).
import { describe, expect, it } from 'vitest';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import type { S3TargetSpec } from '../../provision/inventory/schema.ts';
import {
  bucketPolicy,
  mergeBucketPolicy,
  ownedSids,
  parsePolicy,
  restoreIdentityPolicy,
  samePolicy,
  writerIdentityPolicy,
  normalizedJson,
  type PolicyDocument,
} from '../../provision/plan/aws-policies.ts';
import { fullKey, incrementalKey, manifestKey } from '../../provision/plan/s3-layout.ts';

const ACCT = '111122223333';
const target: S3TargetSpec = { type: 's3', bucket: 'pi-backups-example', region: 'eu-central-1', prefix: 'pi01/', retentionDays: { full: 120, incremental: 60 } };
const WRITER = `arn:aws:iam::${ACCT}:user/pullvault-pi01-writer`;
const RESTORE = `arn:aws:iam::${ACCT}:user/pullvault-pi01-restore`;
const ADMIN = `arn:aws:iam::${ACCT}:user/admin`;
const params = { target, accountId: ACCT, writerUser: 'pullvault-pi01-writer', piName: 'pi01' };
const identity = writerIdentityPolicy(params);
const bucket = bucketPolicy(params);
const sloppy: PolicyDocument = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] };
const allowAll: PolicyDocument = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };

const B = `arn:aws:s3:::${target.bucket}`;
const obj = `${B}/${fullKey('pi01/', 'web1', '20261102T030000Z', '20261102T030000Z')}`;
const incr = `${B}/${incrementalKey('pi01/', 'web1', '20261102T030000Z', '20261103T030000Z')}`;
const man = `${B}/${manifestKey('pi01/', 'web1', '20261102T030000Z', '20261102T030000Z')}`;
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

async function simulate(principal: string, identities: PolicyDocument[], resourcePolicy: PolicyDocument | undefined, c: Case): Promise<string> {
  const [, action, resource, ctx] = c;
  const r = await runSimulation(
    {
      request: { principal, action, resource: { resource, accountId: ACCT }, contextVariables: ctx },
      identityPolicies: identities.map((p, i) => ({ name: `p${i}`, policy: p })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy,
    },
    { simulationMode: 'Strict' },
  );
  if (r.resultType === 'error') return `ERROR ${JSON.stringify(r.errors).slice(0, 300)}`;
  return r.overallResult === 'Allowed' ? 'Allowed' : 'Denied';
}

describe('the Pi (writer): generated identity policy + bucket policy', () => {
  it.each(writerCases)('%s → %s', async (...c) => {
    expect(await simulate(WRITER, [identity], bucket, c)).toBe(c[4]);
  });
});

describe('the Pi mistakenly given s3:* (and even *:*): the bucket policy alone holds', () => {
  it.each(writerCases)('%s → %s', async (...c) => {
    expect(await simulate(WRITER, [identity, sloppy], bucket, c)).toBe(c[4]);
    expect(await simulate(WRITER, [allowAll], bucket, c)).toBe(c[4]);
  });
});

describe('identity policy alone (bucket policy removed by someone): still write-only', () => {
  const cases = writerCases.filter((c) => !/HTTP/.test(c[0]));
  it.each(cases)('%s → %s', async (...c) => {
    expect(await simulate(WRITER, [identity], undefined, c)).toBe(c[4]);
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
    expect(await simulate(ADMIN, [sloppy], bucket, c)).toBe(c[4]);
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
  ];
  it.each(restoreCases)('%s → %s', async (...c) => {
    expect(await simulate(RESTORE, [restore], bucket, c)).toBe(c[4]);
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
