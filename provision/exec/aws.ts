// The admin side's AWS clients: S3 as the Pi has it (lib/s3-client.ts: same timeouts, same
// endpoint override), plus IAM and STS for provision-aws.
import { IAMClient } from '@aws-sdk/client-iam';
import type { S3Client } from '@aws-sdk/client-s3';
import { STSClient } from '@aws-sdk/client-sts';
import { awsClientConfig, awsEndpoint, s3Client, type AwsOptions } from '../../lib/s3-client.ts';

export interface AwsClients {
  s3: S3Client;
  iam: IAMClient;
  sts: STSClient;
  region: string;
  endpoint?: string;
}

export function awsClients(opts: AwsOptions): AwsClients {
  const endpoint = awsEndpoint(opts);
  return {
    s3: s3Client({ ...opts, endpoint }),
    // IAM is global; on AWS its endpoint is fixed, a test server serves it at the same URL
    iam: new IAMClient({ ...awsClientConfig(opts), region: endpoint ? opts.region : 'us-east-1', endpoint }),
    sts: new STSClient({ ...awsClientConfig(opts), endpoint }),
    region: opts.region,
    endpoint,
  };
}
