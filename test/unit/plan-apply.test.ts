// The step model's promises, on provision-server's real steps: the plan is made by the checks
// alone; written as JSON (--plan-json) and read back, it is applied with the same commands a
// plain run sends after its own plan; a dry run plans through an executor that refuses every
// change, so it never changes the host; AWS clients of a dry run refuse every request but reads.
// The host is a recording executor that answers like a server where nothing is set up yet: each
// command gets the last exit code its caller allows (the "missing" one), and the probes of
// gatherFacts find every program and the database servers answering their admin.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetBucketPolicyCommand, PutBucketPolicyCommand } from '@aws-sdk/client-s3';
import { CreateUserCommand, GetUserCommand } from '@aws-sdk/client-iam';
import { afterAll, describe, expect, it } from 'vitest';
import type { Inventory, PiSpec, ServerSpec } from '../../contract/inventory-schema.ts';
import { Redactor, TextReporter, applyPlan, parsePlan, planJson, planSteps, runSteps, type Step } from '../../provision/engine/index.ts';
import { planFileWriter } from '../../provision/cli-common.ts';
import { readOnlyClients, type AwsClients } from '../../provision/exec/aws.ts';
import { ReadOnlyViolation, type CommandOptions, type CommandResult, type Executor } from '../../provision/exec/types.ts';
import { gatherFacts } from '../../provision/server/facts.ts';
import { planServer } from '../../provision/server/plan.ts';
import { loadServerTemplates, provisionServer } from '../../provision/server.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMnrFkJQ2xUcELSoX2wVt0gzJWvS6t+kUOOqU+rcFQ1R';
const pi = { name: 'pi01', sourceAddress: '198.51.100.23' } as PiSpec;
const server: ServerSpec = { name: 'web1', ssh: { host: 'web1.example.net', hostKey: KEY }, paths: [{ path: '/srv' }], databases: { mariadb: ['shop'], postgres: 'all' } };
const inventory = { pi, servers: [server] } as unknown as Inventory;

interface Call {
  kind: 'run' | 'change';
  argv: string[];
  input?: string;
}

/** A server where nothing is set up yet, recording every command it is sent. */
class FreshServer implements Executor {
  readonly where = 'web1 (fresh)';
  calls: Call[] = [];
  async run(argv: string[], opts?: CommandOptions): Promise<CommandResult> {
    return this.answer('run', argv, opts);
  }
  async change(argv: string[], opts?: CommandOptions): Promise<CommandResult> {
    return this.answer('change', argv, opts);
  }
  private answer(kind: Call['kind'], argv: string[], opts?: CommandOptions): CommandResult {
    // a managed file's temp name is random: recorded as one name
    this.calls.push({ kind, argv: argv.map((a) => a.replace(/\.pullvault\.[0-9a-f]{12}$/, '.pullvault.TMP')), ...(opts?.input !== undefined ? { input: String(opts.input) } : {}) });
    if (kind === 'change') return { stdout: '', stderr: '', code: 0 };
    // the managed paths' state (engine/files.ts): none of them exists
    if (argv[0] === 'sh' && argv[2]?.includes('MISSING')) return { stdout: argv.slice(4).map((p) => `${p}\tMISSING\t-\n`).join(''), stderr: '', code: 0 };
    // gatherFacts: every program is there (command -v prints the names it finds), rrsync knows -absolute
    if (argv[0] === 'sh' && argv[2]?.includes('command -v "$p"')) return { stdout: argv.slice(4).join('\n'), stderr: '', code: 0 };
    const codes = opts?.okCodes ?? [0];
    const answers = argv[0] === 'grep' || argv[argv.length - 1] === 'SELECT 1';
    return { stdout: '', stderr: '', code: answers ? 0 : Math.max(...codes) };
  }
  async close() {}
}

const quiet = () => new TextReporter(new Redactor(), () => {});

async function serverSteps(exec: Executor) {
  const templates = await loadServerTemplates();
  const plan = planServer({ server, index: 0, pi, piPublicKey: KEY, templates, facts: await gatherFacts(exec, server), mode: 'install' });
  expect(plan.problems).toEqual([]);
  return plan.steps;
}

