// AWS errors turned into one line a person can act on: which permission is missing, that there
// are no credentials, that the bucket is someone else's or in another region.

export class AwsProvisionError extends Error {}

export interface AwsErrorLike {
  name?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { headers?: Record<string, string> };
}

export function errName(e: unknown): string {
  const x = e as AwsErrorLike;
  return x?.name ?? x?.Code ?? '';
}

export function httpStatus(e: unknown): number | undefined {
  return (e as AwsErrorLike)?.$metadata?.httpStatusCode;
}

/** True for the "it does not exist" answers, whatever each API calls them. */
export function isNotFound(e: unknown, ...names: string[]): boolean {
  const n = errName(e);
  return names.includes(n) || n === 'NoSuchEntity' || n === 'NoSuchEntityException' || n === 'NotFound' || n === 'NoSuchBucket';
}

const ACCESS_DENIED = new Set(['AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'Forbidden']);
const NO_CREDENTIALS = new Set(['CredentialsProviderError', 'ProviderError']);
const BAD_CREDENTIALS = new Set(['InvalidClientTokenId', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'ExpiredTokenException', 'UnrecognizedClientException']);

export function explainCredentials(e: unknown): Error | null {
  const n = errName(e);
  if (NO_CREDENTIALS.has(n) || /Could not load credentials|credential.*not.*(found|load)/i.test(String((e as Error)?.message)))
    return new AwsProvisionError('no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) for an admin of the account, or run `aws sso login`');
  if (BAD_CREDENTIALS.has(n)) return new AwsProvisionError(`the AWS credentials were refused (${n}): check AWS_PROFILE / the access key, or log in again`);
  return null;
}

/**
 * Runs one admin call; AccessDenied becomes "needs <permission> on <resource>", missing or
 * refused credentials a hint on how to provide them. Other errors pass through unchanged.
 */
export async function call<T>(permission: string, resource: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const cred = explainCredentials(e);
    if (cred) throw cred;
    if (ACCESS_DENIED.has(errName(e)) || (httpStatus(e) === 403 && !errName(e)))
      throw new AwsProvisionError(`access denied: the admin credentials need ${permission} on ${resource}`);
    throw e;
  }
}
