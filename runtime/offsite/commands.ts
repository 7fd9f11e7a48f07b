// Entry points for `pullvault restore`, `pullvault verify` (the owner's machine: read-only
// credentials, a private key) and the offsite phase of `pullvault run` (the Pi).
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import type { OffsiteSpec } from '../../contract/inventory-schema.ts';
import { loadPrivateKey, type Decryptor } from '../archive/pgp.ts';
import { leaves, parseAt, planRestore, unreachable, type Plan } from './chain.ts';
import { openTarget, parseTargetArg, readCredentials, targetKind } from './open-target.ts';
import { listServer, restore, restorePlan, RestoreError, verifyObjects } from './restore.ts';
import type { Target } from './target.ts';

export { offsitePhase } from './phase.ts';

const USAGE = `usage: pullvault restore --server NAME --to DIR [--at TIME] [--path PATH] [--force] SOURCE KEY
       pullvault verify  --server NAME [--at TIME | --all] SOURCE KEY
  SOURCE: --config FILE (inventory.json or the Pi's config.json) | --target dir:PATH | --target s3://BUCKET/PREFIX/ [--region R] [--endpoint URL]
          --credentials FILE  read-only S3 credentials as JSON {accessKeyId, secretAccessKey}
  KEY:    --gpg-homedir DIR (gpg and its agent decrypt; default: gpg's own home) | --key FILE (armored private key)
          --passphrase-file FILE  (otherwise asked on the terminal, or by gpg's pinentry)
  TIME:   2024-05-01, 2024-05-01T12:00:00Z or a snapshot id 20240501T120000Z (default: the latest)
  verify: every manifest object, then a restore drill of the latest point (or --at); --all drills
          the newest point of every chain and branch, so every archive in the store is decrypted,
          checked against its manifest's checksum, and its chain's tree against the manifest`;

/** Parsed options: --name value as a string, a flag as true (watch and report build theirs too). */
export type Opts = Record<string, string | true>;
const FLAGS = new Set(['force', 'help', 'all']);
const VALUES = new Set(['config', 'target', 'region', 'endpoint', 'credentials', 'gpg-homedir', 'key', 'passphrase-file', 'server', 'at', 'to', 'path', 'tmpdir']);

class UsageError extends Error {}

function parseArgs(argv: string[]): Opts {
  const o: Opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new UsageError(`unexpected argument: ${a}`);
    if (FLAGS.has(m[1])) o[m[1]] = true;
    else if (VALUES.has(m[1])) {
      const v = m[2] ?? argv[++i];
      if (v === undefined) throw new UsageError(`--${m[1]} needs a value`);
      o[m[1]] = v;
    } else throw new UsageError(`unknown option --${m[1]}`);
  }
  return o;
}

const str = (o: Opts, k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);

export async function targetFrom(o: Opts): Promise<Target> {
  let spec: OffsiteSpec;
  const creds = str(o, 'credentials') ? await readCredentials(str(o, 'credentials')!) : undefined;
  if (str(o, 'target')) spec = parseTargetArg(str(o, 'target')!, str(o, 'region') ?? creds?.region, str(o, 'endpoint') ?? creds?.endpoint);
  else if (str(o, 'config')) {
    const j = JSON.parse(await readFile(str(o, 'config')!, 'utf8')) as RuntimeConfig | RuntimeConfig['inventory'];
    spec = 'inventory' in j ? j.inventory.offsite : j.offsite;
    const kind = targetKind(spec.type);
    if (kind.withEndpoint && str(o, 'endpoint')) spec = kind.withEndpoint(spec, str(o, 'endpoint')!);
  } else throw new UsageError('give --config FILE or --target');
  if (targetKind(spec.type).credentials === 'file' && !creds && !process.env.AWS_ACCESS_KEY_ID && !process.env.AWS_PROFILE)
    process.stderr.write('note: no --credentials; using the AWS SDK default chain (environment, profile)\n');
  return openTarget(spec, creds);
}

