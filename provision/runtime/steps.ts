// install-runtime's steps: the plan's directories and files as the managed-dir and managed-file
// steps (engine/files.ts) on any executor: SSH to a running Pi, or local under an image's root
// directory.
import path from 'node:path';
import { dirStep, fileStep, pathFactsOf } from '../engine/files.ts';
import type { Step } from '../engine/types.ts';
import type { Executor } from '../exec/types.ts';
import type { InstallPlan } from './plan.ts';

/** Prefix for paths under an image root ('' over SSH). */
function under(root: string, p: string): string {
  return root ? path.posix.join(root, p) : p;
}

/**
 * The plan as engine steps. `root` is '' on a running Pi, or the image's root directory (the
 * executor then is local and every path is taken under it). Files wait for their directory.
 * The state of all paths is read once, at the first check.
 */
export function installSteps<Ctx>(plan: InstallPlan, exec: (ctx: Ctx) => Executor, root = ''): Step<Ctx>[] {
  const dirs = plan.dirs.map((d) => ({ ...d, path: under(root, d.path) }));
  const files = plan.files.map((f) => ({ ...f, path: under(root, f.path) }));
  const facts = pathFactsOf(exec, [...dirs.map((d) => d.path), ...files.map((f) => f.path)]);
  const steps: Step<Ctx>[] = [];
  const dirIds = new Map<string, string>();
  plan.dirs.forEach((d, i) => {
    const id = `dir ${d.path}`;
    dirIds.set(d.path, id);
    steps.push(dirStep(id, exec, facts, dirs[i]!));
  });
  plan.files.forEach((f, i) => {
    const parent = path.posix.dirname(f.path);
    const after = dirIds.has(parent) ? [dirIds.get(parent)!] : [];
    steps.push(fileStep(f.id, exec, facts, files[i]!, { after }));
  });
  return steps;
}
