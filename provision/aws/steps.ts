// provision-aws's facts and steps: the bucket, its default encryption and the users are read
// once before planning (readAwsFacts); each step is a read-only check (the facts, or AWS
// Get*/List* of its own setting) that returns the change it wants (with what apply needs in it: a
// plan file carries it), and an apply through the injected clients. The bucket's settings are one step kind (bucketSettingStep); the documents
// come from policies.ts and lifecycle.ts.
import {
  CreateBucketCommand,
  GetBucketEncryptionCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketLocationCommand,
  GetBucketOwnershipControlsCommand,
  GetBucketPolicyCommand,
  GetBucketVersioningCommand,
  GetObjectLockConfigurationCommand,
  GetPublicAccessBlockCommand,
  HeadBucketCommand,
  PutBucketEncryptionCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketOwnershipControlsCommand,
  PutBucketPolicyCommand,
  PutBucketVersioningCommand,
  PutObjectLockConfigurationCommand,
  PutPublicAccessBlockCommand,
  type LifecycleRule as SdkLifecycleRule,
} from '@aws-sdk/client-s3';
import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  DeleteAccessKeyCommand,
  GetUserCommand,
  GetUserPolicyCommand,
  ListAccessKeysCommand,
  ListAttachedUserPoliciesCommand,
  ListUserPoliciesCommand,
  PutUserPolicyCommand,
  type AccessKeyMetadata,
} from '@aws-sdk/client-iam';
import type { AwsClients } from '../exec/aws.ts';
import type { Change, Redactor, Reporter, Step } from '../engine/index.ts';
import type { S3TargetSpec } from '../../contract/inventory-schema.ts';
import {
  SSE_S3,
  bucketArn,
  bucketEncryptionFrom,
  canonicalPolicy,
  mergeBucketPolicy,
  normalizedJson,
  ownedSids,
  parsePolicy,
  restoreIdentityPolicy,
  samePolicy,
  userArn,
  writerIdentityPolicy,
  type BucketEncryption,
  type PolicyDocument,
  type PolicyParams,
} from './policies.ts';
import { canonicalRule, lifecycleRules, mergeLifecycle, ruleIdPrefix } from './lifecycle.ts';
import { AwsProvisionError, call, errName, httpStatus, isNotFound } from './errors.ts';
import { credentialsFile, readCredentials, writeCredentials, type CredentialsRole, type S3Credentials } from './credentials.ts';

const WRITER_POLICY_NAME = 'pullvault-writer';
const RESTORE_POLICY_NAME = 'pullvault-restore';

export interface AwsCtx {
  clients: AwsClients;
  target: S3TargetSpec;
  piName: string;
  /** schedule.offsite.fullEveryDays: how long a chain grows, which the lifecycle must cover */
  fullEveryDays: number;
  accountId: string;
  writerUser: string;
  /** set when the restore user is wanted */
  restoreUser?: string;
  stateDir: string;
  rotateKey: boolean;
  /** delete the writer's keys other than the one in state (the Pi has the new one) */
  retireOldKeys: boolean;
  redactor: Redactor;
  reporter: Reporter;
  /** what readAwsFacts found before planning (the checks only read it) */
  facts?: AwsFacts;
  /** the bucket is there: found before planning, or created by the apply (undefined: its check failed) */
  bucketExists?: boolean;
  usersExisting: Set<string>;
  /** IAM unique ids (AIDA…) of the users: found before planning, or assigned by their creation */
  userIds: Map<string, string>;
  /** the bucket's default encryption as found (SSE-S3 on a bucket pullvault sets up) */
  encryption?: BucketEncryption;
}

/** A fact, or why it could not be read (the step that needs it fails with that). */
type Fact<T> = { value: T; error?: undefined } | { value?: undefined; error: Error };

/** What provision-aws reads (Head/Get requests only) before it plans: the bucket, its default encryption, the users. */
export interface AwsFacts {
  bucket: Fact<boolean>;
  /** null: none set, or no bucket yet */
  encryption: Fact<BucketEncryption | null>;
  /** user → IAM unique id, null when there is no such user */
  users: Map<string, Fact<string | null>>;
}

const fact = async <T>(read: () => Promise<T>): Promise<Fact<T>> => {
  try {
    return { value: await read() };
  } catch (e) {
    return { error: e instanceof Error ? e : new Error(String(e)) };
  }
};

