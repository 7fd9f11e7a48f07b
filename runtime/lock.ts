// One holder at a time: an O_EXCL lock file holding "pid starttime" on its first line, then an
// optional note (the offsite lock lists the snapshots its holder reads). A file left by a dead
// run (SIGKILL, power loss) is recognised as stale — its pid is gone, or now belongs to a
// process that started at another time — and taken over.
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

export interface LockContent {
  pid: number;
  start: string;
  /** the lines after the first */
  note: string[];
}

/** Pure: a lock file's content, or undefined when its first line is not "pid starttime". */
export function parseLock(content: string): LockContent | undefined {
  const [first, ...rest] = content.split('\n');
  const m = /^([1-9][0-9]*) ([0-9]+)$/.exec(first.trim());
  if (!m) return undefined;
  return { pid: Number(m[1]), start: m[2], note: rest.filter((l) => l !== '') };
}

/** Pure: is the lock held? Only when its pid runs now and started when the holder wrote it. */
export function lockIsHeld(content: string, startTimeOf: (pid: number) => string | undefined): boolean {
  const c = parseLock(content);
  return c !== undefined && startTimeOf(c.pid) === c.start;
}

async function holderAlive(content: string): Promise<boolean> {
  const c = parseLock(content);
  const start = c && (await processStartTime(c.pid));
  return lockIsHeld(content, () => start);
}

/** The content of the lock at `path` when a live process holds it, else undefined. */
export async function liveHolder(path: string): Promise<LockContent | undefined> {
  const content = await readFile(path, 'utf8').catch(() => '');
  return content && (await holderAlive(content)) ? parseLock(content) : undefined;
}

/** Who holds the lock file at `path` (pid, start time) and whether that process still lives. */
export interface LockHolder {
  pid: number;
  start: string;
  alive: boolean;
}

export async function readLockHolder(path: string): Promise<LockHolder | undefined> {
  const content = await readFile(path, 'utf8').catch(() => '');
  const c = parseLock(content);
  return c && { pid: c.pid, start: c.start, alive: await holderAlive(content) };
}

export async function acquireLock(path: string, note: string[] = []): Promise<LockResult> {
  const me = `${process.pid} ${await processStartTime(process.pid)}\n${note.map((l) => `${l}\n`).join('')}`;
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
    if (content && (await holderAlive(content))) return { ok: false, holder: `pid ${parseLock(content)!.pid}` };
    // Stale (or half-written by a run killed between create and write): move it aside
    // atomically, and only delete what we moved if it is still the stale content.
    const aside = `${path}.stale.${process.pid}`;
    await rename(path, aside).catch(() => {});
    const moved = await readFile(aside, 'utf8').catch(() => undefined);
    if (moved !== undefined && moved !== content && (await holderAlive(moved))) {
      // we raced with a live run that had just taken the lock: put it back and give up
      await rename(aside, path).catch(() => {});
      return { ok: false, holder: `pid ${parseLock(moved)!.pid}` };
    }
    await unlink(aside).catch(() => {});
  }
  return { ok: false, holder: 'unknown (lock file keeps reappearing)' };
}
