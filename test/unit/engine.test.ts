import { describe, expect, it } from 'vitest';
import { Redactor, TextReporter, exitCodeOf, fileStep, runSteps, type Step } from '../../provision/engine/index.ts';
import { checkResult, type CommandOptions, type CommandResult, type Executor } from '../../provision/exec/types.ts';

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

/** A tiny filesystem behind the Executor interface, understanding the commands files.ts sends. */
class FakeFs implements Executor {
  readonly where = 'fake';
  files = new Map<string, { content: string; mode: string; owner: string }>();
  private n = 0;
  async run(argv: string[], opts?: CommandOptions): Promise<CommandResult> {
    return checkResult(this.where, argv, this.exec(argv, opts), opts);
  }
  change(argv: string[], opts?: CommandOptions): Promise<CommandResult> {
    return this.run(argv, opts);
  }
  private exec(argv: string[], opts?: CommandOptions): CommandResult {
    const ok = (stdout = ''): CommandResult => ({ stdout, stderr: '', code: 0 });
    const [cmd] = argv;
    const p = argv[argv.length - 1];
    if (cmd === 'stat') {
      const f = this.files.get(p);
      return f ? ok(`${f.mode} ${f.owner.replace(':', ' ')} regular file\n`) : { stdout: '', stderr: 'No such file', code: 1 };
    }
    if (cmd === 'cat') return ok(this.files.get(p)!.content);
    if (cmd === 'mktemp') return ok(`/etc/.pullvault.${++this.n}\n`);
    if (cmd === 'sh') return (this.files.set(p, { content: String(opts?.input ?? ''), mode: '600', owner: 'root:root' }), ok());
    if (cmd === 'chown') return (this.files.get(p)!.owner = argv[1]), ok();
    if (cmd === 'chmod') return (this.files.get(p)!.mode = argv[1]), ok();
    if (cmd === 'validate') return this.files.get(p)!.content.includes('bad') ? { stdout: '', stderr: 'syntax error', code: 1 } : ok();
    if (cmd === 'mv') return this.files.set(argv[4], this.files.get(argv[3])!), this.files.delete(argv[3]), ok();
    if (cmd === 'rm') return this.files.delete(p), ok();
    throw new Error(`unexpected ${argv.join(' ')}`);
  }
  async close() {}
}

describe('managed files', () => {
  const want = (content: string) => ({ path: '/etc/thing.conf', content, mode: '644', owner: 'root', group: 'root', validate: (tmp: string) => ['validate', tmp] });

  it('writes through a validated temp file; an invalid file never replaces a good one', async () => {
    const fs = new FakeFs();
    const c = capture();
    await runSteps([fileStep('conf', () => fs, want('good\n'))], null, { reporter: c.reporter });
    expect(fs.files.get('/etc/thing.conf')).toEqual({ content: 'good\n', mode: '644', owner: 'root:root' });
    const s = await runSteps([fileStep('conf', () => fs, want('bad\n'))], null, { reporter: c.reporter });
    expect(s.failed).toBe(1);
    expect(fs.files.get('/etc/thing.conf')!.content).toBe('good\n');
    expect([...fs.files.keys()]).toEqual(['/etc/thing.conf']); // temp file cleaned up
  });

  it('detects a mode drift and puts it back', async () => {
    const fs = new FakeFs();
    await runSteps([fileStep('conf', () => fs, want('x\n'))], null, { reporter: capture().reporter });
    fs.files.get('/etc/thing.conf')!.mode = '666';
    const c = capture();
    const s = await runSteps([fileStep('conf', () => fs, want('x\n'))], null, { reporter: c.reporter });
    expect(s.changed).toBe(1);
    expect(c.text()).toContain('mode 666→644');
    expect(fs.files.get('/etc/thing.conf')!.mode).toBe('644');
  });
});
