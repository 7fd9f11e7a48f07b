// The admin side's AWS clients: S3 as the Pi has it (lib/s3-client.ts: same timeouts, same
// endpoint override), plus IAM and STS for provision-aws.
import { IAMClient } from '@aws-sdk/client-iam';
import type { S3Client } from '@aws-sdk/client-s3';
import { STSClient } from '@aws-sdk/client-sts';
import { awsClientConfig, awsEndpoint, s3Client, type AwsOptions } from '../../lib/s3-client.ts';
import { ReadOnlyViolation } from './types.ts';

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

/** The reading requests of the AWS APIs provision-aws uses: everything else changes something. */
const isReadOnlyAwsCommand = (command: object): boolean => /^(Get|Head|List)[A-Za-z]*Command$/.test(command.constructor.name);

/**
 * The clients a dry run plans with: a request that would change something (Put*, Create*,
 * Delete*, …) is refused before it is sent; reads go through.
 */
export function readOnlyClients(clients: AwsClients): AwsClients {
  const guard = <C extends { send: (...a: never[]) => unknown }>(client: C, name: string): C =>
    new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== 'send') return Reflect.get(target, prop, receiver);
        return async (command: object, ...rest: unknown[]) => {
          if (!isReadOnlyAwsCommand(command)) throw new ReadOnlyViolation(`${name}: dry run: refused to send ${command.constructor.name}`);
          return (target.send as (...a: unknown[]) => unknown).call(target, command, ...rest);
        };
      },
    });
  return { ...clients, s3: guard(clients.s3, 's3'), iam: guard(clients.iam, 'iam'), sts: guard(clients.sts, 'sts') };
}
