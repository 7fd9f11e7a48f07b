// Lab driver: one `pullvault run` with its offsite phase, through the runtime's own runCycle, with
// the clock moved on by DAYS (runCycle's `now` seam, handed to the offsite phase as well), so a
// test that lasts a minute leaves a history of several days: snapshots, uploads on the schedule,
// the run history. The folder target's clock moves with it: objects this run stored get its time
// as their mtime (the store's own clock, which the watchdog trusts over the snapshot names).
// Nothing else differs from `pullvault run`.
// usage: tsx report-run.ts CONFIG DAYS
import { readdir, readFile, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { runCycle } from '../../runtime/cycle.ts';
import { offsitePhase } from '../../runtime/offsite/phase.ts';

const [configPath, days] = process.argv.slice(2);
const config = JSON.parse(await readFile(configPath, 'utf8')) as RuntimeConfig;
const shiftMs = Number(days) * 86_400_000;
const now = () => new Date(Date.now() + shiftMs);
const realStart = Date.now() - 1000;

/** Files under `dir` written since this run started: stamped with the run's (moved) clock. */
async function stampStored(dir: string, at: Date): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (!e.isFile()) continue;
    const f = join(e.parentPath, e.name);
    if ((await stat(f)).mtimeMs >= realStart) await utimes(f, at, at);
  }
}
const r = await runCycle(config, {
  log: (s) => process.stdout.write(`${s}\n`),
  warn: (s) => process.stderr.write(`${s}\n`),
  now,
  offsite: async (c, results, o) => {
    const sent = await offsitePhase(c, results, { log: o.log, now: now() });
    if (c.inventory.offsite.type === 'dir') await stampStored(c.inventory.offsite.path, now());
    const failed = sent.filter((x) => x.error && x.error !== 'pull failed; no new snapshot to send');
    if (failed.length) throw new Error(failed.map((x) => `${x.server}: ${x.error}`).join('; '));
    return sent;
  },
});
process.exit(r.exitCode);
