import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redactor, TextReporter, dirStep, exitCodeOf, fileStep, pathFactsOf, runSteps, type Step } from '../../provision/engine/index.ts';
import { LocalExecutor } from '../../provision/exec/local.ts';

/** An in-memory key/value "resource" and steps that converge it. */
class Store {
  data = new Map<string, string>();
  writes = 0;
}

function kvStep(id: string, key: string, value: string, extra: Partial<Step<Store>> = {}): Step<Store> {
  return {
    id,
    check: async (s) => {
      const cur = s.data.get(key);
      if (cur === value) return null;
      return { action: cur === undefined ? 'create' : 'update', before: cur ?? '', after: value };
    },
    apply: async (s) => {
      s.data.set(key, value);
      s.writes++;
    },
    ...extra,
  };
}

function capture() {
  const out: string[] = [];
  const redactor = new Redactor();
  const reporter = new TextReporter(redactor, (t) => out.push(t));
  return { out, redactor, reporter, text: () => out.join('') };
}

describe('engine', () => {
  it('applies changes, then a second run changes nothing', async () => {
    const store = new Store();
    const steps = [kvStep('a', 'a', '1'), kvStep('b', 'b', '2', { after: ['a'] })];
    const first = capture();
    const s1 = await runSteps(steps, store, { reporter: first.reporter });
    expect([s1.changed, s1.ok, s1.failed]).toEqual([2, 0, 0]);
    expect(first.text()).toContain('0 ok, 2 changed, 0 failed');
    const second = capture();
    const s2 = await runSteps(steps, store, { reporter: second.reporter });
    expect([s2.changed, s2.ok, s2.failed]).toEqual([0, 2, 0]);
    expect(second.text()).toContain('2 ok, 0 changed, 0 failed');
    expect(store.writes).toBe(2);
  });

  it('--dry-run runs checks only, shows the diff, changes nothing', async () => {
    const store = new Store();
    store.data.set('a', 'old line\nsame\n');
    const c = capture();
    const s = await runSteps([kvStep('a', 'a', 'new line\nsame\n'), kvStep('z', 'z', 'x', { after: ['a'] })], store, { reporter: c.reporter, dryRun: true });
    expect(store.writes).toBe(0);
    expect(store.data.get('a')).toBe('old line\nsame\n');
    expect(s.changed).toBe(2);
    expect(c.text()).toMatch(/would change +a \(update\)/);
    expect(c.text()).toContain('-old line');
    expect(c.text()).toContain('+new line');
    expect(c.text()).toContain('0 ok, 2 to change, 0 failed');
  });

  it('a failing step stops the steps that depend on it, not the others', async () => {
    const store = new Store();
    const boom: Step<Store> = { id: 'boom', check: async () => ({ action: 'create' }), apply: async () => { throw new Error('disk on fire'); } };
    const c = capture();
    const s = await runSteps([boom, kvStep('dependent', 'd', '1', { after: ['boom'] }), kvStep('independent', 'i', '1')], store, { reporter: c.reporter });
    expect(s.results.map((r) => [r.id, r.status])).toEqual([['boom', 'failed'], ['dependent', 'skipped'], ['independent', 'changed']]);
    expect(store.data.has('d')).toBe(false);
    expect(exitCodeOf(s)).toBe(1);
    expect(c.text()).toContain('failed       boom');
    expect(c.text()).toContain('disk on fire');
    expect(c.text()).toContain('depends on failed step "boom"');
  });

  it('never prints a secret: sensitive steps hide contents, and registered secrets are masked everywhere', async () => {
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const store = new Store();
    const c = capture();
    c.redactor.add(secret);
    const leaky: Step<Store> = { id: 'leaky', check: async () => ({ action: 'create' }), apply: async () => { throw new Error(`AWS said no to ${secret}`); } };
    await runSteps([kvStep('key', 'k', secret, { sensitive: true }), leaky], store, { reporter: c.reporter });
    await runSteps([kvStep('key2', 'k2', `x${secret}x`, { sensitive: true })], store, { reporter: c.reporter, dryRun: true });
    expect(c.text()).not.toContain(secret);
    expect(c.text()).toContain('(sensitive: contents not shown)');
    expect(c.text()).toContain('AWS said no to ****');
  });

  it('runs a handler once after changes, and not when nothing changed', async () => {
    const store = new Store();
    let reloads = 0;
    const handlers = [{ name: 'reload', run: async () => void reloads++ }];
    const steps = [kvStep('a', 'a', '1', { notify: ['reload'] }), kvStep('b', 'b', '1', { notify: ['reload'] })];
    await runSteps(steps, store, { reporter: capture().reporter, handlers });
    expect(reloads).toBe(1);
    await runSteps(steps, store, { reporter: capture().reporter, handlers });
    expect(reloads).toBe(1);
  });

  it('refuses a plan whose dependency is missing or comes later', async () => {
    await expect(runSteps([kvStep('a', 'a', '1', { after: ['b'] }), kvStep('b', 'b', '1')], new Store(), { reporter: capture().reporter })).rejects.toThrow(/depends on "b"/);
  });
});

describe('managed files (engine/files.ts: one kind for server, runtime and image), on this machine in a temp dir', () => {
  const me = userInfo().username;
  const myGroup = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
  const exec = new LocalExecutor();
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'pv-files-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const conf = () => path.join(dir, 'thing.conf');
  // the validation refuses a candidate holding "bad", as `sshd -t` refuses a broken config
  const want = (content: string) => ({ path: conf(), content, mode: '644', owner: me, group: myGroup, validate: (tmp: string) => ['sh', '-c', '! grep -q bad "$1"', 'sh', tmp] });
  const steps = (content: string) => {
    const facts = pathFactsOf(() => exec, [dir, conf()]);
    return [dirStep('dir', () => exec, facts, { path: dir, mode: '750', owner: me, group: myGroup }), fileStep('conf', () => exec, facts, want(content), { after: ['dir'] })];
  };

  it('writes through a validated temp file; an invalid file never replaces a good one', async () => {
    const c = capture();
    expect((await runSteps(steps('good\n'), null, { reporter: c.reporter })).changed).toBe(2);
    expect(readFileSync(conf(), 'utf8')).toBe('good\n');
    expect((statSync(dir).mode & 0o777).toString(8)).toBe('750');
    const s = await runSteps(steps('bad\n'), null, { reporter: c.reporter });
    expect(s.failed).toBe(1);
    expect(readFileSync(conf(), 'utf8')).toBe('good\n');
    expect(readdirSync(dir)).toEqual(['thing.conf']); // temp file cleaned up
    expect((await runSteps(steps('good\n'), null, { reporter: c.reporter })).changed).toBe(0);
  });

  it('detects a mode drift and puts it back, showing the diff of a content change', async () => {
    await runSteps(steps('x\n'), null, { reporter: capture().reporter });
    chmodSync(conf(), 0o666);
    const c = capture();
    const s = await runSteps(steps('y\n'), null, { reporter: c.reporter });
    expect(s.changed).toBe(1);
    expect(c.text()).toContain('content, mode 666→644');
    expect(c.text()).toContain('-x');
    expect(c.text()).toContain('+y');
    expect((statSync(conf()).mode & 0o777).toString(8)).toBe('644');
  });
});
