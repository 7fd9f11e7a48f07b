// Every kind of offsite store through the one conformance suite: the folder target on a temp
// dir, S3 against moto over real HTTP (If-None-Match on single and multipart puts, ListObjectsV2
// pages of 2), and the in-memory store the tests use.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import type { TSchema } from '@sinclair/typebox';
import { afterAll, describe, expect, it } from 'vitest';
import { awsClients } from '../../provision/exec/aws.ts';
import { InventorySchema } from '../../contract/inventory-schema.ts';
import { TARGET_KINDS } from '../../runtime/offsite/open-target.ts';
import { dirTargetKind } from '../../runtime/offsite/target-dir.ts';
import { s3TargetKind } from '../../runtime/offsite/target-s3.ts';
import { offsiteTargetConformance } from '../conformance/offsite-target.ts';
import { MemoryTargetSchema, memoryTargetKind } from '../fixtures/memory-target.ts';
import { MOTO_CREDENTIALS, startMoto } from '../lab/moto.ts';

/** A kind's schema fragment: its member of the inventory's offsite union. */
const offsiteMember = (type: string): TSchema => {
  const m = (InventorySchema.properties.offsite as unknown as { anyOf: (TSchema & { properties: { type: { const: string } } })[] }).anyOf.find((x) => x.properties.type.const === type);
  if (!m) throw new Error(`no offsite member of type ${type}`);
  return m;
};

const work = mkdtempSync(join(tmpdir(), 'pv-target-conformance-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let n = 0;

offsiteTargetConformance('dir', () => ({
  kind: dirTargetKind,
  schema: offsiteMember('dir'),
  spec: () => ({ type: 'dir', path: join(work, `store-${++n}`) }),
  badSpec: { spec: { type: 'dir', path: 'relative/path' }, field: 'path' },
  arg: { text: 'dir:/mnt/offsite', spec: { path: '/mnt/offsite' } as never },
  largeBytes: 6 << 20,
}));

offsiteTargetConformance('memory (tests only)', () => ({
  kind: memoryTargetKind,
  schema: MemoryTargetSchema,
  spec: () => ({ type: 'memory', name: `m${++n}` }),
  badSpec: { spec: { type: 'memory', name: '' }, field: 'name' },
  arg: { text: 'memory:x', spec: { name: 'x' } as never },
  largeBytes: 6 << 20,
}));

const BUCKET = 'pv-conformance';
const REGION = 'eu-central-1';
const s3Spec = (prefix: string, endpoint: string) => ({ type: 's3', bucket: BUCKET, region: REGION, prefix, retentionDays: { full: 90, incremental: 60 }, endpoint });

offsiteTargetConformance('s3 (moto)', async () => {
  const moto = await startMoto();
  const admin = awsClients({ region: REGION, endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
  await admin.s3.send(new CreateBucketCommand({ Bucket: BUCKET, CreateBucketConfiguration: { LocationConstraint: REGION } }));
  admin.s3.destroy();
  return {
    kind: s3TargetKind,
    schema: offsiteMember('s3'),
    spec: () => s3Spec(`c${++n}/`, moto.endpoint),
    creds: { ...MOTO_CREDENTIALS },
    // parts of the minimum size (5 MiB), list pages of two objects
    tuning: { partSize: 5 << 20, listPageSize: 2 },
    badSpec: { spec: { ...s3Spec('p/', moto.endpoint), bucket: 'Not_A_Bucket' }, field: 'bucket' },
    arg: { text: 's3://some-bucket/pi01', spec: { bucket: 'some-bucket', prefix: 'pi01/' } as never },
    largeBytes: 6 << 20,
    silentSpec: (endpoint) => s3Spec('p/', endpoint),
    close: () => moto.stop(),
  };
});

describe('the registry of store kinds', () => {
  it('has exactly the kinds the inventory accepts: each member of the offsite union has a kind, each kind a member', () => {
    const members = (InventorySchema.properties.offsite as unknown as { anyOf: { properties: { type: { const: string } } }[] }).anyOf.map((m) => m.properties.type.const);
    expect(TARGET_KINDS.map((k) => k.type).sort()).toEqual(members.sort());
  });
});
