// `pullvault watch` (the owner's machine, cron): the watchdog over the offsite store (runtime/owner/watch.ts).
import { watch, WATCH_HELP, WATCH_OPTIONS } from '../owner/watch.ts';
import { defineAction } from './action.ts';

export default defineAction({
  name: 'watch',
  summary: `the owner's watchdog over the offsite store: age, fulls, chains, decryptability,
totals per server; pings/mails; exit 1 naming server and reason (pullvault watch --help)`,
  help: WATCH_HELP,
  config: false,
  errorsAreFailures: true,
  options: WATCH_OPTIONS,
  main: ({ values, err }) => watch(values, err),
});
