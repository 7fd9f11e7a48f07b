// One run at a time: an O_EXCL lock file holding "pid starttime". A file left by a dead run
// (SIGKILL, power loss) is recognised as stale — its pid is gone, or now belongs to a process
// that started at another time — and taken over.
import { open, readFile, rename, unlink } from 'node:fs/promises';

export interface Lock {
  path: string;
  release(): Promise<void>;
}

export type LockResult = { ok: true; lock: Lock } | { ok: false; holder: string };

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or undefined if no such process. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!stat) return undefined;
  // comm (field 2) may contain spaces and parentheses: split after the last ')'
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[22 - 3];
}

async function holderAlive(content: string): Promise<boolean> {
  const [pidS, start] = content.trim().split(' ');
  const pid = Number(pidS);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = await processStartTime(pid);
  return now !== undefined && now === start;
}

/** Who holds the lock file at `path` (pid, start time) and whether that process still lives. */
export interface LockHolder {
  pid: number;
  start: string;
  alive: boolean;
}

export async function readLockHolder(path: string): Promise<LockHolder | undefined> {
  const content = await readFile(path, 'utf8').catch(() => '');
  const [pidS, start] = content.trim().split(' ');
  const pid = Number(pidS);
  if (!Number.isInteger(pid) || pid <= 0 || !start) return undefined;
  return { pid, start, alive: await holderAlive(content) };
}

export async function acquireLock(path: string): Promise<LockResult> {
  const me = `${process.pid} ${await processStartTime(process.pid)}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(me);
      await fh.sync();
      await fh.close();
      return {
        ok: true,
        lock: {
          path,
          async release() {
            const now = await readFile(path, 'utf8').catch(() => '');
            if (now === me) await unlink(path).catch(() => {});
          },
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let content = await readFile(path, 'utf8').catch(() => '');
    if (!content) {
      // a run may be between creating and writing it
      await new Promise((r) => setTimeout(r, 200));
      content = await readFile(path, 'utf8').catch(() => '');
    }
    if (content && (await holderAlive(content))) return { ok: false, holder: `pid ${content.trim().split(' ')[0]}` };
    // Stale (or half-written by a run killed between create and write): move it aside
    // atomically, and only delete what we moved if it is still the stale content.
    const aside = `${path}.stale.${process.pid}`;
    await rename(path, aside).catch(() => {});
    const moved = await readFile(aside, 'utf8').catch(() => undefined);
    if (moved !== undefined && moved !== content && (await holderAlive(moved))) {
      // we raced with a live run that had just taken the lock: put it back and give up
      await rename(aside, path).catch(() => {});
      return { ok: false, holder: `pid ${moved.trim().split(' ')[0]}` };
    }
    await unlink(aside).catch(() => {});
  }
  return { ok: false, holder: 'unknown (lock file keeps reappearing)' };
}
