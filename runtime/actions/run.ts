// `pullvault run` (cron): pull every server into a snapshot, dump databases, upload, prune.
import { stopChildren } from '../../lib/proc/index.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { recordRefusal, runCycle } from '../cycle.ts';
import { EXIT } from '../exit-codes.ts';
import { checkNativeTools } from '../native-check.ts';
import { PULL_SPACE_MARGIN } from '../preflight.ts';
import type { PullResult } from '../pull/snapshot.ts';
import { markInterruptedSync, runRecordFile } from '../run-record.ts';
import { defineAction } from './action.ts';

const SUMMARY = `pull every server into a new snapshot, then apply local retention; before a server's
pull, when free space is below what its last pull wrote (x${PULL_SPACE_MARGIN}, at least
pi.dataDisk.minFreeMiB), first delete what retention would delete after it
--server NAME   only this server (repeatable)
--no-prune      skip local retention
--no-offsite    skip the offsite phase
--progress / --quiet   force progress output on / off (default: on when stderr is a terminal)`;

export default defineAction({
  name: 'run',
  summary: SUMMARY,
  help: `usage: pullvault run [--config FILE] [--server NAME]… [--no-prune] [--no-offsite] [--progress | --quiet]\n\n${SUMMARY}`,
  config: true,
  options: {
    server: { type: 'string', multiple: true },
    'no-prune': { type: 'boolean' },
    'no-offsite': { type: 'boolean' },
    progress: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
  },
  async main({ values: o, config, err }) {
    const tty = process.stderr.isTTY === true;
    const verbose = o.quiet ? false : (o.progress ?? tty);
    const tools = checkNativeTools();
    if (!tools.ok) {
      err(`pullvault: cannot run: ${tools.message}`);
      const at = new Date();
      await recordRefusal(config, at, at, `missing programs: ${tools.missing.map((t) => t.name).join(', ')}`, err, [tools.message]);
      return EXIT.REFUSED;
    }
    const offsite = o['no-offsite'] ? undefined : await loadOffsitePhase();
    const unhook = stopChildrenOnSignals(config, err);
    try {
      const r = await runCycle(config, {
        log: verbose ? err : () => {},
        warn: err,
        progress: verbose && tty,
        onProgress: (chunk) => process.stderr.write(chunk),
        only: o.server,
        noPrune: o['no-prune'],
        offsite,
      });
      return r.exitCode;
    } finally {
      unhook();
    }
  },
});

/** SIGTERM/SIGINT: stop every child (pull and archive alike), record the run as interrupted, exit 143/130. */
function stopChildrenOnSignals(config: RuntimeConfig, err: (s: string) => void): () => void {
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

type OffsitePhase = (config: RuntimeConfig, results: PullResult[], opts: { log: (s: string) => void }) => Promise<unknown>;

/** The offsite phase (AWS SDK, OpenPGP), loaded only when it runs: a pull stays small. */
async function loadOffsitePhase(): Promise<OffsitePhase> {
  const { offsitePhase } = await import('../offsite/phase.ts');
  return async (config, results, opts) => {
    const r = await offsitePhase(
      config,
      results.filter((x) => x.snapshot).map((x) => ({ server: x.server, snapshotDir: x.snapshot!.dir, id: x.snapshot!.id, ok: x.ok })),
      { log: opts.log },
    );
    const failed = r.filter((x) => x.error);
    if (failed.length) throw new Error(failed.map((x) => `${x.server}: ${x.error}`).join('; '));
    return r;
  };
}
