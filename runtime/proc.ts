// The runtime's children: every one is in lib/proc's registry (the SIGTERM/SIGINT handler stops
// them all, pull and archive alike) and bound to die with the runtime even when it is SIGKILLed
// (setpriv --pdeathsig KILL). Without setpriv (restore on a machine that lacks it) children are
// started plainly; `pullvault run` refuses to start without it (native-check.ts).
import { createProc } from '../lib/proc/index.ts';

const CHILD_ENV: NodeJS.ProcessEnv = {
  PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
  HOME: process.env.HOME ?? '/root',
};

/** Archive, restore and verify children (tar, zstd, gpg): failures reject. */
export const { start, run } = createProc({ dieWithParent: true });

/** Pull children (rsync, ssh, find): a minimal environment; the caller judges the exit code (rsync's partial codes). */
export const pull = createProc({ dieWithParent: true, env: CHILD_ENV, nothrow: true, stdio: ['ignore', 'pipe', 'pipe'] });