const known = <T>(f: Fact<T> | undefined, what: string): T => {
  if (!f) throw new Error(`${what}: not read before planning`);
  if (f.error) throw f.error;
  return f.value as T;
};

/** Reads the facts once, before planning, and puts what the plan needs into ctx (bucketExists, encryption, users). */
export async function readAwsFacts(ctx: AwsCtx): Promise<AwsFacts> {
  const bucket = await fact(() => bucketExists(ctx));
  const users = [ctx.writerUser, ...(ctx.restoreUser ? [ctx.restoreUser] : [])];
  const [encryption, ...ids] = await Promise.all([
    fact(async () => (bucket.value ? await readBucketEncryption(ctx) : null)),
    ...users.map((u) => fact(() => readUserId(ctx, u))),
  ]);
  const facts: AwsFacts = { bucket, encryption: encryption as Fact<BucketEncryption | null>, users: new Map(users.map((u, i) => [u, ids[i] as Fact<string | null>])) };
  ctx.facts = facts;
  if (bucket.error === undefined) ctx.bucketExists = bucket.value;
  if (encryption.value) ctx.encryption = encryption.value as BucketEncryption;
  users.forEach((u, i) => {
    const id = ids[i]!.value as string | null | undefined;
    if (id) {
      ctx.usersExisting.add(u);
      ctx.userIds.set(u, id);
    }
  });
  return facts;
}

const json = normalizedJson;

/** Stands for the writer's unique id in a dry run before the user exists (IAM assigns it at creation). */
function pendingUserId(user: string): string {
  return `(unique id of ${user}, assigned when it is created)`;
}

export function policyParams(ctx: AwsCtx): PolicyParams {
  return {
    target: ctx.target,
    accountId: ctx.accountId,
    writerUser: ctx.writerUser,
    piName: ctx.piName,
    writerUserId: ctx.userIds.get(ctx.writerUser) ?? pendingUserId(ctx.writerUser),
    encryption: ctx.encryption ?? SSE_S3,
  };
}

/** A bucket setting that does not exist yet in a dry run on a new bucket: plan it as a create. */
function plannedOnNewBucket(ctx: AwsCtx, summary: string, after: string): Change | null {
  return ctx.bucketExists === false ? { action: 'create', summary, before: '', after } : null;
}

// ---------------------------------------------------------------- bucket

async function bucketRegion(ctx: AwsCtx): Promise<string | undefined> {
  const { s3 } = ctx.clients;
  const b = ctx.target.bucket;
  const r = await call('s3:GetBucketLocation', bucketArn(ctx.target), () => s3.send(new GetBucketLocationCommand({ Bucket: b })));
  // us-east-1 answers with an empty constraint, the old EU alias with "EU"
  const loc = r.LocationConstraint as string | undefined;
  return !loc ? 'us-east-1' : loc === 'EU' ? 'eu-west-1' : loc;
}

function regionMismatch(t: S3TargetSpec, actual: string): AwsProvisionError {
  return new AwsProvisionError(`region mismatch: bucket ${t.bucket} is in ${actual}, but offsite.region says ${t.region}; fix offsite.region (a bucket cannot move)`);
}

/** Whether the bucket exists (and is usable: in the configured region, with Object Lock when asked for); throws why not. */
async function bucketExists(ctx: AwsCtx): Promise<boolean> {
  const t = ctx.target;
  try {
    const head = await ctx.clients.s3.send(new HeadBucketCommand({ Bucket: t.bucket }));
    const region = head.BucketRegion ?? (await bucketRegion(ctx));
    if (region && region !== t.region) throw regionMismatch(t, region);
    if (t.objectLock) {
      // Object Lock can only be switched on by pullvault when it creates the bucket
      const lock = await getObjectLock(ctx);
      if (lock?.ObjectLockEnabled !== 'Enabled')
        throw new AwsProvisionError(
          `offsite.objectLock: bucket ${t.bucket} already exists without Object Lock; pullvault turns Object Lock on only when it creates the bucket — use a new bucket name or remove offsite.objectLock`,
        );
    }
    return true;
  } catch (e) {
    if (e instanceof AwsProvisionError) throw e;
    const status = httpStatus(e);
    if (status === 404 || errName(e) === 'NotFound' || errName(e) === 'NoSuchBucket') {
      return false;
    }
    if (status === 301 || errName(e) === 'PermanentRedirect') {
      const actual = (e as { $response?: { headers?: Record<string, string> } }).$response?.headers?.['x-amz-bucket-region'];
      throw regionMismatch(t, actual ?? 'another region');
    }
    if (status === 403)
      throw new AwsProvisionError(
        `bucket ${t.bucket} exists but is not yours (or the admin credentials lack s3:ListBucket on ${bucketArn(t)}); bucket names are global — choose another offsite.bucket`,
      );
    return await call('s3:ListBucket', bucketArn(t), () => Promise.reject(e));
  }
}

