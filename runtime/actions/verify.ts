// `pullvault verify` (the owner's machine): every manifest object, then restore drills.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { leaves, parseAt, planRestore, unreachable, type Plan } from '../offsite/chain.ts';
import { decryptorFrom, SOURCE_HELP, SOURCE_OPTIONS, targetFrom } from '../offsite/commands.ts';
import { listServer, restorePlan, RestoreError, verifyObjects } from '../offsite/restore.ts';
import { defineAction, UsageError } from './action.ts';

const log = (line: string) => process.stderr.write(line + '\n');

export default defineAction({
  name: 'verify',
  summary: 'every offsite object of a server, and a restore drill (see pullvault verify --help)',
  help: `usage: pullvault verify  --server NAME [--at TIME | --all] SOURCE KEY
${SOURCE_HELP}
  verify: every manifest object, then a restore drill of the latest point (or --at); --all drills
          the newest point of every chain and branch, so every archive in the store is decrypted,
          checked against its manifest's checksum, and its chain's tree against the manifest`,
  config: false,
  errorsAreFailures: true,
  options: { ...SOURCE_OPTIONS, server: { type: 'string' }, at: { type: 'string' }, all: { type: 'boolean' } },
  async main({ values: o, out }) {
    const server = o.server;
    if (!server) throw new UsageError('--server is required');
    if (o.all === true && o.at) throw new UsageError('--all drills every chain; leave out --at');
    const target = await targetFrom(o);
    const decryptor = await decryptorFrom(o);
    const problems: string[] = [];
    const warnings: string[] = [];
    const listing = await listServer(target, server);
    for (const m of listing.missing) problems.push(`missing object: the archive of manifest ${m} is not in the store`);
    for (const k of listing.orphans) warnings.push(`archive without a manifest (an upload that did not finish; never recorded): ${k}`);
    for (const s of unreachable(listing.archives)) problems.push(`broken chain: ${s.key} builds on ${s.base}, which is not in the store`);
    problems.push(...(await verifyObjects(target, listing, decryptor, log)));
    const at = o.at ? parseAt(o.at) : undefined;
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
      const dir = await mkdtemp(join(o.tmpdir ?? tmpdir(), 'pullvault-verify-'));
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
    for (const w of warnings) out(`warning: ${w}`);
    if (problems.length) {
      out(`verify ${server} in ${target.label}: FAILED\n${problems.map((p) => `  ${p}`).join('\n')}`);
      return 1;
    }
    const chains = new Set(listing.archives.map((a) => a.chainId)).size;
    out(
      `verify ${server} in ${target.label}: ok — ${listing.archives.length} archive(s) in ${chains} chain(s), restore drill${drilled.length > 1 ? 's' : ''} of ${drilled.join(', ')} ${drilled.length > 1 ? 'match their manifests (every archive decrypted and matched its checksum)' : 'matches its manifest'}`,
    );
    return 0;
  },
});
