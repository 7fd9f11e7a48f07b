// The lab's moto server speaks S3/IAM/STS and honours If-None-Match on PutObject and
// CompleteMultipartUpload: the write-once behaviour pullvault relies on, checked for real.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { CreateUserCommand, GetUserCommand } from '@aws-sdk/client-iam';
import { PutBucketPolicyCommand } from '@aws-sdk/client-s3';
import { awsClients, type AwsClients } from '../../provision/exec/aws.ts';
import { MOTO_ACCOUNT_ID, MOTO_CREDENTIALS, startMoto, type Moto } from './moto.ts';

const Bucket = 'lab-moto-check';
let moto: Moto;
let c: AwsClients;

function statusOf(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

beforeAll(async () => {
  const t0 = Date.now();
  moto = await startMoto();
  console.log(`moto up on ${moto.endpoint} in ${Date.now() - t0} ms`);
  c = awsClients({ region: 'eu-central-1', endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
  await c.s3.send(new CreateBucketCommand({ Bucket, CreateBucketConfiguration: { LocationConstraint: 'eu-central-1' } }));
});
afterAll(async () => {
  await moto?.stop();
});

describe('moto lab endpoint', () => {
  it('speaks STS and IAM', async () => {
    const id = await c.sts.send(new GetCallerIdentityCommand({}));
    expect(id.Account).toBe(MOTO_ACCOUNT_ID);
    await c.iam.send(new CreateUserCommand({ UserName: 'lab-check' }));
    const u = await c.iam.send(new GetUserCommand({ UserName: 'lab-check' }));
    expect(u.User?.Arn).toBe(`arn:aws:iam::${MOTO_ACCOUNT_ID}:user/lab-check`);
  });

  it('PutObject with If-None-Match: * creates once, then 412', async () => {
    await c.s3.send(new PutObjectCommand({ Bucket, Key: 'single/a', Body: 'first', IfNoneMatch: '*' }));
    const second = await c.s3.send(new PutObjectCommand({ Bucket, Key: 'single/a', Body: 'second', IfNoneMatch: '*' })).catch((e) => e);
    expect(statusOf(second)).toBe(412);
    const got = await c.s3.send(new GetObjectCommand({ Bucket, Key: 'single/a' }));
    expect(await got.Body!.transformToString()).toBe('first');
  });

  it('CompleteMultipartUpload with If-None-Match: * creates once, then 412', async () => {
    const part = Buffer.alloc(5 * 1024 * 1024, 7);
    const upload = async (tail: string) => {
      const { UploadId } = await c.s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'multi/a' }));
      const p1 = await c.s3.send(new UploadPartCommand({ Bucket, Key: 'multi/a', UploadId, PartNumber: 1, Body: part }));
      const p2 = await c.s3.send(new UploadPartCommand({ Bucket, Key: 'multi/a', UploadId, PartNumber: 2, Body: tail }));
      return c.s3.send(
        new CompleteMultipartUploadCommand({
          Bucket,
          Key: 'multi/a',
          UploadId,
          IfNoneMatch: '*',
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.ETag }] },
        }),
      );
    };
    await upload('first');
    const second = await upload('second').catch((e) => e);
    expect(statusOf(second)).toBe(412);
    const got = await c.s3.send(new GetObjectCommand({ Bucket, Key: 'multi/a', Range: `bytes=${part.length}-` }));
    expect(await got.Body!.transformToString()).toBe('first');
  });

  it('PutObject without the header overwrites (so the header is what protects us)', async () => {
    await c.s3.send(new PutObjectCommand({ Bucket, Key: 'plain/a', Body: 'one' }));
    await c.s3.send(new PutObjectCommand({ Bucket, Key: 'plain/a', Body: 'two' }));
    const got = await c.s3.send(new GetObjectCommand({ Bucket, Key: 'plain/a' }));
    expect(await got.Body!.transformToString()).toBe('two');
  });

  it("bucket policies: moto's own check ignores Principal and Conditions (so the lab turns it off)", async () => {
    // a Deny that concerns only some other user, only over plain HTTP: on AWS the admin is unaffected
    const policy = {
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'OtherUserOverHttp',
          Effect: 'Deny',
          Principal: { AWS: `arn:aws:iam::${MOTO_ACCOUNT_ID}:user/someone-else` },
          Action: 's3:PutObject',
          Resource: `arn:aws:s3:::${Bucket}/*`,
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        },
      ],
    };
    await c.s3.send(new PutBucketPolicyCommand({ Bucket, Policy: JSON.stringify(policy) }));
    await c.s3.send(new PutObjectCommand({ Bucket, Key: 'policy/a', Body: 'x' })); // lab default: not denied

    const raw = await startMoto({ motoBucketPolicyCheck: true });
    try {
      const rc = awsClients({ region: 'eu-central-1', endpoint: raw.endpoint, credentials: MOTO_CREDENTIALS });
      await rc.s3.send(new CreateBucketCommand({ Bucket, CreateBucketConfiguration: { LocationConstraint: 'eu-central-1' } }));
      await rc.s3.send(new PutBucketPolicyCommand({ Bucket, Policy: JSON.stringify(policy) }));
      const denied = await rc.s3.send(new PutObjectCommand({ Bucket, Key: 'policy/a', Body: 'x' })).catch((e) => e);
      // if this starts failing, moto learnt to evaluate bucket policies: revisit the lab's patch
      expect(statusOf(denied)).toBe(403);
    } finally {
      await raw.stop();
    }
  });
});
