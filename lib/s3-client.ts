// The S3 client and the request bounds every AWS client shares. Region and credentials come from
// the standard chain (environment, profile, SSO…) or are given; an endpoint override points the
// client at a test server. Every request is bounded: a connect timeout, a socket idle timeout
// (also while a response body streams: a store that goes silent mid-download errors the stream),
// and a bounded number of attempts with the SDK's exponential backoff with jitter ("standard"
// retry mode). The Pi's runtime imports only this file of the AWS code: no IAM or STS client.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';

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

/** The endpoint override: the option, else PULLVAULT_AWS_ENDPOINT, else none (real AWS). */
export function awsEndpoint(opts: AwsOptions): string | undefined {
  return opts.endpoint ?? process.env.PULLVAULT_AWS_ENDPOINT;
}

/** Settings every AWS client gets (fresh agents each call). */
export function awsClientConfig(opts: AwsOptions) {
  const t = { ...AWS_TIMEOUTS, ...opts.timeouts };
  return {
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
  };
}

export function s3Client(opts: AwsOptions): S3Client {
  const endpoint = awsEndpoint(opts);
  return new S3Client({ ...awsClientConfig(opts), endpoint, forcePathStyle: endpoint !== undefined });
}
