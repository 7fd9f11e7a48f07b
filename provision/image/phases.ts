// provision-pi's phases run from its plan (image/plan.ts planSteps): the dry run prints that plan
// and the build runs it, one phase per step, so the two cannot drift apart — a phase the plan
// does not list, or one out of the plan's order, stops the build, and so does a planned phase
// the build never ran.
import type { PlanStep } from './plan.ts';

export type Phase = <T>(id: string, fn: () => Promise<T>) => Promise<T>;

export interface PhaseRunner {
  phase: Phase;
  /** throws unless every planned phase ran */
  finish(): void;
}

export function phaseRunner(plan: PlanStep[], log: (line: string) => void, now: () => number = Date.now): PhaseRunner {
  let last = -1;
  const ran = new Set<string>();
  const phase: Phase = async (id, fn) => {
    const i = plan.findIndex((s) => s.id === id);
    if (i < 0) throw new Error(`provision-pi: phase ${id} is not in the plan (${plan.map((s) => s.id).join(', ')})`);
    if (i <= last) throw new Error(`provision-pi: phase ${id} runs after ${plan[last]!.id}, but the plan has it before`);
    last = i;
    const t0 = now();
    log(`${id}: ${plan[i]!.title} …`);
    const r = await fn();
    ran.add(id);
    log(`${id}: done in ${((now() - t0) / 1000).toFixed(1)} s`);
    return r;
  };
  return {
    phase,
    finish() {
      const missed = plan.filter((s) => !ran.has(s.id)).map((s) => s.id);
      if (missed.length) throw new Error(`provision-pi: the build skipped planned phases ${missed.join(', ')}`);
    },
  };
}
