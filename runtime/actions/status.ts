// `pullvault status`: how the last run ended and each server's last snapshot.
import { runHolder, statusFile } from '../cycle.ts';
import { EXIT } from '../exit-codes.ts';
import { readRunRecord, runRecordFile, runState, stateIsFailure } from '../run-record.ts';
import { readStatus } from '../status-file.ts';
import { renderStatus } from '../status.ts';
import { defineAction } from './action.ts';

export default defineAction({
  name: 'status',
  summary: `the last run (ok, partial, failed, refused, interrupted, running) and per server:
age, size, partial and failed flags; exit 1 if the last run failed, was refused or
was interrupted   (--json: the run record and the status file)`,
  help: 'usage: pullvault status [--config FILE] [--json]',
  config: true,
  options: { json: { type: 'boolean' } },
  async main({ values, config, out }) {
    const doc = await readStatus(statusFile(config));
    const record = await readRunRecord(runRecordFile(config));
    const state = runState(record, await runHolder(config, record));
    if (values.json) out(JSON.stringify({ ...doc, lastRun: record ? { ...record, state } : { state } }, null, 2));
    else out(renderStatus(doc, config.inventory.servers.map((s) => s.name), new Date(), { record, state }));
    return stateIsFailure(state) ? EXIT.SERVER_FAILED : EXIT.OK;
  },
});
