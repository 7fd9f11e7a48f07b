// AWS clients from one place: region and credentials from the standard chain (environment,
// profile, SSO…), or explicit ones; an endpoint override points everything at a test server.
import { IAMClient } from '@aws-sdk/client-iam';
import { S3Client } from '@aws-sdk/client-s3';
import { STSClient } from '@aws-sdk/client-sts';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface AwsOptions {
  region: string;
  /** e.g. http://127.0.0.1:5000 for moto; unset for real AWS */
  endpoint?: string;
  credentials?: AwsCredentials;
}

export interface AwsClients {
  s3: S3Client;
  iam: IAMClient;
  sts: STSClient;
  region: string;
  endpoint?: string;
}

export function awsClients(opts: AwsOptions): AwsClients {
  const common = {
    region: opts.region,
    credentials: opts.credentials,
    maxAttempts: 4,
  };
  const endpoint = opts.endpoint ?? process.env.PULLVAULT_AWS_ENDPOINT;
  return {
    s3: new S3Client({ ...common, endpoint, forcePathStyle: endpoint !== undefined }),
    // IAM is global; on AWS its endpoint is fixed, a test server serves it at the same URL
    iam: new IAMClient({ ...common, region: endpoint ? opts.region : 'us-east-1', endpoint }),
    sts: new STSClient({ ...common, endpoint }),
    region: opts.region,
    endpoint,
  };
}
