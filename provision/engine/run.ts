// The engine: check → apply for each step in order, handlers once after changes,
// failures stop only the steps that depend on them.
import type { Handler, RunSummary, Step, StepResult } from './types.ts';
import type { Reporter } from './report.ts';

export interface RunOptions<Ctx> {
  dryRun?: boolean;
  reporter: Reporter;
  handlers?: Handler<Ctx>[];
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function runSteps<Ctx>(steps: Step<Ctx>[], ctx: Ctx, opts: RunOptions<Ctx>): Promise<RunSummary> {
  const ids = new Set<string>();
  for (const s of steps) {
    if (ids.has(s.id)) throw new Error(`plan error: two steps share the id "${s.id}"`);
    for (const d of s.after ?? []) if (!ids.has(d)) throw new Error(`plan error: step "${s.id}" depends on "${d}", which does not come before it`);
    ids.add(s.id);
  }
  const dryRun = opts.dryRun ?? false;
  const results: StepResult[] = [];
  const notBlocking = new Set<string>();
  const pendingHandlers = new Set<string>();
  const { reporter } = opts;

  for (const step of steps) {
    const blockedBy = (step.after ?? []).filter((d) => !notBlocking.has(d));
    if (blockedBy.length) {
      const error = `not run: depends on failed step ${blockedBy.map((b) => `"${b}"`).join(', ')}`;
      results.push({ id: step.id, status: 'skipped', error });
      reporter.step(step.id, 'skipped', undefined, error);
      continue;
    }
    try {
      const change = await step.check(ctx);
      if (!change) {
        results.push({ id: step.id, status: 'ok' });
        notBlocking.add(step.id);
        reporter.step(step.id, 'ok');
        continue;
      }
      if (dryRun) {
        // In a dry run a pending change does not block dependents: their checks are read-only.
        results.push({ id: step.id, status: 'changed', change });
        notBlocking.add(step.id);
        reporter.step(step.id, 'would change', change, undefined, step.sensitive);
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

  const count = (s: StepResult['status']) => results.filter((r) => r.status === s).length;
  const summary: RunSummary = { results, ok: count('ok'), changed: count('changed'), failed: count('failed'), skipped: count('skipped'), dryRun };
  reporter.summary(summary);
  return summary;
}

/** Exit code for a CLI: 0 when nothing failed, 1 otherwise (the failing steps are already named). */
export function exitCodeOf(s: RunSummary): number {
  return s.failed || s.skipped ? 1 : 0;
}
