// The engine, in two phases. plan: every step's check, in order (read-only: the facts and the
// changes, nothing applied; a failed check skips the steps that depend on it). apply: the planned
// changes in order, each with the Change its check returned (or the one read back from a plan
// file), a check-only step's check again once its dependencies are done, handlers once after
// changes; a failure stops only the steps that depend on it. A dry run is the plan alone.
import type { Handler, Plan, PlannedStep, RunSummary, Step, StepResult } from './types.ts';
import type { Reporter } from './report.ts';

export interface RunOptions<Ctx> {
  dryRun?: boolean;
  reporter: Reporter;
  handlers?: Handler<Ctx>[];
  /** called with the plan before anything is applied (--plan-json writes it) */
  onPlan?: (plan: Plan) => void | Promise<void>;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function checkOrder<Ctx>(steps: Step<Ctx>[]): void {
  const ids = new Set<string>();
  for (const s of steps) {
    if (ids.has(s.id)) throw new Error(`plan error: two steps share the id "${s.id}"`);
    for (const d of s.after ?? []) if (!ids.has(d)) throw new Error(`plan error: step "${s.id}" depends on "${d}", which does not come before it`);
    ids.add(s.id);
  }
}

const blockedText = (ids: string[]) => `not run: depends on failed step ${ids.map((b) => `"${b}"`).join(', ')}`;

/** Every check, in order; nothing is applied. With a reporter, each step is reported as a dry run shows it. */
export async function planSteps<Ctx>(steps: Step<Ctx>[], ctx: Ctx, reporter?: Reporter): Promise<Plan> {
  checkOrder(steps);
  const planned: PlannedStep[] = [];
  const failed = new Set<string>();
  for (const step of steps) {
    const after = { ...(step.after?.length ? { after: step.after } : {}), ...(step.sensitive ? { sensitive: true } : {}) };
    const blockedBy = (step.after ?? []).filter((d) => failed.has(d));
    if (blockedBy.length) {
      failed.add(step.id);
      planned.push({ id: step.id, ...after, status: 'skipped', error: blockedText(blockedBy) });
      reporter?.step(step.id, 'skipped', undefined, blockedText(blockedBy));
      continue;
    }
    try {
      const change = await step.check(ctx);
      planned.push(change ? { id: step.id, ...after, status: 'change', change } : { id: step.id, ...after, status: 'ok' });
      reporter?.step(step.id, change ? 'would change' : 'ok', change ?? undefined, undefined, step.sensitive);
    } catch (e) {
      failed.add(step.id);
      planned.push({ id: step.id, ...after, status: 'failed', error: errorText(e) });
      reporter?.step(step.id, 'failed', undefined, errorText(e));
    }
  }
  return { steps: planned };
}

/**
 * The plan as JSON (what --plan-json writes; parsePlan reads it back): a sensitive step's
 * before/after are left out (apply takes its content from the step), and `mask` hides every
 * registered secret in the rest.
 */
export function planJson(plan: Plan, mask: (text: string) => string = (t) => t): string {
  const shown = plan.steps.map((p) => {
    if (!p.sensitive || !p.change) return p;
    const { before: _b, after: _a, ...change } = p.change;
    return { ...p, change };
  });
  return mask(`${JSON.stringify({ steps: shown }, null, 2)}\n`);
}

/** A plan read back from its JSON; throws unless it is one. */
export function parsePlan(text: string): Plan {
  const p = JSON.parse(text) as Plan;
  if (!p || !Array.isArray(p.steps) || p.steps.some((s) => typeof s?.id !== 'string' || !['ok', 'change', 'failed', 'skipped'].includes(s.status)))
    throw new Error('not a plan: expected {"steps": [{"id", "status", "change"?}, …]}');
  return p;
}

const summarize = (results: StepResult[], dryRun: boolean): RunSummary => {
  const count = (s: StepResult['status']) => results.filter((r) => r.status === s).length;
  return { results, ok: count('ok'), changed: count('changed'), failed: count('failed'), skipped: count('skipped'), dryRun };
};

/** Applies `plan` (made from these steps, in this order) and reports each step. */
export async function applyPlan<Ctx>(steps: Step<Ctx>[], plan: Plan, ctx: Ctx, opts: Omit<RunOptions<Ctx>, 'dryRun' | 'onPlan'>): Promise<RunSummary> {
  checkOrder(steps);
  if (plan.steps.map((p) => p.id).join('\n') !== steps.map((s) => s.id).join('\n')) throw new Error('the plan was made for other steps (the inventory or the host changed since): make a new plan');
  const { reporter } = opts;
  const results: StepResult[] = [];
  const notBlocking = new Set<string>();
  const pendingHandlers = new Set<string>();
  for (const [i, step] of steps.entries()) {
    const p = plan.steps[i]!;
    const blockedBy = (step.after ?? []).filter((d) => !notBlocking.has(d));
    if (blockedBy.length || p.status === 'skipped') {
      const error = blockedBy.length ? blockedText(blockedBy) : (p.error ?? 'not run');
      results.push({ id: step.id, status: 'skipped', error });
      reporter.step(step.id, 'skipped', undefined, error);
      continue;
    }
    try {
      if (p.status === 'failed') throw new Error(p.error ?? 'its check failed');
      const change = step.verify ? await step.check(ctx) : p.change;
      if (p.status === 'ok' || !change) {
        results.push({ id: step.id, status: 'ok' });
        notBlocking.add(step.id);
        reporter.step(step.id, 'ok');
        continue;
      }
      await step.apply(ctx, change);
      results.push({ id: step.id, status: 'changed', change });
      notBlocking.add(step.id);
      for (const h of step.notify ?? []) pendingHandlers.add(h);
      reporter.step(step.id, 'changed', change, undefined, step.sensitive);
    } catch (e) {
      const error = errorText(e);
      results.push({ id: step.id, status: 'failed', error });
      reporter.step(step.id, 'failed', undefined, error);
    }
  }

  for (const name of pendingHandlers) {
    const h = opts.handlers?.find((x) => x.name === name);
    const id = `handler: ${name}`;
    if (!h) {
      results.push({ id, status: 'failed', error: `no handler named "${name}"` });
      reporter.step(id, 'failed', undefined, `no handler named "${name}"`);
      continue;
    }
    try {
      await h.run(ctx);
      results.push({ id, status: 'changed' });
      reporter.step(id, 'changed');
    } catch (e) {
      results.push({ id, status: 'failed', error: errorText(e) });
      reporter.step(id, 'failed', undefined, errorText(e));
    }
  }
  const summary = summarize(results, false);
  reporter.summary(summary);
  return summary;
}

/** Plan, hand the plan to onPlan, then apply it (a dry run stops after the plan, reported as it would change). */
export async function runSteps<Ctx>(steps: Step<Ctx>[], ctx: Ctx, opts: RunOptions<Ctx>): Promise<RunSummary> {
  const dryRun = opts.dryRun ?? false;
  const plan = await planSteps(steps, ctx, dryRun ? opts.reporter : undefined);
  await opts.onPlan?.(plan);
  if (!dryRun) return applyPlan(steps, plan, ctx, opts);
  const results: StepResult[] = plan.steps.map((p) =>
    p.status === 'change' ? { id: p.id, status: 'changed', change: p.change } : p.status === 'ok' ? { id: p.id, status: 'ok' } : { id: p.id, status: p.status, error: p.error },
  );
  const summary = summarize(results, true);
  opts.reporter.summary(summary);
  return summary;
}

/** Exit code for a CLI: 0 when nothing failed, 1 otherwise (the failing steps are already named). */
export function exitCodeOf(s: RunSummary): number {
  return s.failed || s.skipped ? 1 : 0;
}
