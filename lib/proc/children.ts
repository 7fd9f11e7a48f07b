// One registry of the children this process started (so a SIGTERM/SIGINT handler stops them
// all), and, on request, each child bound to die with this process even when it is SIGKILLed:
// started through `setpriv --pdeathsig KILL` (util-linux), which sets PR_SET_PDEATHSIG and then
// execs the program (same pid, no extra process). The kernel delivers that signal when the
// spawning thread exits, and libuv spawns from the calling thread.
import type { ChildProcess } from 'node:child_process';
import { whichSync } from './which.ts';

/** Children still running. */
export const children = new Set<ChildProcess>();

let setpriv: string | null | undefined;
const setprivPath = () => (setpriv === undefined ? (setpriv = whichSync('setpriv')) : setpriv);

/** argv as actually executed when bound to die with us: behind setpriv when it is installed. */
export function deathBoundArgv(argv: string[], wrapper: string | null = setprivPath()): string[] {
  return wrapper ? [wrapper, '--pdeathsig', 'KILL', '--', ...argv] : argv;
}

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  const forget = () => children.delete(child);
  child.once('exit', forget);
  child.once('error', forget);
  return child;
}

/** From a signal handler: ask every live child to stop (those left get SIGKILL when we exit, if death-bound). */
export function stopChildren(signal: NodeJS.Signals = 'SIGTERM'): void {
  for (const c of children) c.kill(signal);
}
