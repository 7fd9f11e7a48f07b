// The Prometheus textfile (node_exporter's textfile collector): rewritten atomically at every
// event from the run record and the servers' status, so a scrape always sees the last run as it
// stands — started, or finished with its outcome. A later run's file is never replaced.
import type { RuntimeConfig } from '../contract/runtime-config.ts';
import type { Notifier } from './notifier.ts';
import { writeFileAtomic } from './state.ts';
import { prometheusText } from './status.ts';

export const PROM_FILE = 'pullvault.prom';

export function prometheusNotifier(config: RuntimeConfig): Notifier | undefined {
  const dir = config.inventory.notifications?.prometheusTextfileDir;
  if (!dir) return undefined;
  return {
    name: 'prometheus textfile',
    kinds: ['start', 'ok', 'partial', 'refused', 'failed'],
    timeoutMs: 10_000,
    secrets: [],
    async deliver(event) {
      if (!event.current) return;
      await writeFileAtomic(`${dir}/${PROM_FILE}`, prometheusText(event.status, event.run));
    },
  };
}
