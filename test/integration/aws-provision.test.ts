// provision-aws against moto over HTTP: what an apply creates, idempotence (0 changed), drift
// put back, key rotation, the Pi's own credentials doing conditional single and multipart
// uploads (412 on the second), the secret never in the output. Policy *semantics* (denies) are
// not enforced by moto — test/unit/aws-policies.test.ts (provision/aws/policies.ts) checks them with the IAM simulator.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CreateBucketCommand,
  GetBucketEncryptionCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketPolicyCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  GetPublicAccessBlockCommand,
  ListBucketsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketPolicyCommand,
  PutBucketEncryptionCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import {
  CreateUserCommand,
  DeleteAccessKeyCommand,
  DeleteUserCommand,
  DeleteUserPolicyCommand,
  GetUserCommand,
  GetUserPolicyCommand,
  ListAccessKeysCommand,
  ListUsersCommand,
} from '@aws-sdk/client-iam';
import { Upload } from '@aws-sdk/lib-storage';
import { awsClients, type AwsClients } from '../../provision/exec/aws.ts';
import { Redactor, TextReporter, type RunSummary } from '../../provision/engine/index.ts';
import type { Inventory, S3TargetSpec } from '../../contract/inventory-schema.ts';
import { provisionAws, readCredentials, credentialsFile } from '../../provision/aws/index.ts';
import { ownedSids, parsePolicy } from '../../provision/aws/policies.ts';
import { fullKey, incrementalKey } from '../../contract/s3-layout.ts';
import { MOTO_ACCOUNT_ID, MOTO_CREDENTIALS, startMoto, type Moto } from '../lab/moto.ts';

let moto: Moto;
let admin: AwsClients;
let state: string;

const baseInventory = JSON.parse(readFileSync(new URL('../../inventory.json', import.meta.url), 'utf8')) as Inventory;
function inventoryWith(patch: Partial<S3TargetSpec>): Inventory {
  return { ...baseInventory, offsite: { ...(baseInventory.offsite as S3TargetSpec), ...patch } };
}
const inv = inventoryWith({ bucket: 'pv-int-main' });
const target = inv.offsite as S3TargetSpec;

async function run(i: Inventory, opts: { dryRun?: boolean; rotateKey?: boolean; retireOldKeys?: boolean; restoreUser?: boolean; printPoliciesDir?: string } = {}) {
  const redactor = new Redactor();
  let out = '';
  const reporter = new TextReporter(redactor, (t) => (out += t));
  const r = await provisionAws(i, { clients: admin, reporter, redactor, stateDir: state, ...opts });
  return { summary: r as RunSummary, out, redactor };
}