function bucketStep(): Step<AwsCtx> {
  return {
    id: 's3: bucket',
    async check(ctx) {
      if (known(ctx.facts?.bucket, 's3: bucket')) return null;
      const t = ctx.target;
      const lock = t.objectLock ? `, Object Lock ${t.objectLock.mode} ${t.objectLock.days} days` : '';
      return { action: 'create', summary: `${t.bucket} in ${t.region}${lock}` };
    },
    async apply(ctx) {
      const t = ctx.target;
      try {
        await ctx.clients.s3.send(
          new CreateBucketCommand({
            Bucket: t.bucket,
            CreateBucketConfiguration: t.region === 'us-east-1' ? undefined : { LocationConstraint: t.region as never },
            ObjectLockEnabledForBucket: t.objectLock ? true : undefined,
            ObjectOwnership: 'BucketOwnerEnforced',
          }),
        );
      } catch (e) {
        if (errName(e) === 'BucketAlreadyExists')
          throw new AwsProvisionError(`bucket name ${t.bucket} is taken by another AWS account (names are global); choose another offsite.bucket`);
        if (errName(e) !== 'BucketAlreadyOwnedByYou') await call('s3:CreateBucket', bucketArn(t), () => Promise.reject(e));
      }
      ctx.bucketExists = true;
    },
  };
}

/**
 * One setting of the bucket, as the step that converges it needs it: the wanted value and the
 * current one as the diff shows them (null: the bucket has none), whether the current one will do,
 * and the call that puts the wanted one. On a bucket that does not exist yet the setting is
 * planned as a create.
 */
interface BucketSetting {
  /** the step id after "s3: " */
  name: string;
  summary: (ctx: AwsCtx) => string;
  want: (ctx: AwsCtx) => string;
  read: (ctx: AwsCtx) => Promise<string | null>;
  /** shown as the current value when there is none */
  unset: string;
  /** the current value is good enough (default: it is the wanted one) */
  satisfied?: (current: string | null, want: string) => boolean;
  /** IAM action for the put, for the error that names a missing permission */
  putAction: string;
  put: (ctx: AwsCtx) => Promise<unknown>;
}

function bucketSettingStep(s: BucketSetting): Step<AwsCtx> {
  return {
    id: `s3: ${s.name}`,
    after: ['s3: bucket'],
    async check(ctx) {
      const want = s.want(ctx);
      const planned = plannedOnNewBucket(ctx, s.summary(ctx), want);
      if (planned) return planned;
      const cur = await s.read(ctx);
      if (s.satisfied ? s.satisfied(cur, want) : cur === want) return null;
      return { action: 'update', summary: s.summary(ctx), before: cur ?? s.unset, after: want };
    },
    async apply(ctx) {
      await call(s.putAction, bucketArn(ctx.target), () => s.put(ctx));
    },
  };
}

/** A bucket read that answers `notSet` (an error name) when the bucket has no such setting: null then. */
async function readSetting<T>(ctx: AwsCtx, action: string, notSet: string, read: () => Promise<T>): Promise<T | null> {
  try {
    return await call(action, bucketArn(ctx.target), read);
  } catch (e) {
    if (errName(e) === notSet) return null;
    throw e;
  }
}

const PAB = { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true };

