// Every child process the runtime starts goes through spawnChild: one registry of live children
// (so SIGTERM/SIGINT of the runtime stops them all, pull and archive alike), and each child dies
// with the runtime even when it is SIGKILLed: it is started through `setpriv --pdeathsig KILL`
// (util-linux), which sets PR_SET_PDEATHSIG and then execs the program (same pid, no extra
// process). The kernel delivers that signal when the spawning thread exits, and libuv spawns
// from the main thread. Without setpriv (e.g. restore on a machine that lacks it) children are
// started plainly; `pullvault run` refuses to start without it (native-check.ts).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { whichSync } from './native-check.ts';

/** Children still running. */
export const children = new Set<ChildProcess>();

let setpriv: string | null | undefined;
const setprivPath = () => (setpriv === undefined ? (setpriv = whichSync('setpriv')) : setpriv);

/** argv as actually executed: behind setpriv when it is installed. */
export function deathBoundArgv(argv: string[], wrapper: string | null = setprivPath()): string[] {
  return wrapper ? [wrapper, '--pdeathsig', 'KILL', '--', ...argv] : argv;
}

export function spawnChild(argv: string[], opts: SpawnOptions = {}): ChildProcess {
  const [cmd, ...args] = deathBoundArgv(argv);
  const child = spawn(cmd, args, opts);
  children.add(child);
  const forget = () => children.delete(child);
  child.once('exit', forget);
  child.once('error', forget);
  return child;
}

/** From a signal handler: ask every live child to stop (those left get SIGKILL when we exit). */
export function stopChildren(signal: NodeJS.Signals = 'SIGTERM'): void {
  for (const c of children) c.kill(signal);
}
