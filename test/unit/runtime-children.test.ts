// The runtime's one child registry: every child it spawns is registered until it exits, stopped
// by stopChildren (the SIGTERM/SIGINT handler), and bound to die with the runtime itself even
// when that is SIGKILLed (setpriv --pdeathsig KILL), proven with real processes.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { children, deathBoundArgv, spawnChild, stopChildren } from '../../runtime/children.ts';
import { start as startArchiveProc } from '../../runtime/archive/proc.ts';
import { finished, start as startPullProc } from '../../runtime/pull/proc.ts';
import { whichSync } from '../../runtime/native-check.ts';
import { waitFor } from '../lab/wait.ts';

const CHILDREN_TS = fileURLToPath(new URL('../../runtime/children.ts', import.meta.url));
const hasSetpriv = whichSync('setpriv') !== null;

describe('child registry', () => {
  it('wraps argv in setpriv --pdeathsig KILL when it is installed, else leaves it', () => {
    expect(deathBoundArgv(['tar', '-c', '--', 'x'], '/usr/bin/setpriv')).toEqual(['/usr/bin/setpriv', '--pdeathsig', 'KILL', '--', 'tar', '-c', '--', 'x']);
    expect(deathBoundArgv(['tar', '-c'], null)).toEqual(['tar', '-c']);
  });

  it('pull and archive children share one registry, and stopChildren stops them all', async () => {
    const pull = startPullProc(['sleep', '60']);
    const pullDone = finished(pull);
    const archive = startArchiveProc(['sleep', '61']);
    expect([...children]).toEqual(expect.arrayContaining([pull, archive.child]));
    stopChildren('SIGTERM');
    expect((await pullDone).signal).toBe('SIGTERM');
    await expect(archive.done).rejects.toThrow(/killed by SIGTERM/);
    expect(children.has(pull) || children.has(archive.child)).toBe(false);
  });

  it.skipIf(!hasSetpriv)('a child dies with a SIGKILLed parent (PR_SET_PDEATHSIG), without a signal handler', async () => {
    // a parent node process spawns `sleep` through spawnChild, prints its pid, and is SIGKILLed
    const script = `const { spawnChild } = await import(${JSON.stringify(CHILDREN_TS)});
const c = spawnChild(['sleep', '300'], { stdio: 'ignore' });
c.on('spawn', () => console.log(c.pid));
setInterval(() => {}, 1 << 30);`;
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = Number(await new Promise<string>((res, rej) => {
      createInterface({ input: parent.stdout! }).once('line', res);
      parent.once('exit', (c) => rej(new Error(`parent exited early (${c})`)));
    }));
    expect(existsSync(`/proc/${pid}`)).toBe(true);
    parent.kill('SIGKILL');
    // the sleep was re-parented, not left running: gone (or a zombie awaiting its reaper)
    const gone = () => !existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readStatus(pid));
    try {
      await waitFor('the child of the killed parent to die', async () => gone(), 5_000, 20);
    } finally {
      if (!gone()) process.kill(pid, 'SIGKILL');
    }
  });
});

function readStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}
