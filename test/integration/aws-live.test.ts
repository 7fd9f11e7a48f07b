// Opt-in, against real AWS: PULLVAULT_LIVE_AWS=1 with admin credentials in the standard chain
// (AWS_PROFILE or AWS_ACCESS_KEY_ID/…; region from PULLVAULT_LIVE_REGION, default eu-central-1).
// Creates a temporary bucket and writer user, runs provision-aws, then the smoke checks with the
// Pi's key — unconditional put 403, conditional put 200, repeat 412, get/list/delete 403 —
// and deletes everything it made. Skipped with one line otherwise.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  DeleteBucketCommand,
  DeleteBucketPolicyCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { DeleteAccessKeyCommand, DeleteUserCommand, DeleteUserPolicyCommand, ListAccessKeysCommand } from '@aws-sdk/client-iam';
import { awsClients, type AwsClients } from '../../provision/exec/aws.ts';
import { Redactor, TextReporter, type RunSummary } from '../../provision/engine/index.ts';
import type { Inventory, S3TargetSpec } from '../../contract/inventory-schema.ts';
import { credentialsFile, provisionAws, readCredentials } from '../../provision/aws/index.ts';
import { fullKey } from '../../contract/s3-layout.ts';
import { readFileSync } from 'node:fs';

const LIVE = process.env.PULLVAULT_LIVE_AWS === '1';
if (!LIVE) console.log('aws-live: skipped (set PULLVAULT_LIVE_AWS=1 with real admin AWS credentials to run)');

const region = process.env.PULLVAULT_LIVE_REGION ?? 'eu-central-1';
const suffix = randomBytes(4).toString('hex');
const bucket = `pullvault-live-${suffix}`;
const writerUser = `pullvault-live-${suffix}-writer`;
const base = JSON.parse(readFileSync(new URL('../../inventory.json', import.meta.url), 'utf8')) as Inventory;
const target: S3TargetSpec = { type: 's3', bucket, region, prefix: 'live/', retentionDays: { full: 40, incremental: 5 }, writerUser };
const inv: Inventory = { ...base, offsite: target };

const status = (e: unknown) => (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!LIVE)('live AWS smoke test (opt-in)', () => {
  let admin: AwsClients;
  let pi: AwsClients;
  let state: string;
  let out = '';

  beforeAll(async () => {
    admin = awsClients({ region });
    state = mkdtempSync(path.join(tmpdir(), 'pv-live-'));
    const redactor = new Redactor();
    const r = (await provisionAws(inv, { clients: admin, reporter: new TextReporter(redactor, (t) => (out += t)), redactor, stateDir: state })) as RunSummary;
    expect(r.failed, out).toBe(0);
    const c = readCredentials(credentialsFile(state, 'writer'))!;
    expect(out).not.toContain(c.secretAccessKey);
    pi = awsClients({ region, credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey } });
    // a new access key takes a few seconds to work everywhere
    for (let i = 0; i < 30; i++) {
      const e = await pi.s3.send(new PutObjectCommand({ Bucket: bucket, Key: fullKey('live/', 'probe', 'c', `p${i}`), Body: 'p', IfNoneMatch: '*' })).catch((x) => x);
      if (!(e instanceof Error)) break;
      await sleep(2000);
    }
  }, 180_000);

  afterAll(async () => {
    if (!admin) return;
    const errors: string[] = [];
    const attempt = async (what: string, f: () => Promise<unknown>) => f().catch((e) => errors.push(`${what}: ${(e as Error).message}`));
    await attempt('bucket policy', () => admin.s3.send(new DeleteBucketPolicyCommand({ Bucket: bucket })));
    for (;;) {
      const v = await admin.s3.send(new ListObjectVersionsCommand({ Bucket: bucket })).catch(() => null);
      const all = [...(v?.Versions ?? []), ...(v?.DeleteMarkers ?? [])];
      if (!all.length) break;
      for (const o of all) await attempt(`object ${o.Key}`, () => admin.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key!, VersionId: o.VersionId })));
    }
    await attempt('bucket', () => admin.s3.send(new DeleteBucketCommand({ Bucket: bucket })));
    const keys = await admin.iam.send(new ListAccessKeysCommand({ UserName: writerUser })).catch(() => null);
    for (const k of keys?.AccessKeyMetadata ?? []) await attempt('key', () => admin.iam.send(new DeleteAccessKeyCommand({ UserName: writerUser, AccessKeyId: k.AccessKeyId })));
    await attempt('user policy', () => admin.iam.send(new DeleteUserPolicyCommand({ UserName: writerUser, PolicyName: 'pullvault-writer' })));
    await attempt('user', () => admin.iam.send(new DeleteUserCommand({ UserName: writerUser })));
    rmSync(state, { recursive: true, force: true });
    if (errors.length) console.error(`aws-live cleanup left something behind:\n${errors.join('\n')}`);
  }, 180_000);

  const key = fullKey('live/', 'web1', 'c1', 's1');

  it('unconditional put → 403', async () => {
    expect(status(await pi.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' })).catch((e) => e))).toBe(403);
  });
  it('conditional put → 200, repeat → 412', async () => {
    const r = await pi.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x', IfNoneMatch: '*' }));
    expect(r.$metadata.httpStatusCode).toBe(200);
    expect(status(await pi.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'y', IfNoneMatch: '*' })).catch((e) => e))).toBe(412);
  });
  it('get, list, delete → 403', async () => {
    expect(status(await pi.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })).catch((e) => e))).toBe(403);
    expect(status(await pi.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'live/' })).catch((e) => e))).toBe(403);
    expect(status(await pi.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch((e) => e))).toBe(403);
  });
  it('a second provision run reports 0 changed', async () => {
    const redactor = new Redactor();
    const r = (await provisionAws(inv, { clients: admin, reporter: new TextReporter(redactor, () => {}), redactor, stateDir: state })) as RunSummary;
    expect(r.changed).toBe(0);
  });
});