const publicAccess: BucketSetting = {
  name: 'block public access',
  summary: () => 'all four settings on',
  want: () => json(PAB),
  async read(ctx) {
    const r = await readSetting(ctx, 's3:GetBucketPublicAccessBlock', 'NoSuchPublicAccessBlockConfiguration', () =>
      ctx.clients.s3.send(new GetPublicAccessBlockCommand({ Bucket: ctx.target.bucket })),
    );
    const cur: Record<string, boolean | undefined> = { ...r?.PublicAccessBlockConfiguration };
    return json(Object.fromEntries(Object.keys(PAB).map((k) => [k, cur[k] === true])));
  },
  unset: '',
  putAction: 's3:PutBucketPublicAccessBlock',
  put: (ctx) => ctx.clients.s3.send(new PutPublicAccessBlockCommand({ Bucket: ctx.target.bucket, PublicAccessBlockConfiguration: PAB })),
};

const ownership: BucketSetting = {
  name: 'object ownership',
  summary: () => 'BucketOwnerEnforced (ACLs disabled)',
  want: () => 'BucketOwnerEnforced\n',
  async read(ctx) {
    const r = await readSetting(ctx, 's3:GetBucketOwnershipControls', 'OwnershipControlsNotFoundError', () =>
      ctx.clients.s3.send(new GetBucketOwnershipControlsCommand({ Bucket: ctx.target.bucket })),
    );
    const o = r?.OwnershipControls?.Rules?.[0]?.ObjectOwnership;
    return o ? `${o}\n` : null;
  },
  unset: '(none)\n',
  putAction: 's3:PutBucketOwnershipControls',
  put: (ctx) =>
    ctx.clients.s3.send(new PutBucketOwnershipControlsCommand({ Bucket: ctx.target.bucket, OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] } })),
};

/** The bucket's default encryption as set (null: none set), the KMS key as an ARN. */
async function readBucketEncryption(ctx: Pick<AwsCtx, 'clients' | 'target' | 'accountId'>): Promise<BucketEncryption | null> {
  try {
    const r = await call('s3:GetEncryptionConfiguration', bucketArn(ctx.target), () =>
      ctx.clients.s3.send(new GetBucketEncryptionCommand({ Bucket: ctx.target.bucket })),
    );
    const d = r.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault;
    if (!d?.SSEAlgorithm) return null;
    try {
      return bucketEncryptionFrom(d.SSEAlgorithm, d.KMSMasterKeyID, ctx.target, ctx.accountId);
    } catch (e) {
      throw new AwsProvisionError((e as Error).message);
    }
  } catch (e) {
    if (errName(e) === 'ServerSideEncryptionConfigurationNotFoundError') return null;
    throw e;
  }
}

const encryption: BucketSetting = {
  name: 'default encryption',
  summary: () => 'SSE-S3 (AES256)',
  want: () => 'AES256\n',
  async read(ctx) {
    // SSE-KMS set by the owner is at least as good: kept (the policies pin it and grant its key)
    const cur = known(ctx.facts?.encryption, 's3: default encryption');
    return cur ? `${cur.algorithm}\n` : null;
  },
  satisfied: (cur) => cur !== null,
  unset: '(none)\n',
  putAction: 's3:PutEncryptionConfiguration',
  put: (ctx) =>
    ctx.clients.s3.send(
      new PutBucketEncryptionCommand({
        Bucket: ctx.target.bucket,
        ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      }),
    ),
};

const versioning: BucketSetting = {
  name: 'versioning',
  summary: () => 'Enabled',
  want: () => 'Enabled\n',
  async read(ctx) {
    const r = await call('s3:GetBucketVersioning', bucketArn(ctx.target), () => ctx.clients.s3.send(new GetBucketVersioningCommand({ Bucket: ctx.target.bucket })));
    return r.Status ? `${r.Status}\n` : null;
  },
  unset: 'never enabled\n',
  putAction: 's3:PutBucketVersioning',
  put: (ctx) => ctx.clients.s3.send(new PutBucketVersioningCommand({ Bucket: ctx.target.bucket, VersioningConfiguration: { Status: 'Enabled' } })),
};

async function getObjectLock(ctx: AwsCtx) {
  try {
    const r = await call('s3:GetBucketObjectLockConfiguration', bucketArn(ctx.target), () =>
      ctx.clients.s3.send(new GetObjectLockConfigurationCommand({ Bucket: ctx.target.bucket })),
    );
    return r.ObjectLockConfiguration ?? null;
  } catch (e) {
    if (errName(e) === 'ObjectLockConfigurationNotFoundError') return null;
    throw e;
  }
}

