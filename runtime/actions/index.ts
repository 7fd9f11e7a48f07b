// Every `pullvault` action, by name. A module is loaded only when its action runs (or help is
// asked for): a pull never loads the offsite code (AWS SDK, OpenPGP) of restore and verify.
import type { Action } from './action.ts';

const load = (m: () => Promise<{ default: Action }>) => async () => (await m()).default;

export const ACTIONS: Record<string, () => Promise<Action>> = {
  run: load(() => import('./run.ts')),
  status: load(() => import('./status.ts')),
  list: load(() => import('./list.ts')),
  prune: load(() => import('./prune.ts')),
  restore: load(() => import('./restore.ts')),
  verify: load(() => import('./verify.ts')),
  watch: load(() => import('./watch.ts')),
  report: load(() => import('./report.ts')),
};
