// Errors people must be able to act on, with AWS's answers played by a fake client:
// missing permission named, no credentials, a bucket name owned by someone else.
import { describe, expect, it } from 'vitest';
import { Redactor, TextReporter, type RunSummary } from '../../provision/engine/index.ts';
import type { AwsClients } from '../../provision/exec/aws.ts';
import type { Inventory } from '../../contract/inventory-schema.ts';
import { provisionAws } from '../../provision/aws/index.ts';
import { readFileSync } from 'node:fs';

const inv = JSON.parse(readFileSync(new URL('../../inventory.json', import.meta.url), 'utf8')) as Inventory;

function err(name: string, status: number, message = name) {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
}

/** A fake AwsClients: each command class name maps to a result or an error. */
function fakeClients(answers: Record<string, unknown>): AwsClients {
  const send = async (cmd: object) => {
    const n = cmd.constructor.name;
    if (!(n in answers)) throw new Error(`unexpected ${n}`);
    const a = answers[n];
    if (a instanceof Error) throw a;
    return a;
  };
  return { s3: { send }, iam: { send }, sts: { send }, region: 'eu-central-1' } as unknown as AwsClients;
}

async function run(answers: Record<string, unknown>) {
  let out = '';
  const r = new Redactor();
  const summary = (await provisionAws(inv, { clients: fakeClients(answers), reporter: new TextReporter(r, (t) => (out += t)), redactor: r, stateDir: '/nonexistent', dryRun: true })) as RunSummary;
  return { out, summary };
}

const me = { GetCallerIdentityCommand: { Account: '111122223333', Arn: 'arn:aws:iam::111122223333:user/admin' } };

describe('provision-aws errors', () => {
  it('no credentials: one line saying how to provide them', async () => {
    await expect(run({ GetCallerIdentityCommand: err('CredentialsProviderError', 0, 'Could not load credentials from any providers') })).rejects.toThrow(
      /^no AWS credentials found: set AWS_PROFILE/,
    );
  });

  it('refused credentials', async () => {
    await expect(run({ GetCallerIdentityCommand: err('InvalidClientTokenId', 403) })).rejects.toThrow(/the AWS credentials were refused \(InvalidClientTokenId\)/);
  });

  it('access denied on an admin call names the missing permission', async () => {
    const { out, summary } = await run({
      ...me,
      HeadBucketCommand: {},
      GetBucketLocationCommand: { LocationConstraint: 'eu-central-1' },
      GetPublicAccessBlockCommand: err('AccessDenied', 403),
      GetBucketOwnershipControlsCommand: { OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] } },
      GetBucketEncryptionCommand: { ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] } },
      GetBucketVersioningCommand: { Status: 'Enabled' },
      GetBucketLifecycleConfigurationCommand: err('NoSuchLifecycleConfiguration', 404),
      GetUserCommand: err('AccessDenied', 403),
      GetBucketPolicyCommand: err('NoSuchBucketPolicy', 404),
    });
    expect(out).toContain('access denied: the admin credentials need s3:GetBucketPublicAccessBlock on arn:aws:s3:::pullvault-example-backups');
    expect(out).toContain('access denied: the admin credentials need iam:GetUser on arn:aws:iam::111122223333:user/pullvault-pi01-writer');
    expect(summary.failed).toBe(2);
  });

  it('a bucket name owned by someone else is a clear error, and nothing depending on it runs', async () => {
    const { out, summary } = await run({ ...me, HeadBucketCommand: err('Forbidden', 403), GetUserCommand: err('NoSuchEntity', 404) });
    expect(out).toMatch(/bucket pullvault-example-backups exists but is not yours .* choose another offsite.bucket/);
    expect(summary.results.find((r) => r.id === 's3: lifecycle rules')!.status).toBe('skipped');
  });

  it('a bucket in another region (AWS answers 301) is a region mismatch', async () => {
    const redirect = Object.assign(err('PermanentRedirect', 301), { $response: { headers: { 'x-amz-bucket-region': 'us-west-2' } } });
    const { out } = await run({ ...me, HeadBucketCommand: redirect, GetUserCommand: err('NoSuchEntity', 404) });
    expect(out).toMatch(/region mismatch: bucket pullvault-example-backups is in us-west-2, but offsite.region says eu-central-1/);
  });

  it('a dir offsite target has nothing to provision', async () => {
    const dirInv = { ...inv, offsite: { type: 'dir' as const, path: '/srv/offsite' } };
    const r = new Redactor();
    await expect(
      provisionAws(dirInv, { clients: fakeClients(me), reporter: new TextReporter(r, () => {}), redactor: r, stateDir: '/x' }),
    ).rejects.toThrow(/offsite.type is "dir": there is nothing to provision in AWS/);
  });
});
