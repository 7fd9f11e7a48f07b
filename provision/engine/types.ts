// The plan model: a change is data (Terraform's NoOp/Create/Update/Delete), a step pairs a
// read-only check with an apply. Plans are built by pure functions in provision/plan/.
import type { Executor } from '../exec/types.ts';

export type Action = 'create' | 'update' | 'delete';

export interface Change {
  action: Action;
  /** one line saying what will change, e.g. "add groups alice, bob" */
  summary?: string;
  /** current and desired text, rendered as a diff by the reporter (masked when the step is sensitive) */
  before?: string;
  after?: string;
}

export interface Step<Ctx = unknown> {
  /** unique, human-readable: "web1: dispatcher /usr/local/sbin/pullvault-dispatch" */
  id: string;
  /** ids of steps that must succeed first; a failed dependency skips this step */
  after?: string[];
  /** never print before/after (keys, credentials); the action is still shown */
  sensitive?: boolean;
  /** handlers (by name) to run once, after all steps, when this step changed something */
  notify?: string[];
  /** read-only: null means "already as wanted". Runs in dry-run too. */
  check(ctx: Ctx): Promise<Change | null>;
  /** makes the change; called only when check returned one and not in dry-run */
  apply(ctx: Ctx, change: Change): Promise<void>;
}

export interface Handler<Ctx = unknown> {
  name: string;
  run(ctx: Ctx): Promise<void>;
}

export type StepStatus = 'ok' | 'changed' | 'failed' | 'skipped';

export interface StepResult {
  id: string;
  status: StepStatus;
  change?: Change;
  error?: string;
}

export interface RunSummary {
  results: StepResult[];
  ok: number;
  changed: number;
  failed: number;
  skipped: number;
  dryRun: boolean;
}

/** The context of steps that act through one Executor (a server, the Pi). */
export interface ExecCtx {
  exec: Executor;
}
