// provision-aws composed: inventory → documents and steps (pure: policies.ts, lifecycle.ts) → the engine
// runs them against the injected AWS clients. Also --print-policies, which only writes files.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { readOnlyClients, type AwsClients } from '../exec/aws.ts';
import { runSteps, type Plan, type Redactor, type Reporter, type RunSummary } from '../engine/index.ts';
import type { Inventory, S3TargetSpec } from '../../contract/inventory-schema.ts';
import { restoreUserName, writerUserName } from '../../contract/inventory-defaults.ts';
import { mergeBucketPolicy, normalizedJson, restoreIdentityPolicy, writerIdentityPolicy } from './policies.ts';
import { mergeLifecycle, storageClassWarnings } from './lifecycle.ts';
import { AwsProvisionError, explainCredentials } from './errors.ts';
import { awsSteps, currentBucketPolicy, policyParams, readAwsFacts, type AwsCtx } from './steps.ts';
import { GetBucketLifecycleConfigurationCommand } from '@aws-sdk/client-s3';

export { AwsProvisionError } from './errors.ts';
export { credentialsFile, readCredentials, type S3Credentials } from './credentials.ts';

export interface ProvisionAwsOptions {
  clients: AwsClients;
  dryRun?: boolean;
  /** gets the plan before anything is applied */
  onPlan?: (plan: Plan) => void | Promise<void>;
  reporter: Reporter;
  redactor: Redactor;
  stateDir: string;
  rotateKey?: boolean;
  /** delete the writer's keys other than the saved one (after the Pi got the new one) */
  retireOldKeys?: boolean;
  /** write the documents into this directory and change nothing */
  printPoliciesDir?: string;
  /** also create the read-only restore user (also when offsite.restoreUser is set) */
  restoreUser?: boolean;
}

export function s3Target(inv: Inventory): S3TargetSpec {
  if (inv.offsite.type !== 's3') throw new AwsProvisionError(`offsite.type is "${inv.offsite.type}": there is nothing to provision in AWS`);
  return inv.offsite;
}

/** The account the admin credentials belong to (and a clear error when there are none). */
async function callerAccount(clients: AwsClients): Promise<{ accountId: string; arn: string }> {
  try {
    const id = await clients.sts.send(new GetCallerIdentityCommand({}));
    return { accountId: id.Account!, arn: id.Arn ?? '' };
  } catch (e) {
    throw explainCredentials(e) ?? new AwsProvisionError(`cannot ask STS who the admin credentials belong to: ${(e as Error).message}`);
  }
}

function makeCtx(inv: Inventory, o: ProvisionAwsOptions, accountId: string): AwsCtx {
  const target = s3Target(inv);
  return {
    // a dry run (and --print-policies) plans with clients that refuse every change
    clients: o.dryRun || o.printPoliciesDir ? readOnlyClients(o.clients) : o.clients,
    target,
    piName: inv.pi.name,
    fullEveryDays: inv.schedule.offsite.fullEveryDays,
    accountId,
    writerUser: writerUserName(target, inv.pi.name),
    restoreUser: o.restoreUser || target.restoreUser ? restoreUserName(target, inv.pi.name) : undefined,
    stateDir: o.stateDir,
    rotateKey: o.rotateKey ?? false,
    retireOldKeys: o.retireOldKeys ?? false,
    redactor: o.redactor,
    reporter: o.reporter,
    usersExisting: new Set(),
    userIds: new Map(),
  };
}

export async function provisionAws(inv: Inventory, o: ProvisionAwsOptions): Promise<RunSummary | { printed: string[] }> {
  const target = s3Target(inv);
  const { accountId } = await callerAccount(o.clients);
  const ctx = makeCtx(inv, o, accountId);
  if (o.printPoliciesDir) return { printed: await printPolicies(ctx, o.printPoliciesDir) };
  for (const w of storageClassWarnings(target, inv.schedule.offsite.fullEveryDays)) o.reporter.line(`warning: ${w}`);
  // the facts, once, before planning (read-only requests); the checks only read them
  await readAwsFacts(ctx);
  return runSteps(awsSteps(ctx), ctx, { dryRun: o.dryRun, reporter: o.reporter, onPlan: o.onPlan });
}

/**
 * Writes the exact documents an apply would put in place (bucket policy and lifecycle merged
 * with what the bucket already has, when it exists), reading only. Returns the file paths.
 */
async function printPolicies(ctx: AwsCtx, dir: string): Promise<string[]> {
  const readOrEmpty = async <T>(f: () => Promise<T>, empty: T): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      const n = (e as { name?: string }).name ?? '';
      if (/NoSuch|NotFound/.test(n) || (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return empty;
      throw e;
    }
  };
  const facts = await readAwsFacts(ctx);
  // a fact that could not be read stops here as it would stop a plan
  if (facts.bucket.error) throw facts.bucket.error;
  if (facts.encryption.error) throw facts.encryption.error;
  const writer = facts.users.get(ctx.writerUser);
  if (writer?.error) throw writer.error;
  const curPolicy = await readOrEmpty(() => currentBucketPolicy(ctx), null);
  const params = policyParams(ctx);
  const curRules = await readOrEmpty(
    async () => ((await ctx.clients.s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: ctx.target.bucket }))).Rules ?? []) as unknown as Record<string, unknown>[],
    [] as Record<string, unknown>[],
  );
  const docs: Record<string, unknown> = {
    'writer-identity-policy.json': writerIdentityPolicy(params),
    'bucket-policy.json': mergeBucketPolicy(curPolicy, params),
    'lifecycle-configuration.json': mergeLifecycle(curRules, ctx.target, ctx.piName, ctx.fullEveryDays),
    'restore-identity-policy.json': restoreIdentityPolicy(params),
  };
  mkdirSync(dir, { recursive: true });
  const out: string[] = [];
  for (const [name, doc] of Object.entries(docs)) {
    const file = path.join(dir, name);
    writeFileSync(file, normalizedJson(doc));
    out.push(file);
    ctx.reporter.line(`wrote ${file}`);
  }
  return out;
}
