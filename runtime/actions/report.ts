// `pullvault report`: one self-contained HTML page of the backups over time (runtime/owner/report/).
import { report, REPORT_HELP, REPORT_OPTIONS } from '../owner/report/command.ts';
import { defineAction } from './action.ts';

export default defineAction({
  name: 'report',
  summary: 'one self-contained HTML page with charts of the backups over time (pullvault report --help)',
  help: REPORT_HELP,
  config: false,
  errorsAreFailures: true,
  options: REPORT_OPTIONS,
  main: ({ values, err }) => report(values, err),
});