const lockText = (l: { mode?: string; days?: number }) => json({ Mode: l.mode, Days: l.days });

const objectLock: BucketSetting = {
  name: 'object lock default retention',
  summary: (ctx) => `${ctx.target.objectLock!.mode}, ${ctx.target.objectLock!.days} days`,
  want: (ctx) => lockText(ctx.target.objectLock!),
  async read(ctx) {
    const ret = (await getObjectLock(ctx))?.Rule?.DefaultRetention;
    return ret ? lockText({ mode: ret.Mode, days: ret.Days }) : null;
  },
  unset: '(no default retention)\n',
  putAction: 's3:PutBucketObjectLockConfiguration',
  put: (ctx) => {
    const l = ctx.target.objectLock!;
    return ctx.clients.s3.send(
      new PutObjectLockConfigurationCommand({
        Bucket: ctx.target.bucket,
        ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: l.mode, Days: l.days } } },
      }),
    );
  },
};

// ---------------------------------------------------------------- lifecycle

async function currentRules(ctx: AwsCtx): Promise<Record<string, unknown>[]> {
  if (ctx.bucketExists === false) return [];
  try {
    const r = await call('s3:GetLifecycleConfiguration', bucketArn(ctx.target), () =>
      ctx.clients.s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: ctx.target.bucket })),
    );
    return (r.Rules ?? []) as unknown as Record<string, unknown>[];
  } catch (e) {
    if (errName(e) === 'NoSuchLifecycleConfiguration') return [];
    throw e;
  }
}

function ownedView(rules: Record<string, unknown>[], piName: string): string {
  const mine = ruleIdPrefix(piName);
  return json(
    rules
      .filter((r) => String(r.ID ?? '').startsWith(mine))
      .map(canonicalRule)
      .sort((a, b) => String(a.ID).localeCompare(String(b.ID))),
  );
}

function lifecycleStep(): Step<AwsCtx> {
  return {
    id: 's3: lifecycle rules',
    after: ['s3: bucket'],
    async check(ctx) {
      const cur = await currentRules(ctx);
      const want = lifecycleRules(ctx.target, ctx.piName, ctx.fullEveryDays) as unknown as Record<string, unknown>[];
      const before = ownedView(cur, ctx.piName);
      const after = ownedView(want, ctx.piName);
      if (before === after) return null;
      const others = cur.length - cur.filter((r) => String(r.ID ?? '').startsWith(ruleIdPrefix(ctx.piName))).length;
      return {
        action: before === '[]\n' ? 'create' : 'update',
        summary: `${want.length} rules by prefix under ${ctx.target.prefix}${others ? ` (${others} other rule(s) kept)` : ''}`,
        before,
        after,
      };
    },
    async apply(ctx) {
      const merged = mergeLifecycle(await currentRules(ctx), ctx.target, ctx.piName, ctx.fullEveryDays);
      await call('s3:PutLifecycleConfiguration', bucketArn(ctx.target), () =>
        ctx.clients.s3.send(
          new PutBucketLifecycleConfigurationCommand({
            Bucket: ctx.target.bucket,
            LifecycleConfiguration: { Rules: merged.Rules as unknown as SdkLifecycleRule[] },
          }),
        ),
      );
    },
  };
}

// ---------------------------------------------------------------- bucket policy

