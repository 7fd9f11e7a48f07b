// `make provision-aws`: the offsite bucket, its write-once policy and lifecycle, the Pi's IAM
// user and access key (state/aws/writer-credentials.json). See provision/aws/.
import { defineCommand, makeOutput, planFileWriter } from './cli-common.ts';
import { exitCodeOf } from './engine/index.ts';
import { awsClients } from './exec/aws.ts';
import { AwsProvisionError, provisionAws, s3Target } from './aws/index.ts';

const HELP = `usage: make provision-aws [INVENTORY=inventory.json] [ARGS="…"]

Prepares the offsite S3 store so the Pi can only ADD objects under its prefix — never read,
list, delete, overwrite, retag or shorten retention — using the admin's AWS credentials
(standard chain: AWS_PROFILE, AWS_ACCESS_KEY_ID/…, SSO). Idempotent: a second run reports
0 changed; drift (an edited lifecycle rule or policy) is put back.

  bucket          created in offsite.region if missing; Block Public Access, BucketOwnerEnforced,
                  default encryption, versioning; Object Lock only when pullvault creates it
  lifecycle       by prefix: full/, manifest/ expire after offsite.retentionDays, incr/ after
                  retentionDays.incremental + fullEveryDays + 1 (every restore point lasts
                  retentionDays.incremental days though it needs its whole chain);
                  noncurrent versions expire, incomplete multipart uploads aborted after 7 days
  bucket policy   explicit Denies for the Pi's user (put without If-None-Match, every other
                  action, other prefixes) and for plain HTTP; other statements are kept
  IAM             the Pi's user, its narrow inline policy, its access key written to
                  <state>/aws/writer-credentials.json (0600) — never printed

options:
  -i, --inventory FILE     the inventory (default inventory.json, or $INVENTORY)
  -n, --dry-run            show the plan and policy diffs (normalized JSON); change nothing
      --plan-json FILE     write the plan as JSON before anything is applied
      --rotate-key         new access key for the Pi, saved to state; the old one stays active (the
                           Pi still uses it) until --retire-old-keys
      --retire-old-keys    delete the Pi user's keys other than the one in state: run it after
                           \`make install-runtime\` has given the Pi the new key
      --restore-user       also a read-only restore user (Get/List on the prefix) for the admin
                           machine → <state>/aws/restore-credentials.json (never put it on the Pi)
      --print-policies DIR write the identity policies, bucket policy and lifecycle configuration
                           it would apply as JSON files into DIR; change nothing
      --state DIR          the state folder (default $PULLVAULT_STATE, else state/ next to the inventory)
  -h, --help               this text

environment: PULLVAULT_AWS_ENDPOINT (or offsite.endpoint) points at an S3/IAM-compatible test server.`;

export const command = defineCommand({
  help: HELP,
  options: {
    'rotate-key': { type: 'boolean', default: false },
    'retire-old-keys': { type: 'boolean', default: false },
    'restore-user': { type: 'boolean', default: false },
    'print-policies': { type: 'string' },
  },
  inventory: true,
  dryRun: true,
  plan: true,
  async run({ values, dryRun, loaded: { inventory }, state, planJson }) {
    const target = s3Target(inventory);
    const { redactor, reporter } = makeOutput();
    const envSecret = process.env.AWS_SECRET_ACCESS_KEY;
    if (envSecret && envSecret.trim().length >= 6) redactor.add(envSecret);
    const clients = awsClients({ region: target.region, endpoint: target.endpoint });
    try {
      const r = await provisionAws(inventory, {
        clients,
        dryRun,
        onPlan: planFileWriter(planJson, redactor),
        reporter,
        redactor,
        stateDir: state,
        rotateKey: values['rotate-key'],
        retireOldKeys: values['retire-old-keys'],
        restoreUser: values['restore-user'],
        printPoliciesDir: values['print-policies'],
      });
      return 'printed' in r ? 0 : exitCodeOf(r);
    } catch (e) {
      if (e instanceof AwsProvisionError) {
        process.stderr.write(`provision-aws: ${redactor.mask(e.message)}\n`);
        return 1;
      }
      throw e;
    }
  },
});
