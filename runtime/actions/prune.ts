// `pullvault prune`: apply local retention now.
import { EXIT } from '../exit-codes.ts';
import { preflight } from '../preflight.ts';
import { prune } from '../prune.ts';
import { defineAction } from './action.ts';

export default defineAction({
  name: 'prune',
  summary: 'apply local retention now   (--dry-run: list what would be deleted, delete nothing)',
  help: 'usage: pullvault prune [--config FILE] [--dry-run]',
  config: true,
  options: { 'dry-run': { type: 'boolean' } },
  async main({ values, config, out, err }) {
    const verdict = await preflight(config);
    if (!verdict.ok) {
      err(`pullvault: refusing: ${verdict.reason}`);
      return EXIT.REFUSED;
    }
    const dry = values['dry-run'] === true;
    const reports = await prune(config, { now: new Date(), dryRun: dry, log: out });
    for (const r of reports) {
      for (const d of r.decisions) if (d.keep) out(`keep ${r.server}/${d.id} (${d.reason})`);
    }
    if (dry && reports.every((r) => r.decisions.every((d) => d.keep))) out('nothing to delete');
    return EXIT.OK;
  },
});