export async function currentBucketPolicy(ctx: Pick<AwsCtx, 'clients' | 'target' | 'bucketExists'>): Promise<PolicyDocument | null> {
  if (ctx.bucketExists === false) return null;
  try {
    const r = await call('s3:GetBucketPolicy', bucketArn(ctx.target), () => ctx.clients.s3.send(new GetBucketPolicyCommand({ Bucket: ctx.target.bucket })));
    return parsePolicy(r.Policy);
  } catch (e) {
    if (errName(e) === 'NoSuchBucketPolicy') return null;
    throw e;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function bucketPolicyStep(): Step<AwsCtx> {
  return {
    id: 's3: bucket policy (write-once for the Pi)',
    after: ['s3: bucket', 's3: default encryption', 'iam: writer user'],
    async check(ctx) {
      const cur = await currentBucketPolicy(ctx);
      const want = mergeBucketPolicy(cur, policyParams(ctx));
      if (samePolicy(cur, want)) return null;
      const kept = want.Statement.length - ownedSids(ctx.piName).length;
      return {
        action: cur ? 'update' : 'create',
        summary: `deny everything but conditional puts under ${ctx.target.prefix}, with the bucket's encryption and storage class, to ${ctx.writerUser}; deny plain HTTP${kept ? ` (${kept} other statement(s) kept)` : ''}`,
        before: cur ? json(canonicalPolicy(cur)) : '',
        after: json(canonicalPolicy(want)),
      };
    },
    async apply(ctx) {
      const want = mergeBucketPolicy(await currentBucketPolicy(ctx), policyParams(ctx));
      // A user created seconds ago may not be accepted as a principal yet (IAM is eventually consistent).
      for (let attempt = 0; ; attempt++) {
        try {
          await call('s3:PutBucketPolicy', bucketArn(ctx.target), () =>
            ctx.clients.s3.send(new PutBucketPolicyCommand({ Bucket: ctx.target.bucket, Policy: JSON.stringify(want) })),
          );
          return;
        } catch (e) {
          if (errName(e) === 'MalformedPolicy' && /principal/i.test(String((e as Error).message)) && attempt < 12) {
            await sleep(5000);
            continue;
          }
          throw e;
        }
      }
    },
  };
}

// ---------------------------------------------------------------- IAM users, policies, keys

function iamUserArn(ctx: AwsCtx, user: string): string {
  return userArn(ctx.target, ctx.accountId, user);
}

/** The user's IAM unique id (AIDA…), or null when there is no such user. */
async function readUserId(ctx: Pick<AwsCtx, 'clients' | 'target' | 'accountId'>, user: string): Promise<string | null> {
  try {
    const r = await call('iam:GetUser', userArn(ctx.target, ctx.accountId, user), () => ctx.clients.iam.send(new GetUserCommand({ UserName: user })));
    if (!r.User?.UserId) throw new AwsProvisionError(`iam:GetUser ${user}: the answer carries no UserId`);
    return r.User.UserId;
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
}

function userStep(role: CredentialsRole, user: string): Step<AwsCtx> {
  return {
    id: `iam: ${role} user`,
    async check(ctx) {
      return known(ctx.facts?.users.get(user), `iam: ${role} user`) === null ? { action: 'create', summary: user } : null;
    },
    async apply(ctx) {
      const r = await call('iam:CreateUser', iamUserArn(ctx, user), () =>
        ctx.clients.iam.send(new CreateUserCommand({ UserName: user, Tags: [{ Key: 'pullvault', Value: `${role}:${ctx.piName}` }] })),
      );
      if (!r.User?.UserId) throw new AwsProvisionError(`iam:CreateUser ${user}: the answer carries no UserId`);
      ctx.userIds.set(user, r.User.UserId);
    },
  };
}

function userPolicyStep(role: CredentialsRole, user: string, policyName: string, doc: (ctx: AwsCtx) => PolicyDocument): Step<AwsCtx> {
  return {
    id: `iam: ${role} policy`,
    after: [`iam: ${role} user`, 's3: default encryption'],
    async check(ctx) {
      const want = doc(ctx);
      let cur: PolicyDocument | null = null;
      if (ctx.usersExisting.has(user)) {
        try {
          const r = await call('iam:GetUserPolicy', iamUserArn(ctx, user), () =>
            ctx.clients.iam.send(new GetUserPolicyCommand({ UserName: user, PolicyName: policyName })),
          );
          cur = parsePolicy(r.PolicyDocument);
        } catch (e) {
          if (!isNotFound(e)) throw e;
        }
        if (role === 'writer') await warnAboutOtherPolicies(ctx, user, policyName);
      }
      if (samePolicy(cur, want)) return null;
      return { action: cur ? 'update' : 'create', summary: `inline policy ${policyName}`, before: cur ? json(canonicalPolicy(cur)) : '', after: json(canonicalPolicy(want)) };
    },
    async apply(ctx) {
      await call('iam:PutUserPolicy', iamUserArn(ctx, user), () =>
        ctx.clients.iam.send(new PutUserPolicyCommand({ UserName: user, PolicyName: policyName, PolicyDocument: JSON.stringify(doc(ctx)) })),
      );
    },
  };
}

async function warnAboutOtherPolicies(ctx: AwsCtx, user: string, ours: string): Promise<void> {
  const arn = iamUserArn(ctx, user);
  const inline = await call('iam:ListUserPolicies', arn, () => ctx.clients.iam.send(new ListUserPoliciesCommand({ UserName: user })));
  const attached = await call('iam:ListAttachedUserPolicies', arn, () => ctx.clients.iam.send(new ListAttachedUserPoliciesCommand({ UserName: user })));
  const extra = [...(inline.PolicyNames ?? []).filter((n) => n !== ours), ...(attached.AttachedPolicies ?? []).map((p) => p.PolicyName ?? '?')];
  if (extra.length)
    ctx.reporter.line(`warning: ${user} has other policies (${extra.join(', ')}); the bucket policy still limits it to conditional puts, but remove them`);
}

function credentialsFor(ctx: AwsCtx, user: string, key: { accessKeyId: string; secretAccessKey: string }): S3Credentials {
  const t = ctx.target;
  return {
    accessKeyId: key.accessKeyId,
    secretAccessKey: key.secretAccessKey,
    userName: user,
    region: t.region,
    bucket: t.bucket,
    prefix: t.prefix,
    endpoint: ctx.clients.endpoint,
    storageClass: t.storageClass && t.storageClass !== 'STANDARD' ? t.storageClass : undefined,
  };
}

function sameMetadata(a: S3Credentials, b: S3Credentials): boolean {
  const pick = (c: S3Credentials) => JSON.stringify([c.userName, c.region, c.bucket, c.prefix, c.endpoint ?? null, c.storageClass ?? null]);
  return pick(a) === pick(b);
}

interface KeyPlan {
  create: boolean;
  /** keys to delete before creating (a user may hold only two) */
  deleteFirst: string[];
  /** keys to delete once the new one is written */
  deleteAfter: string[];
  rewriteFile: boolean;
}

/**
 * The user's access key, saved in state. For the writer (the key the Pi holds) no key is deleted
 * unless asked (`retire`): a rotation or a lost state file makes a new key next to the old one,
 * which stays active until `make install-runtime` has given the Pi the new one — deleting it at
 * once would stop every upload until then. The restore key lives only on the admin machine, so
 * its step is built with `retire: true`: its old keys go at once.
 */
function accessKeyStep(role: CredentialsRole, user: string, opts: { rotate: boolean; retire: boolean }): Step<AwsCtx> {
  const id = `iam: ${role} access key`;
  return {
    id,
    after: [`iam: ${role} user`],
    sensitive: true,
    async check(ctx) {
      const file = credentialsFile(ctx.stateDir, role);
      const saved = readCredentials(file);
      if (saved) ctx.redactor.add(saved.secretAccessKey);
      let keys: AccessKeyMetadata[] = [];
      if (ctx.usersExisting.has(user)) {
        const r = await call('iam:ListAccessKeys', iamUserArn(ctx, user), () => ctx.clients.iam.send(new ListAccessKeysCommand({ UserName: user })));
        keys = r.AccessKeyMetadata ?? [];
      }
      const ids = keys.map((k) => k.AccessKeyId!);
      const savedLive = saved && saved.userName === user && keys.some((k) => k.AccessKeyId === saved.accessKeyId && k.Status === 'Active');
      const others = ids.filter((k) => !(savedLive && k === saved!.accessKeyId));
      const where = `state/aws/${role}-credentials.json`;
      const kept = (ks: string[]) =>
        `${user} still has ${ks.length === 1 ? 'key' : 'keys'} ${ks.join(', ')} besides the one in ${where}; the Pi may still use ${ks.length === 1 ? 'it' : 'them'}. ` +
        'Once `make install-runtime` has given the Pi the new key, run `make provision-aws ARGS=--retire-old-keys`';
      if (savedLive && !opts.rotate) {
        const want = credentialsFor(ctx, user, saved!);
        const rewriteFile = !sameMetadata(saved!, want);
        const deleteAfter = opts.retire ? others : [];
        if (others.length && !opts.retire) ctx.reporter.line(`note: ${kept(others)}`);
        if (!deleteAfter.length && !rewriteFile) return null;
        const data: KeyPlan = { create: false, deleteFirst: [], deleteAfter, rewriteFile };
        return {
          action: 'update',
          data,
          summary: [deleteAfter.length ? `delete old key(s) ${deleteAfter.join(', ')}` : '', rewriteFile ? `rewrite ${where}` : ''].filter(Boolean).join('; '),
        };
      }
      // a new key. IAM allows two per user: with two already, one must go first — never silently
      // the one the Pi may be using
      if (ids.length >= 2 && !opts.retire) {
        throw new Error(
          `${user} already has two access keys (${ids.join(', ')}) and IAM allows no third. ` +
            (savedLive
              ? `${saved!.accessKeyId} is the one in ${where}; once the Pi has it (\`make install-runtime\`), run with --retire-old-keys first`
              : `Neither is the one in ${where}; run with --retire-old-keys to delete them and make a new one (the Pi stops uploading until \`make install-runtime\`)`),
        );
      }
      const deleteFirst = ids.length >= 2 ? others.slice(0, ids.length - 1) : [];
      const deleteAfter = opts.retire ? ids.filter((k) => !deleteFirst.includes(k)) : [];
      const keptOld = ids.filter((k) => !deleteFirst.includes(k) && !deleteAfter.includes(k));
      const data: KeyPlan = { create: true, deleteFirst, deleteAfter, rewriteFile: true };
      const why = opts.rotate && savedLive ? `rotate: new key into ${where}` : saved ? `the key in ${where} is not active on ${user}: new key` : `new key into ${where}`;
      const tail = [
        deleteFirst.length ? `first delete ${deleteFirst.join(', ')}` : '',
        deleteAfter.length ? `then delete ${deleteAfter.join(', ')}` : '',
        keptOld.length ? `keep ${keptOld.join(', ')} active until --retire-old-keys (the Pi may still use it)` : '',
      ].filter(Boolean);
      return { action: savedLive ? 'update' : 'create', summary: [why, ...tail].join('; '), data };
    },
    async apply(ctx, change) {
      const plan = change.data as KeyPlan;
      const arn = iamUserArn(ctx, user);
      const file = credentialsFile(ctx.stateDir, role);
      const del = (k: string) => call('iam:DeleteAccessKey', arn, () => ctx.clients.iam.send(new DeleteAccessKeyCommand({ UserName: user, AccessKeyId: k })));
      for (const k of plan.deleteFirst) await del(k);
      if (plan.create) {
        const r = await call('iam:CreateAccessKey', arn, () => ctx.clients.iam.send(new CreateAccessKeyCommand({ UserName: user })));
        const key = { accessKeyId: r.AccessKey!.AccessKeyId!, secretAccessKey: r.AccessKey!.SecretAccessKey! };
        ctx.redactor.add(key.secretAccessKey);
        writeCredentials(file, credentialsFor(ctx, user, key));
      } else if (plan.rewriteFile) {
        writeCredentials(file, credentialsFor(ctx, user, readCredentials(file)!));
      }
      for (const k of plan.deleteAfter) await del(k);
    },
  };
}

// ---------------------------------------------------------------- the plan

export function awsSteps(ctx: Pick<AwsCtx, 'target' | 'writerUser' | 'restoreUser' | 'rotateKey' | 'retireOldKeys'>): Step<AwsCtx>[] {
  const settings = [publicAccess, ownership, encryption, versioning, ...(ctx.target.objectLock ? [objectLock] : [])];
  const steps: Step<AwsCtx>[] = [bucketStep(), ...settings.map(bucketSettingStep)];
  steps.push(
    lifecycleStep(),
    userStep('writer', ctx.writerUser),
    userPolicyStep('writer', ctx.writerUser, WRITER_POLICY_NAME, (c) => writerIdentityPolicy(policyParams(c))),
    accessKeyStep('writer', ctx.writerUser, { rotate: ctx.rotateKey, retire: ctx.retireOldKeys }),
    bucketPolicyStep(),
  );
  if (ctx.restoreUser) {
    steps.push(
      userStep('restore', ctx.restoreUser),
      userPolicyStep('restore', ctx.restoreUser, RESTORE_POLICY_NAME, (c) => restoreIdentityPolicy(policyParams(c))),
      accessKeyStep('restore', ctx.restoreUser, { rotate: false, retire: true }),
    );
  }
  return steps;
}