async function askPassphrase(): Promise<string> {
  if (!process.stdin.isTTY) throw new Error('the private key needs a passphrase: give --passphrase-file or run on a terminal');
  process.stderr.write('passphrase for the private key: ');
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  let s = '';
  try {
    for await (const chunk of stdin) {
      for (const c of (chunk as Buffer).toString('utf8')) {
        if (c === '\r' || c === '\n') return s;
        if (c === '\u0003') throw new Error('cancelled');
        if (c === '\u007f') s = s.slice(0, -1);
        else s += c;
      }
    }
    return s;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

export async function decryptorFrom(o: Opts): Promise<Decryptor> {
  const pf = str(o, 'passphrase-file');
  if (str(o, 'key')) {
    const armored = await readFile(str(o, 'key')!, 'utf8');
    const pass = pf ? async () => (await readFile(pf, 'utf8')).replace(/\r?\n$/, '') : askPassphrase;
    return { kind: 'key', privateKey: await loadPrivateKey(armored, pass) };
  }
  return { kind: 'gpg', homedir: str(o, 'gpg-homedir'), passphraseFile: pf };
}

function need(o: Opts, k: string): string {
  const v = str(o, k);
  if (!v) throw new UsageError(`--${k} is required`);
  return v;
}

async function main(argv: string[], body: (o: Opts) => Promise<number>): Promise<number> {
  try {
    const o = parseArgs(argv);
    if (o.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    return await body(o);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n${USAGE}\n`);
      return 2;
    }
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 1;
  }
}

const log = (line: string) => process.stderr.write(line + '\n');

export function restoreMain(argv: string[]): Promise<number> {
  return main(argv, async (o) => {
    const server = need(o, 'server');
    const to = need(o, 'to');
    const target = await targetFrom(o);
    const r = await restore({
      target,
      server,
      to,
      at: str(o, 'at') ? parseAt(str(o, 'at')!) : undefined,
      path: str(o, 'path'),
      force: o.force === true,
      decryptor: await decryptorFrom(o),
      log,
      tmpDir: str(o, 'tmpdir'),
    });
    if (r.problems.length) {
      process.stdout.write(`restore of ${server} as of ${r.snapshot} into ${to} does NOT match its manifest:\n${r.problems.map((p) => `  ${p}`).join('\n')}\n`);
      return 1;
    }
    process.stdout.write(`restored ${server} as of ${r.snapshot} into ${to}: ${r.entries} entries, ${r.bytes} bytes, all match the manifest\n`);
    return 0;
  });
}

export function verifyMain(argv: string[]): Promise<number> {
  return main(argv, async (o) => {
    const server = need(o, 'server');
    if (o.all === true && str(o, 'at')) throw new UsageError('--all drills every chain; leave out --at');
    const target = await targetFrom(o);
    const decryptor = await decryptorFrom(o);
    const problems: string[] = [];
    const warnings: string[] = [];
    const listing = await listServer(target, server);
    for (const m of listing.missing) problems.push(`missing object: the archive of manifest ${m} is not in the store`);
    for (const k of listing.orphans) warnings.push(`archive without a manifest (an upload that did not finish; never recorded): ${k}`);
    for (const s of unreachable(listing.archives)) problems.push(`broken chain: ${s.key} builds on ${s.base}, which is not in the store`);
    problems.push(...(await verifyObjects(target, listing, decryptor, log)));
    const at = str(o, 'at') ? parseAt(str(o, 'at')!) : undefined;
    let plans: Plan[] = [];
    try {
      const tips = leaves(listing.archives);
      plans = o.all === true ? tips : [planRestore(listing, at)];
      if (plans.length === 0) throw new RestoreError('no complete archive (full + manifest) for this server in the store');
      if (o.all !== true && tips.length > 1) warnings.push(`only the archives on the way to ${plans[0].snapshot} are downloaded; ${tips.length - 1} other chain(s) or branch(es) are not: --all checks every one`);
    } catch (e) {
      problems.push((e as Error).message);
    }
    const drilled: string[] = [];
    for (const plan of plans) {
      const dir = await mkdtemp(join(str(o, 'tmpdir') ?? tmpdir(), 'pullvault-verify-'));
      try {
        const r = await restorePlan({ target, server, to: join(dir, 'tree'), decryptor, log, tmpDir: dir }, plan);
        drilled.push(r.snapshot);
        problems.push(...r.problems.map((p) => `restored ${r.snapshot} (chain ${plan.chainId}): ${p}`));
      } catch (e) {
        const m = (e as Error).message;
        problems.push(`chain ${plan.chainId}, point ${plan.snapshot}: ${e instanceof RestoreError ? m : `restore drill failed: ${m}`}`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    for (const w of warnings) process.stdout.write(`warning: ${w}\n`);
    if (problems.length) {
      process.stdout.write(`verify ${server} in ${target.label}: FAILED\n${problems.map((p) => `  ${p}`).join('\n')}\n`);
      return 1;
    }
    const chains = new Set(listing.archives.map((a) => a.chainId)).size;
    process.stdout.write(
      `verify ${server} in ${target.label}: ok — ${listing.archives.length} archive(s) in ${chains} chain(s), restore drill${drilled.length > 1 ? 's' : ''} of ${drilled.join(', ')} ${drilled.length > 1 ? 'match their manifests (every archive decrypted and matched its checksum)' : 'matches its manifest'}\n`,
    );
    return 0;
  });
}
