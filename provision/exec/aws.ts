// AWS clients from one place: region and credentials from the standard chain (environment,
// profile, SSO…), or explicit ones; an endpoint override points everything at a test server.
// Every request is bounded: a connect timeout, a socket idle timeout (also while a response body
// streams: a store that goes silent mid-download errors the stream), and a bounded number of
// attempts with the SDK's exponential backoff with jitter ("standard" retry mode).
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { IAMClient } from '@aws-sdk/client-iam';
import { S3Client } from '@aws-sdk/client-s3';
import { STSClient } from '@aws-sdk/client-sts';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface AwsTimeouts {
  /** TCP (and TLS) connect */
  connectMs: number;
  /** no byte sent or received on the socket for this long: the request fails (and is retried) */
  idleMs: number;
  /** tries per request, the first included */
  maxAttempts: number;
}

/** Generous for a home uplink (an S3 part is 16 MiB), short enough that a silent store is noticed. */
export const AWS_TIMEOUTS: AwsTimeouts = { connectMs: 10_000, idleMs: 60_000, maxAttempts: 4 };

export interface AwsOptions {
  region: string;
  /** e.g. http://127.0.0.1:5000 for moto; unset for real AWS */
  endpoint?: string;
  credentials?: AwsCredentials;
  /** default AWS_TIMEOUTS */
  timeouts?: Partial<AwsTimeouts>;
}

export interface AwsClients {
  s3: S3Client;
  iam: IAMClient;
  sts: STSClient;
  region: string;
  endpoint?: string;
}

export function awsClients(opts: AwsOptions): AwsClients {
  const t = { ...AWS_TIMEOUTS, ...opts.timeouts };
  const common = () => ({
    region: opts.region,
    credentials: opts.credentials,
    maxAttempts: t.maxAttempts,
    retryMode: 'standard',
    // the client's own agents: without them, a request with "Expect: 100-continue" (an S3 part)
    // gets a private agent that client.destroy() never reaches, and its socket outlives the client
    requestHandler: {
      connectionTimeout: t.connectMs,
      socketTimeout: t.idleMs,
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 50 }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 50 }),
    },
  });
  const endpoint = opts.endpoint ?? process.env.PULLVAULT_AWS_ENDPOINT;
  return {
    s3: new S3Client({ ...common(), endpoint, forcePathStyle: endpoint !== undefined }),
    // IAM is global; on AWS its endpoint is fixed, a test server serves it at the same URL
    iam: new IAMClient({ ...common(), region: endpoint ? opts.region : 'us-east-1', endpoint }),
    sts: new STSClient({ ...common(), endpoint }),
    region: opts.region,
    endpoint,
  };
}
