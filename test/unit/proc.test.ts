// lib/proc, the one process layer, on real child processes: exit codes and allowed codes, the
// error's argv/code/meaning/stderr tail, stdin, timeouts that kill, the child registry that a
// signal handler stops, an injectable spawn, and children bound to die with a SIGKILLed parent.
import { spawn, type SpawnOptions } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { children, CommandError, createProc, deathBoundArgv, exitMeaning, run, start, stopChildren, whichSync } from '../../lib/proc/index.ts';
import * as runtimeProc from '../../runtime/proc.ts';
import { waitFor } from '../lab/wait.ts';

const RUNTIME_PROC_TS = fileURLToPath(new URL('../../runtime/proc.ts', import.meta.url));
const hasSetpriv = whichSync('setpriv') !== null;

describe('run', () => {
  it('returns stdout, stderr and the code; feeds stdin', async () => {
    const r = await run(['sh', '-c', 'cat; echo err >&2'], { input: 'from stdin\n' });
    expect(r).toMatchObject({ code: 0, signal: null, stdout: 'from stdin\n', stderr: 'err\n', timedOut: false });
    expect(r.stdoutBuffer.equals(Buffer.from('from stdin\n'))).toBe(true);
  });

  it('an allowed exit code resolves, any other rejects with argv, code, meaning and the stderr tail', async () => {
    expect((await run(['sh', '-c', 'exit 3'], { okCodes: [0, 3] })).code).toBe(3);
    const script = 'for i in $(seq 1 20); do echo line$i >&2; done; exit 3';
    const e = (await run(['sh', '-c', script], { where: 'web1', meanings: { 3: 'three is bad' } }).catch((x) => x)) as CommandError;
    expect(e).toBeInstanceOf(CommandError);
    expect(e).toMatchObject({ argv: ['sh', '-c', script], code: 3, signal: null, meaning: 'three is bad', where: 'web1', notStarted: false, timedOut: false });
    expect(e.stderr).toContain('line1\n');
    expect(e.message).toMatch(/^web1: `sh -c 'for i in .*exit 3'` exited with 3 \(three is bad\):\n {4}line13\n/);
    expect(e.message).toMatch(/line20$/);
    expect(e.message).not.toMatch(/line12\b/);
    expect(((await run(['sh', '-c', 'exit 127']).catch((x) => x)) as CommandError).meaning).toBe('command not found');
  });

  it('hides a sensitive argv in the message', async () => {
    const e = (await run(['sh', '-c', 'exit 1', 'secret-token'], { sensitive: true }).catch((x) => x)) as CommandError;
    expect(e.message).toMatch(/^`sh …` exited with 1/);
    expect(e.message).not.toContain('secret-token');
  });

  it('a program that is not installed is an error that says it never started', async () => {
    const e = (await run(['pv-no-such-program-here']).catch((x) => x)) as CommandError;
    expect(e).toBeInstanceOf(CommandError);
    expect(e.notStarted).toBe(true);
    expect(e.code).toBeNull();
    expect(e.message).toMatch(/could not start: .*ENOENT/);
  });

  it('nothrow resolves whatever the exit; a signal counts as 128 + its number', async () => {
    expect((await run(['sh', '-c', 'exit 24'], { nothrow: true })).code).toBe(24);
    const r = await run(['sh', '-c', 'kill -TERM $$'], { nothrow: true });
    expect(r).toMatchObject({ code: 143, signal: 'SIGTERM' });
    expect(exitMeaning(143)).toBe('killed by SIGTERM');
    const e = (await run(['sh', '-c', 'kill -KILL $$']).catch((x) => x)) as CommandError;
    expect(e.message).toMatch(/killed by SIGKILL/);
  });

  it('a timeout kills the child (SIGKILL after SIGTERM is ignored) and rejects saying so', async () => {
    const t0 = Date.now();
    const e = (await run(['sleep', '30'], { timeoutMs: 200 }).catch((x) => x)) as CommandError;
    expect(e.timedOut).toBe(true);
    expect(e.signal).toBe('SIGTERM');
    expect(e.message).toMatch(/timed out after 0.2 s/);
    expect(Date.now() - t0).toBeLessThan(5_000);
    const stubborn = (await run(['sh', '-c', "trap '' TERM; exec sleep 30"], { timeoutMs: 200 }).catch((x) => x)) as CommandError;
    expect(stubborn).toMatchObject({ timedOut: true, signal: 'SIGKILL' });
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('a timeout is kept even when a grandchild holds the pipes open (a forking MTA, a shell script)', async () => {
    const t0 = Date.now();
    // sh waits on sleep (not exec): killing sh leaves sleep holding stdout and stderr for 30 s
    const e = (await run(['sh', '-c', 'sleep 30; true'], { timeoutMs: 200 }).catch((x) => x)) as CommandError;
    expect(e.timedOut).toBe(true);
    expect(Date.now() - t0).toBeLessThan(5_000);
    // the child itself gone at once, its background grandchild holding the pipes past the limit
    const t1 = Date.now();
    const bg = (await run(['sh', '-c', 'sleep 30 & exit 0'], { timeoutMs: 300 }).catch((x) => x)) as CommandError;
    expect(bg.timedOut).toBe(true);
    expect(Date.now() - t1).toBeLessThan(5_000);
  });

  it('keeps the tail of a long stderr, and passes each chunk to onStderr as it comes', async () => {
    const chunks: string[] = [];
    const r = await run(['sh', '-c', 'seq 1 2000 >&2'], { stderrCap: 100, onStderr: (s) => chunks.push(s) });
    expect(r.stderr.length).toBeLessThanOrEqual(100);
    expect(r.stderr.endsWith('1999\n2000\n')).toBe(true);
    expect(chunks.join('')).toBe(Array.from({ length: 2000 }, (_, i) => `${i + 1}\n`).join(''));
  });

  it('writes stdout to a file descriptor when asked', async () => {
    const { mkdtempSync, openSync, closeSync, rmSync } = await import('node:fs');
    const dir = mkdtempSync('/tmp/pv-proc-');
    try {
      const fd = openSync(`${dir}/out`, 'w');
      const r = await run(['echo', 'into the file'], { stdoutFd: fd });
      closeSync(fd);
      expect(r.stdout).toBe('');
      expect(readFileSync(`${dir}/out`, 'utf8')).toBe('into the file\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('spawn is injectable', () => {
  it('createProc({ spawn }) starts through the given function, death-bound argv when asked', async () => {
    const seen: string[][] = [];
    const spy = (cmd: string, args: string[], o: SpawnOptions) => (seen.push([cmd, ...args]), spawn(cmd, args, o));
    const proc = createProc({ spawn: spy, dieWithParent: true });
    expect((await proc.run(['echo', 'hi'])).stdout).toBe('hi\n');
    expect(seen).toEqual([deathBoundArgv(['echo', 'hi'])]);
    expect(deathBoundArgv(['tar', '-c', '--', 'x'], '/usr/bin/setpriv')).toEqual(['/usr/bin/setpriv', '--pdeathsig', 'KILL', '--', 'tar', '-c', '--', 'x']);
    expect(deathBoundArgv(['tar', '-c'], null)).toEqual(['tar', '-c']);
  });
});

describe('child registry', () => {
  it('every child (runtime pull, runtime archive, provisioning) is in one registry; stopChildren stops them all', async () => {
    const pulling = runtimeProc.pull.start(['sleep', '60']);
    const archiving = runtimeProc.start(['sleep', '61']);
    const other = start(['sleep', '62']);
    expect([...children]).toEqual(expect.arrayContaining([pulling.child, archiving.child, other.child]));
    stopChildren('SIGTERM');
    expect(await pulling.done).toMatchObject({ signal: 'SIGTERM', code: 143 });
    await expect(archiving.done).rejects.toThrow(/killed by SIGTERM/);
    await expect(other.done).rejects.toBeInstanceOf(CommandError);
    expect([pulling, archiving, other].some((p) => children.has(p.child))).toBe(false);
  });

  it.skipIf(!hasSetpriv)('a runtime child dies with a SIGKILLed parent (PR_SET_PDEATHSIG), without a signal handler', async () => {
    // a parent node process starts `sleep` through the runtime's start(), prints its pid, and is SIGKILLed
    const script = `const { start } = await import(${JSON.stringify(RUNTIME_PROC_TS)});
const p = start(['sleep', '300'], { stdio: 'ignore' });
p.child.on('spawn', () => console.log(p.child.pid));
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