beforeAll(async () => {
  moto = await startMoto();
  admin = awsClients({ region: target.region, endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
});
afterAll(async () => {
  await moto?.stop();
});
beforeEach(async () => {
  await moto.reset();
  state = mkdtempSync(path.join(tmpdir(), 'pv-aws-state-'));
  return () => rmSync(state, { recursive: true, force: true });
});

describe('provision-aws against moto', () => {
  it('dry run plans everything and changes nothing', async () => {
    const { summary, out } = await run(inv, { dryRun: true });
    expect(summary.failed).toBe(0);
    expect(summary.changed).toBe(10);
    expect(out).toMatch(/0 ok, 10 to change, 0 failed/);
    expect(out).toContain('"s3:if-none-match"'); // the policy diff is shown as JSON
    expect((await admin.s3.send(new ListBucketsCommand({}))).Buckets ?? []).toEqual([]);
    expect((await admin.iam.send(new ListUsersCommand({}))).Users ?? []).toEqual([]);
    expect(readdirSync(state)).toEqual([]);
  });

  it('apply creates exactly the configured resources; a second run reports 0 changed', async () => {
    const first = await run(inv);
    expect(first.summary.failed, first.out).toBe(0);
    expect(first.out).toMatch(/changed, 0 failed/);

    const b = target.bucket;
    expect((await admin.s3.send(new ListBucketsCommand({}))).Buckets!.map((x) => x.Name)).toEqual([b]);
    expect((await admin.iam.send(new ListUsersCommand({}))).Users!.map((u) => u.UserName)).toEqual(['pullvault-pi01-writer']);
    const pab = await admin.s3.send(new GetPublicAccessBlockCommand({ Bucket: b }));
    expect(pab.PublicAccessBlockConfiguration).toMatchObject({ BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true });
    expect((await admin.s3.send(new GetBucketVersioningCommand({ Bucket: b }))).Status).toBe('Enabled');
    const enc = await admin.s3.send(new GetBucketEncryptionCommand({ Bucket: b }));
    expect(enc.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm).toBe('AES256');
    const rules = (await admin.s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b }))).Rules!;
    expect(Object.fromEntries(rules.map((r) => [r.ID, [r.Filter?.Prefix, r.Expiration?.Days]]))).toMatchObject({
      'pullvault-pi01-full': ['pi01/full/', 120],
      'pullvault-pi01-incr': ['pi01/incr/', 91],
      'pullvault-pi01-manifest': ['pi01/manifest/', 120],
    });
    const policy = parsePolicy((await admin.s3.send(new GetBucketPolicyCommand({ Bucket: b }))).Policy)!;
    expect(policy.Statement.map((s) => s.Sid)).toEqual(ownedSids('pi01'));
    expect(JSON.stringify(policy)).toContain(`arn:aws:iam::${MOTO_ACCOUNT_ID}:user/pullvault-pi01-writer`);
    // the writer is pinned by the unique id IAM gave it, read at provision time
    const writerId = (await admin.iam.send(new GetUserCommand({ UserName: 'pullvault-pi01-writer' }))).User!.UserId!;
    expect(writerId).toBeTruthy(); // AIDA… on AWS; moto makes up its own form
    const provisioned = policy.Statement.find((s) => s.Sid!.endsWith('WriterIsTheProvisionedUser'))!;
    expect(provisioned.Condition).toMatchObject({ StringNotEquals: { 'aws:userid': writerId } });
    // the inventory's storage class is the one pinned
    expect(JSON.stringify(policy.Statement.find((s) => s.Sid!.endsWith('WriterStorageClassPinned')))).toContain('"STANDARD_IA"');

    const creds = readCredentials(credentialsFile(state, 'writer'))!;
    expect(creds).toMatchObject({ userName: 'pullvault-pi01-writer', region: target.region, bucket: b, prefix: 'pi01/', endpoint: moto.endpoint });
    expect(statSync(credentialsFile(state, 'writer')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(state, 'aws')).mode & 0o777).toBe(0o700);
    const keys = (await admin.iam.send(new ListAccessKeysCommand({ UserName: creds.userName }))).AccessKeyMetadata!;
    expect(keys.map((k) => k.AccessKeyId)).toEqual([creds.accessKeyId]);
    // the secret never reaches the output
    expect(first.out).not.toContain(creds.secretAccessKey);

    const second = await run(inv);
    expect(second.out).toMatch(/0 changed, 0 failed/);
    expect(second.summary.changed).toBe(0);
  });

  it('puts drift back: edited lifecycle rule, loosened bucket policy, removed identity policy, suspended versioning — and keeps foreign statements/rules', async () => {
    await run(inv);
    const b = target.bucket;
    const rules = (await admin.s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b }))).Rules!;
    const shortened = rules.map((r) => (r.ID === 'pullvault-pi01-full' ? { ...r, Expiration: { Days: 1 } } : r));
    const foreignRule = { ID: 'someone-elses-logs', Status: 'Enabled' as const, Filter: { Prefix: 'logs/' }, Expiration: { Days: 3 } };
    await admin.s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket: b, LifecycleConfiguration: { Rules: [foreignRule, ...shortened] } }));
    const policy = parsePolicy((await admin.s3.send(new GetBucketPolicyCommand({ Bucket: b }))).Policy)!;
    const foreignStatement = { Sid: 'SomeoneElses', Effect: 'Deny' as const, Principal: '*' as const, Action: 's3:DeleteBucket', Resource: `arn:aws:s3:::${b}` };
    const loosened = { ...policy, Statement: [foreignStatement, ...policy.Statement.filter((s) => !s.Sid!.endsWith('WriterMustUseIfNoneMatch'))] };
    await admin.s3.send(new PutBucketPolicyCommand({ Bucket: b, Policy: JSON.stringify(loosened) }));
    await admin.iam.send(new DeleteUserPolicyCommand({ UserName: 'pullvault-pi01-writer', PolicyName: 'pullvault-writer' }));
    await admin.s3.send(new PutBucketVersioningCommand({ Bucket: b, VersioningConfiguration: { Status: 'Suspended' } }));

    const dry = await run(inv, { dryRun: true });
    expect(dry.summary.changed).toBe(4);
    expect(dry.out).toMatch(/-\s+"Days": 1\n\s+\+\s+"Days": 120/);
    expect(dry.out).toContain('+      "Sid": "Pullvaultpi01WriterMustUseIfNoneMatch"');

    const fix = await run(inv);
    expect(fix.summary.changed, fix.out).toBe(4);
    expect(fix.summary.results.filter((r) => r.status === 'changed').map((r) => r.id).sort()).toEqual(
      ['iam: writer policy', 's3: bucket policy (write-once for the Pi)', 's3: lifecycle rules', 's3: versioning'].sort(),
    );
    const after = (await admin.s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b }))).Rules!;
    expect(after.find((r) => r.ID === 'pullvault-pi01-full')!.Expiration!.Days).toBe(120);
    expect(after.find((r) => r.ID === 'someone-elses-logs')).toMatchObject({ Filter: { Prefix: 'logs/' }, Expiration: { Days: 3 } });
    const p2 = parsePolicy((await admin.s3.send(new GetBucketPolicyCommand({ Bucket: b }))).Policy)!;
    expect(p2.Statement.map((s) => s.Sid)).toEqual(['SomeoneElses', ...ownedSids('pi01')]);
    expect(await admin.iam.send(new GetUserPolicyCommand({ UserName: 'pullvault-pi01-writer', PolicyName: 'pullvault-writer' }))).toBeTruthy();
    expect((await run(inv)).summary.changed).toBe(0);
  });

  it("the Pi's generated credentials: conditional single and multipart uploads succeed, a second upload to the same key gets 412", async () => {
    await run(inv);
    const c = readCredentials(credentialsFile(state, 'writer'))!;
    const pi = awsClients({ region: c.region, endpoint: c.endpoint, credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey } });
    const key = fullKey(c.prefix, 'web1', 'c1', 's1');
    await pi.s3.send(new PutObjectCommand({ Bucket: c.bucket, Key: key, Body: 'archive-1', IfNoneMatch: '*', StorageClass: 'STANDARD_IA' }));
    const again = await pi.s3.send(new PutObjectCommand({ Bucket: c.bucket, Key: key, Body: 'evil', IfNoneMatch: '*' })).catch((e) => e);
    expect(again.$metadata?.httpStatusCode).toBe(412);

    const big = Buffer.alloc(11 * 1024 * 1024, 1);
    const mkey = incrementalKey(c.prefix, 'web1', 'c1', 's2');
    const upload = (body: Buffer) =>
      new Upload({ client: pi.s3, params: { Bucket: c.bucket, Key: mkey, Body: body, IfNoneMatch: '*' }, partSize: 5 * 1024 * 1024, queueSize: 2 }).done();
    await upload(big);
    const second = await upload(Buffer.alloc(11 * 1024 * 1024, 2)).catch((e) => e);
    expect(second.$metadata?.httpStatusCode).toBe(412);
    // the first content stands (read back as admin: the Pi cannot read)
    const got = await admin.s3.send(new GetObjectCommand({ Bucket: c.bucket, Key: mkey, Range: 'bytes=0-3' }));
    expect([...(await got.Body!.transformToByteArray())]).toEqual([1, 1, 1, 1]);
  });

  it('--rotate-key saves a new key and keeps the old one active until --retire-old-keys', async () => {
    await run(inv);
    const old = readCredentials(credentialsFile(state, 'writer'))!;
    const keysOf = async () => (await admin.iam.send(new ListAccessKeysCommand({ UserName: old.userName }))).AccessKeyMetadata!.map((k) => k.AccessKeyId).sort();
    const r = await run(inv, { rotateKey: true });
    expect(r.summary.changed).toBe(1);
    expect(r.out).toContain(`keep ${old.accessKeyId} active until --retire-old-keys`);
    const now = readCredentials(credentialsFile(state, 'writer'))!;
    expect(now.accessKeyId).not.toBe(old.accessKeyId);
    // the Pi still holds the old key: it must keep working until install-runtime
    expect(await keysOf()).toEqual([old.accessKeyId, now.accessKeyId].sort());
    expect(r.out).not.toContain(now.secretAccessKey);
    expect(r.out).not.toContain(old.secretAccessKey);
    // a plain run deletes nothing, says why, and reports no change
    const again = await run(inv);
    expect(again.summary.changed).toBe(0);
    expect(again.out).toContain(`still has key ${old.accessKeyId}`);
    expect(again.out).toContain('--retire-old-keys');
    expect(await keysOf()).toEqual([old.accessKeyId, now.accessKeyId].sort());
    // rotating again now would need a third key: refused, nothing deleted
    const third = await run(inv, { rotateKey: true });
    expect(third.summary.failed).toBe(1);
    expect(third.out).toMatch(/already has two access keys .*IAM allows no third/);
    expect(await keysOf()).toEqual([old.accessKeyId, now.accessKeyId].sort());
    expect(readCredentials(credentialsFile(state, 'writer'))!.accessKeyId).toBe(now.accessKeyId);
    // after install-runtime: retire
    const retire = await run(inv, { retireOldKeys: true });
    expect(retire.summary.changed).toBe(1);
    expect(await keysOf()).toEqual([now.accessKeyId]);
    expect((await run(inv)).summary.changed).toBe(0);
  });

  it('a lost state file gets a new key next to the old one; --retire-old-keys removes the old one', async () => {
    await run(inv);
    const old = readCredentials(credentialsFile(state, 'writer'))!;
    rmSync(credentialsFile(state, 'writer'));
    const r = await run(inv);
    expect(r.summary.changed).toBe(1);
    const now = readCredentials(credentialsFile(state, 'writer'))!;
    const keysOf = async () => (await admin.iam.send(new ListAccessKeysCommand({ UserName: now.userName }))).AccessKeyMetadata!.map((k) => k.AccessKeyId).sort();
    expect(await keysOf()).toEqual([old.accessKeyId, now.accessKeyId].sort());
    expect((await run(inv, { retireOldKeys: true })).summary.changed).toBe(1);
    expect(await keysOf()).toEqual([now.accessKeyId]);
  });

  it('--restore-user adds a read-only user whose credentials go to restore-credentials.json', async () => {
    const r = await run(inv, { restoreUser: true });
    expect(r.summary.failed).toBe(0);
    const rc = readCredentials(credentialsFile(state, 'restore'))!;
    expect(rc.userName).toBe('pullvault-pi01-restore');
    const doc = parsePolicy((await admin.iam.send(new GetUserPolicyCommand({ UserName: rc.userName, PolicyName: 'pullvault-restore' }))).PolicyDocument)!;
    expect(JSON.stringify(doc)).not.toMatch(/Put|Delete/);
    expect(r.out).not.toContain(rc.secretAccessKey);
  });

  it('Object Lock: set at creation; asked for on an existing bucket without it → a plain error', async () => {
    const locked = inventoryWith({ bucket: 'pv-int-locked', objectLock: { mode: 'GOVERNANCE', days: 30 } });
    const r = await run(locked);
    expect(r.summary.failed, r.out).toBe(0);
    const lock = await admin.s3.send(new GetObjectLockConfigurationCommand({ Bucket: 'pv-int-locked' }));
    expect(lock.ObjectLockConfiguration).toMatchObject({ ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 30 } } });
    expect((await run(locked)).summary.changed).toBe(0);

    await admin.s3.send(new CreateBucketCommand({ Bucket: 'pv-int-nolock', CreateBucketConfiguration: { LocationConstraint: 'eu-central-1' } }));
    const late = await run(inventoryWith({ bucket: 'pv-int-nolock', objectLock: { mode: 'COMPLIANCE', days: 30 } }));
    expect(late.summary.failed).toBe(1);
    expect(late.out).toMatch(/already exists without Object Lock; pullvault turns Object Lock on only when it creates the bucket/);
  });

  it('region mismatch is a clear error', async () => {
    const west = awsClients({ region: 'us-west-2', endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
    await west.s3.send(new CreateBucketCommand({ Bucket: 'pv-int-elsewhere', CreateBucketConfiguration: { LocationConstraint: 'us-west-2' } }));
    const r = await run(inventoryWith({ bucket: 'pv-int-elsewhere' }));
    expect(r.out).toMatch(/region mismatch: bucket pv-int-elsewhere is in us-west-2, but offsite.region says eu-central-1/);
    expect(r.summary.failed).toBe(1);
    expect(r.summary.skipped).toBeGreaterThan(0);
  });

  it('--print-policies writes the exact documents and touches nothing', async () => {
    const dir = path.join(state, 'printed');
    const r = (await provisionAws(inv, {
      clients: admin,
      reporter: new TextReporter(new Redactor(), () => {}),
      redactor: new Redactor(),
      stateDir: state,
      printPoliciesDir: dir,
    })) as { printed: string[] };
    expect(r.printed.map((f) => path.basename(f)).sort()).toEqual(['bucket-policy.json', 'lifecycle-configuration.json', 'restore-identity-policy.json', 'writer-identity-policy.json']);
    expect((await admin.s3.send(new ListBucketsCommand({}))).Buckets ?? []).toEqual([]);
    // before the writer exists its unique id is not known: the document says so
    expect(readFileSync(path.join(dir, 'bucket-policy.json'), 'utf8')).toContain('(unique id of pullvault-pi01-writer, assigned when it is created)');
    const writer = parsePolicy((await admin.iam.send(new GetUserPolicyCommand({ UserName: 'pullvault-pi01-writer', PolicyName: 'pullvault-writer' })).catch(() => ({ PolicyDocument: '' }))).PolicyDocument);
    expect(writer).toBeNull();
    // once applied, printing again gives exactly what is in place
    await run(inv);
    await provisionAws(inv, { clients: admin, reporter: new TextReporter(new Redactor(), () => {}), redactor: new Redactor(), stateDir: state, printPoliciesDir: dir });
    const applied = parsePolicy((await admin.s3.send(new GetBucketPolicyCommand({ Bucket: target.bucket }))).Policy);
    expect(applied).toEqual(JSON.parse(readFileSync(path.join(dir, 'bucket-policy.json'), 'utf8')));
    const applyWriter = parsePolicy((await admin.iam.send(new GetUserPolicyCommand({ UserName: 'pullvault-pi01-writer', PolicyName: 'pullvault-writer' }))).PolicyDocument);
    expect(applyWriter).toEqual(JSON.parse(readFileSync(path.join(dir, 'writer-identity-policy.json'), 'utf8')));
  });

  it('a writer recreated under the same name (new unique id) is noticed: the next run re-pins the bucket policy to it', async () => {
    await run(inv);
    const user = 'pullvault-pi01-writer';
    const oldId = (await admin.iam.send(new GetUserCommand({ UserName: user }))).User!.UserId!;
    for (const k of (await admin.iam.send(new ListAccessKeysCommand({ UserName: user }))).AccessKeyMetadata!)
      await admin.iam.send(new DeleteAccessKeyCommand({ UserName: user, AccessKeyId: k.AccessKeyId! }));
    await admin.iam.send(new DeleteUserPolicyCommand({ UserName: user, PolicyName: 'pullvault-writer' }));
    await admin.iam.send(new DeleteUserCommand({ UserName: user }));
    await admin.iam.send(new CreateUserCommand({ UserName: user }));
    const newId = (await admin.iam.send(new GetUserCommand({ UserName: user }))).User!.UserId!;
    expect(newId).not.toBe(oldId);
    // until the owner runs provision-aws again, the bucket policy names the old id: the new user is denied everything
    const before = JSON.stringify(parsePolicy((await admin.s3.send(new GetBucketPolicyCommand({ Bucket: target.bucket }))).Policy));
    expect(before).toContain(oldId);
    const dry = await run(inv, { dryRun: true });
    expect(dry.out).toMatch(new RegExp(`"aws:userid": \\[\\s+-\\s+"${oldId}"\\s+\\+\\s+"${newId}"`));
    await run(inv);
    const after = JSON.stringify(parsePolicy((await admin.s3.send(new GetBucketPolicyCommand({ Bucket: target.bucket }))).Policy));
    expect(after).toContain(newId);
    expect(after).not.toContain(oldId);
    expect((await run(inv)).summary.changed).toBe(0);
  });

  it('a customer-managed SSE-KMS default the owner set is kept, pinned, and its key granted through S3 only', async () => {
    const b = 'pv-int-kms';
    const kmsInv = inventoryWith({ bucket: b, storageClass: 'GLACIER' });
    const key = `arn:aws:kms:eu-central-1:${MOTO_ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
    await admin.s3.send(new CreateBucketCommand({ Bucket: b, CreateBucketConfiguration: { LocationConstraint: 'eu-central-1' } }));
    await admin.s3.send(
      new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: key } }] } }),
    );
    const r = await run(kmsInv, { restoreUser: true });
    expect(r.summary.failed, r.out).toBe(0);
    const enc = await admin.s3.send(new GetBucketEncryptionCommand({ Bucket: b }));
    expect(enc.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault).toMatchObject({ SSEAlgorithm: 'aws:kms', KMSMasterKeyID: key });
    const writerDoc = parsePolicy((await admin.iam.send(new GetUserPolicyCommand({ UserName: 'pullvault-pi01-writer', PolicyName: 'pullvault-writer' }))).PolicyDocument)!;
    const grant = writerDoc.Statement.find((s) => s.Sid === 'BucketKeyThroughS3')!;
    expect(grant).toMatchObject({ Action: ['kms:GenerateDataKey', 'kms:Decrypt'], Resource: key, Condition: { StringEquals: { 'kms:ViaService': 's3.eu-central-1.amazonaws.com' } } });
    const restoreDoc = parsePolicy((await admin.iam.send(new GetUserPolicyCommand({ UserName: 'pullvault-pi01-restore', PolicyName: 'pullvault-restore' }))).PolicyDocument)!;
    expect(restoreDoc.Statement.map((s) => s.Sid)).toEqual(expect.arrayContaining(['RestoreArchivedObjects', 'DecryptThroughS3']));
    const policy = JSON.stringify(parsePolicy((await admin.s3.send(new GetBucketPolicyCommand({ Bucket: b }))).Policy));
    expect(policy).toContain(`"s3:x-amz-server-side-encryption-aws-kms-key-id":"${key}"`);
    expect(policy).toContain('"s3:x-amz-storage-class":"GLACIER"');
    expect((await run(kmsInv, { restoreUser: true })).summary.changed).toBe(0);
  });
});
