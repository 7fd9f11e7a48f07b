// The notification channels a config turns on. A new channel is one module exporting a
// `(config) => Notifier | undefined` factory, listed here.
import type { RuntimeConfig } from '../contract/runtime-config.ts';
import { historyNotifier } from './history.ts';
import { mailNotifier } from './notify-mail.ts';
import { prometheusNotifier } from './notify-prometheus.ts';
import { webhookNotifier } from './notify-webhook.ts';
import { healthchecksNotifier } from './notify.ts';
import { dispatch, type Delivery, type Notifier, type RunEvent } from './notifier.ts';

export type NotifierFactory = (config: RuntimeConfig) => Notifier | undefined;

const NOTIFIERS: readonly NotifierFactory[] = [historyNotifier, prometheusNotifier, healthchecksNotifier, mailNotifier, webhookNotifier];

export function notifiersFor(config: RuntimeConfig, factories: readonly NotifierFactory[] = NOTIFIERS): Notifier[] {
  return factories.flatMap((f) => f(config) ?? []);
}

/** Sends `event` to the channels `config` names (in a run, or from any other command). Never rejects. */
export function sendEvent(config: RuntimeConfig, event: RunEvent, opts: { warn: (line: string) => void; log?: (line: string) => void }): Promise<Delivery[]> {
  return dispatch(notifiersFor(config), event, opts);
}