describe('the plan is what apply does', () => {
  it('--plan-json: the plan read back from JSON is applied with the same changes and commands as a plain run', async () => {
    // one plain run: plan and apply in one go
    const direct = new FreshServer();
    const steps = await serverSteps(direct);
    const factCalls = direct.calls.length;
    const summary = await runSteps(steps, { exec: direct }, { reporter: quiet() });
    const directCalls = direct.calls.slice(factCalls);

    // the same in two: plan, JSON, parse, apply
    const planning = new FreshServer();
    const steps2 = await serverSteps(planning);
    const planCallsStart = planning.calls.length;
    const plan = await planSteps(steps2, { exec: planning });
    expect(planning.calls.slice(planCallsStart).every((c) => c.kind === 'run')).toBe(true);
    const read = parsePlan(planJson(plan));
    expect(read).toEqual(JSON.parse(JSON.stringify(plan)));
    const applying = new FreshServer();
    const applied = await applyPlan(steps2, read, { exec: applying }, { reporter: quiet() });

    expect(applied.failed).toBe(0);
    const changedIds = read.steps.filter((s) => s.status === 'change').map((s) => s.id);
    expect(changedIds.length).toBeGreaterThan(5);
    expect(applied.results.filter((r) => r.status === 'changed').map((r) => r.id)).toEqual(changedIds);
    for (const r of applied.results.filter((x) => x.status === 'changed')) expect(r.change).toEqual(read.steps.find((s) => s.id === r.id)!.change);
    expect(summary.results).toEqual(applied.results);
    // apply sends exactly what a plain run sends after its plan: the changes, and the check-only steps' checks again
    expect([...planning.calls.slice(planCallsStart), ...applying.calls]).toEqual(directCalls);
    const changes = applying.calls.filter((c) => c.kind === 'change').map((c) => c.argv[0]);
    expect(changes).toEqual(expect.arrayContaining(['useradd', 'usermod', 'install', 'sh', 'mariadb', 'runuser']));
  });

  it('a plan made for other steps is refused, not applied', async () => {
    const exec = new FreshServer();
    const steps = await serverSteps(exec);
    const plan = await planSteps(steps, { exec });
    await expect(applyPlan(steps, { steps: plan.steps.slice(0, -1) }, { exec }, { reporter: quiet() })).rejects.toThrow(/other steps/);
    expect(exec.calls.filter((c) => c.kind === 'change')).toEqual([]);
    expect(() => parsePlan('{"steps": [{"id": 1}]}')).toThrow(/not a plan/);
  });

  it("a change's data reaches apply through the JSON; a sensitive step's contents never reach the file", async () => {
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const seen: unknown[] = [];
    const steps: Step<null>[] = [
      { id: 'key', sensitive: true, check: async () => ({ action: 'create', summary: 'new key', after: `secret ${secret}`, data: { deleteFirst: ['AKIA1'] } }), apply: async (_c, ch) => void seen.push(ch.data) },
      { id: 'note', check: async () => ({ action: 'update', summary: `mentions ${secret}`, before: 'a\n', after: 'b\n' }), apply: async () => {} },
    ];
    const dir = mkdtempSync(path.join(tmpdir(), 'pv-plan-'));
    try {
      const file = path.join(dir, 'plan.json');
      const redactor = new Redactor();
      redactor.add(secret);
      await runSteps(steps, null, { reporter: quiet(), onPlan: (p) => planFileWriter(file, redactor)!(p) });
      const text = readFileSync(file, 'utf8');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(text).not.toContain(secret);
      expect(text).not.toContain('"after": "secret');
      await applyPlan(steps, parsePlan(text), null, { reporter: quiet() });
      expect(seen).toEqual([{ deleteFirst: ['AKIA1'] }, { deleteFirst: ['AKIA1'] }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a dry run never changes anything', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('provision-server --dry-run plans through a read-only executor: no change reaches the host, though there is much to change', async () => {
    const host = new FreshServer();
    const templates = await loadServerTemplates();
    const dry = await provisionServer(inventory, server, { executor: host, dryRun: true, piPublicKey: KEY, templates, reporter: quiet() });
    expect(dry.problems).toEqual([]);
    expect(dry.summary!.changed).toBeGreaterThan(5);
    expect(host.calls.filter((c) => c.kind === 'change')).toEqual([]);
    // the same run for real sends the changes (so the count above would catch one)
    const real = new FreshServer();
    await provisionServer(inventory, server, { executor: real, piPublicKey: KEY, templates, reporter: quiet() });
    expect(real.calls.filter((c) => c.kind === 'change').length).toBeGreaterThan(5);
  });

  it('AWS clients of a dry run send reads and refuse every other request before it is sent', async () => {
    const sent: string[] = [];
    const client = { send: async (c: object) => void sent.push(c.constructor.name) };
    const clients = readOnlyClients({ s3: client, iam: client, sts: client, region: 'eu-west-1' } as unknown as AwsClients);
    await clients.s3.send(new GetBucketPolicyCommand({ Bucket: 'b' }));
    await clients.iam.send(new GetUserCommand({ UserName: 'u' }));
    await expect(clients.s3.send(new PutBucketPolicyCommand({ Bucket: 'b', Policy: '{}' }))).rejects.toBeInstanceOf(ReadOnlyViolation);
    await expect(clients.iam.send(new CreateUserCommand({ UserName: 'u' }))).rejects.toThrow(/dry run: refused to send CreateUserCommand/);
    expect(sent).toEqual(['GetBucketPolicyCommand', 'GetUserCommand']);
  });
});
