// `pullvault` — the Pi's program. main(argv) returns the exit code; runtime/main.ts runs it.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import pkg from '../package.json' with { type: 'json' };
import { DEFAULT_CONFIG_PATH, type RuntimeConfig } from './config.ts';
import { recordRefusal, runCycle, runHolder, statusFile } from './cycle.ts';
import { EXIT } from './exit-codes.ts';
import { preflight, PULL_SPACE_MARGIN } from './preflight.ts';
import { prune } from './prune.ts';
import { stopChildren } from '../lib/proc/index.ts';
import { listSnapshots, type PullResult } from './pull/snapshot.ts';
import { markInterruptedSync, readRunRecord, runRecordFile, runState, stateIsFailure } from './run-record.ts';
import { readStatus } from './state.ts';
import { checkNativeTools } from './native-check.ts';
import { mailOnFailure } from './notify-mail.ts';
import { formatAge, formatBytes, renderStatus } from './status.ts';

export const VERSION: string = pkg.version;

export const HELP = `pullvault ${VERSION} — pull backups from servers into snapshots on the backup disk

usage: pullvault <command> [--config FILE] [options]

commands:
  run      pull every server into a new snapshot, then apply local retention; before a server's
           pull, when free space is below what its last pull wrote (x${PULL_SPACE_MARGIN}, at least
           pi.dataDisk.minFreeMiB), first delete what retention would delete after it
           --server NAME   only this server (repeatable)
           --no-prune      skip local retention
           --no-offsite    skip the offsite phase
           --progress / --quiet   force progress output on / off (default: on when stderr is a terminal)
  status   the last run (ok, partial, failed, refused, interrupted, running) and per server:
           age, size, partial and failed flags; exit 1 if the last run failed, was refused or
           was interrupted   (--json: the run record and the status file)
  list     local snapshots per server   [--server NAME] [--json]
  prune    apply local retention now   (--dry-run: list what would be deleted, delete nothing)
  restore, verify   offsite archives (see pullvault restore --help)

options:
  --config FILE   default ${DEFAULT_CONFIG_PATH}
  --help, --version

exit codes:
  0  ok
  1  one or more servers failed or did not fit on the disk even after pruning by the retention rules
     (the others were snapshotted; status says which)
  2  usage or config error
  3  refused by pre-flight (backup disk not mounted/unlocked); nothing written
  4  all servers pulled, but a snapshot is flagged partial (files unreadable or vanished)
  75 another run is pulling (holds the pull lock); nothing done
     (an upload still going in another run holds only the offsite lock: this run pulls, and its
     snapshots go offsite with a later run)
`;

async function loadConfig(path: string): Promise<RuntimeConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${path}: cannot read config: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let c: RuntimeConfig;
  try {
    c = JSON.parse(text) as RuntimeConfig;
  } catch (e) {
    throw new UsageError(`${path}: not JSON: ${(e as Error).message}`);
  }
  // install-runtime writes this file from the validated inventory; check the shape we rely on
  const where = (f: string) => new UsageError(`${path}: ${f}`);
  if (c?.version !== 1) throw where('version: must be 1');
  if (!c.inventory || !Array.isArray(c.inventory.servers) || !c.inventory.servers.length) throw where('inventory.servers: missing');
  if (!c.inventory.retention) throw where('inventory.retention: missing');
  for (const k of ['sshKeyFile', 'knownHostsFile', 'dataDir'] as const) {
    if (typeof c.paths?.[k] !== 'string' || !c.paths[k].startsWith('/')) throw where(`paths.${k}: must be an absolute path`);
  }
  return c;
}

class UsageError extends Error {}

