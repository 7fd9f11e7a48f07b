// The plan model: a change is data (Terraform's NoOp/Create/Update/Delete), a step pairs a
// read-only check with an apply. Plans are built by pure functions in each role's plan.ts (provision/server/, runtime/, aws/, image/).
import type { Executor } from '../exec/types.ts';

export type Action = 'create' | 'update' | 'delete';

export interface Change {
  action: Action;
  /** one line saying what will change, e.g. "add groups alice, bob" */
  summary?: string;
  /** current and desired text, rendered as a diff by the reporter (masked when the step is sensitive) */
  before?: string;
  after?: string;
  /** what apply needs beyond the step's own inputs, decided by the check (plain JSON: a plan file carries it) */
  data?: unknown;
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
  /**
   * a check-only step (apply does nothing): its check runs again when the plan is applied, after
   * the steps it depends on, since what it proves (a login works) holds only once they are done
   */
  verify?: boolean;
  /** read-only: null means "already as wanted". Every check runs once, in order, to make the plan. */
  check(ctx: Ctx): Promise<Change | null>;
  /** makes the planned change (the plan's Change, possibly read back from a plan file); never in a dry run */
  apply(ctx: Ctx, change: Change): Promise<void>;
}

/** One step in a plan: what its check found. */
export interface PlannedStep {
  id: string;
  after?: string[];
  /** its change's before/after are never written out */
  sensitive?: boolean;
  status: 'ok' | 'change' | 'failed' | 'skipped';
  change?: Change;
  error?: string;
}

/** Everything the checks found, in step order, before anything is applied: printed, or written as JSON (--plan-json). */
export interface Plan {
  steps: PlannedStep[];
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