const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
const err = (s: string) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`);

function stopChildrenOnSignals(config: RuntimeConfig): () => void {
  const handler = (sig: NodeJS.Signals) => {
    err(`pullvault: ${sig}: stopping`);
    stopChildren('SIGTERM');
    const code = sig === 'SIGINT' ? 130 : 143;
    markInterruptedSync(runRecordFile(config), process.pid, sig, code);
    // the lock holds our pid and start time: a later run sees it as stale once we are gone
    process.exit(code);
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return () => {
    process.off('SIGTERM', handler);
    process.off('SIGINT', handler);
  };
}

export async function main(argv: string[]): Promise<number> {
  // offsite commands parse their own arguments (and run on the admin machine, without a config)
  // the offsite code (AWS SDK, OpenPGP) is loaded only when needed: a pull stays small
  if (argv[0] === 'restore') return (await import('./offsite/commands.ts')).restoreMain(argv.slice(1));
  if (argv[0] === 'verify') return (await import('./offsite/commands.ts')).verifyMain(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
        json: { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        'no-prune': { type: 'boolean' },
        'no-offsite': { type: 'boolean' },
        server: { type: 'string', multiple: true },
        progress: { type: 'boolean' },
        quiet: { type: 'boolean', short: 'q' },
      },
    });
  } catch (e) {
    err(`pullvault: ${(e as Error).message}\n(see pullvault --help)`);
    return EXIT.USAGE;
  }
  const { values: o, positionals } = parsed;
  if (o.version) {
    out(`pullvault ${VERSION}`);
    return EXIT.OK;
  }
  const [cmd, ...rest] = positionals;
  if (o.help || !cmd) {
    (cmd || o.help ? out : err)(HELP);
    return o.help ? EXIT.OK : EXIT.USAGE;
  }
  if (rest.length) {
    err(`pullvault ${cmd}: unexpected argument ${JSON.stringify(rest[0])}`);
    return EXIT.USAGE;
  }
  try {
    const config = await loadConfig(o.config ?? DEFAULT_CONFIG_PATH);
    const names = config.inventory.servers.map((s) => s.name);
    for (const s of o.server ?? []) if (!names.includes(s)) throw new UsageError(`--server ${s}: not in the config (${names.join(', ')})`);
    switch (cmd) {
      case 'run': {
        const tty = process.stderr.isTTY === true;
        const verbose = o.quiet ? false : (o.progress ?? tty);
        const tools = checkNativeTools();
        if (!tools.ok) {
          err(`pullvault: cannot run: ${tools.message}`);
          const at = new Date();
          await recordRefusal(config, at, at, `missing programs: ${tools.missing.map((t) => t.name).join(', ')}`, err);
          await mailOnFailure(config, 'pullvault: cannot run', tools.message);
          return EXIT.REFUSED;
        }
        const offsite = o['no-offsite'] ? undefined : await loadOffsite();
        const unhook = stopChildrenOnSignals(config);
        // warnings are also kept for the failure mail (a mail failure never fails the run)
        const warnings: string[] = [];
        try {
          const r = await runCycle(config, {
            log: verbose ? err : () => {},
            warn: (line: string) => {
              warnings.push(line);
              err(line);
            },
            progress: verbose && tty,
            onProgress: (chunk) => process.stderr.write(chunk),
            only: o.server,
            noPrune: o['no-prune'],
            offsite: o['no-offsite'] ? undefined : offsite?.offsitePhase,
          });
          if (r.exitCode !== EXIT.OK && r.exitCode !== EXIT.LOCKED)
            await mailOnFailure(config, `pullvault on ${config.inventory.pi.name}: run failed (exit ${r.exitCode})`, warnings.join('\n') || `exit code ${r.exitCode}`);
          return r.exitCode;
        } finally {
          unhook();
        }
      }
      case 'status': {
        const doc = await readStatus(statusFile(config));
        const record = await readRunRecord(runRecordFile(config));
        const state = runState(record, await runHolder(config, record));
        if (o.json) out(JSON.stringify({ ...doc, lastRun: record ? { ...record, state } : { state } }, null, 2));
        else out(renderStatus(doc, names, new Date(), { record, state }));
        return stateIsFailure(state) ? EXIT.SERVER_FAILED : EXIT.OK;
      }
      case 'list': {
        const now = Date.now();
        const all: Record<string, unknown[]> = {};
        for (const name of o.server ?? names) {
          const snaps = await listSnapshots(config.paths.dataDir, name);
          all[name] = snaps.map((s) => ({ id: s.id, partial: s.info?.partial ?? true, files: s.info?.stats.files, bytes: s.info?.stats.bytes, finishedAt: s.info?.finishedAt }));
          if (o.json) continue;
          out(`${name}: ${snaps.length} snapshot(s)`);
          for (const s of snaps.reverse()) {
            const i = s.info;
            out(`  ${s.id}  ${i ? `${formatAge(now - Date.parse(i.finishedAt)).padStart(6)} ago  ${String(i.stats.files).padStart(8)} files  ${formatBytes(i.stats.bytes).padStart(10)}${i.partial ? '  PARTIAL' : ''}` : '(no snapshot.json)'}`);
          }
        }
        if (o.json) out(JSON.stringify(all, null, 2));
        return EXIT.OK;
      }
      case 'prune': {
        const verdict = await preflight(config);
        if (!verdict.ok) {
          err(`pullvault: refusing: ${verdict.reason}`);
          return EXIT.REFUSED;
        }
        const dry = o['dry-run'] === true;
        const reports = await prune(config, { now: new Date(), dryRun: dry, log: out });
        for (const r of reports) {
          for (const d of r.decisions) if (d.keep) out(`keep ${r.server}/${d.id} (${d.reason})`);
        }
        if (dry && reports.every((r) => r.decisions.every((d) => d.keep))) out('nothing to delete');
        return EXIT.OK;
      }
      default: {
        err(`pullvault: unknown command ${JSON.stringify(cmd)}\n(see pullvault --help)`);
        return EXIT.USAGE;
      }
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`pullvault: ${e.message}`);
      return EXIT.USAGE;
    }
    throw e;
  }
}

interface OffsiteModule {
  offsitePhase(config: RuntimeConfig, results: PullResult[], opts: { log: (s: string) => void }): Promise<unknown>;
  restoreMain(argv: string[]): Promise<number>;
  verifyMain(argv: string[]): Promise<number>;
}

/** The offsite module (runtime/offsite/commands.ts): archives after the pull; restore, verify. */
async function loadOffsite(): Promise<OffsiteModule | undefined> {
  const { offsitePhase, restoreMain, verifyMain } = await import('./offsite/commands.ts');
  return {
    offsitePhase: async (config, results, opts) => {
      const r = await offsitePhase(
        config,
        results.filter((x) => x.snapshot).map((x) => ({ server: x.server, snapshotDir: x.snapshot!.dir, id: x.snapshot!.id, ok: x.ok })),
        { log: opts.log },
      );
      const failed = r.filter((x) => x.error);
      if (failed.length) throw new Error(failed.map((x) => `${x.server}: ${x.error}`).join('; '));
      return r;
    },
    restoreMain,
    verifyMain,
  };
}
