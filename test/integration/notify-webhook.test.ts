// The webhook notifier for real: `pullvault run` on a lab "pi" posts to a small HTTP listener
// running on another lab host ("hooks"), over the lab network. What arrives there is checked
// (JSON body, ntfy's headers, the bearer token from its 0600 file); a hanging listener and an
// unreachable one cost a warning and a few seconds, never the run.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ServerSpec } from '../../contract/inventory-schema.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import type { WebhookSpec } from '../../runtime/notify-webhook.ts';
import type { Recorded } from '../fixtures/http-recorder.ts';
import { describeLab, startHost, startLabNetwork, type LabHost, type LabNetwork } from '../lab/index.ts';
import { waitFor } from '../lab/wait.ts';
import { CONFIG, DATA_DIR, labConfig, provisionLabServer, REPO, serverSpec } from './pull-lab.ts';

const TOKEN_FILE = '/etc/pullvault/secrets/webhook-token';
const LOG = '/tmp/requests.jsonl';
const PORT = 8080;

describeLab('webhook notifier (lab: pi → hooks listener)', () => {
  let net: LabNetwork;
  let pi: LabHost;
  let web: LabHost;
  let hooks: LabHost;
  let listener: ChildProcess;
  let spec: ServerSpec;
  // made at run time: no token in the tree
  const token = `tk_${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;

  const run = async (webhook: WebhookSpec, over: Partial<RuntimeConfig> = {}) => {
    const config = labConfig([spec], over);
    config.inventory.notifications = { webhook };
    await pi.writeFile(CONFIG, JSON.stringify(config, null, 2), { mode: 0o600 });
    await hooks.exec(['sh', '-c', `: > ${LOG}`]);
    const t0 = Date.now();
    const r = await pi.exec([`${REPO}/node_modules/.bin/tsx`, `${REPO}/runtime/main.ts`, 'run', '--config', CONFIG, '--no-prune', '--no-offsite'], { okCodes: [0, 1, 2, 3, 4] });
    return { ...r, seconds: (Date.now() - t0) / 1000 };
  };
  const received = async (): Promise<Recorded[]> =>
    (await hooks.readFile(LOG)).toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Recorded);
  const url = (path: string) => `http://${hooks.address}:${PORT}${path}`;

  beforeAll(async () => {
    net = await startLabNetwork({ subnet: '10.219.0.0/24' });
    [pi, web, hooks] = await Promise.all([startHost({ name: 'pi', network: net }), startHost({ name: 'web', network: net }), startHost({ name: 'hooks', network: net, services: [] })]);
    await pi.exec(['sh', '-c', `mkdir -p /etc/pullvault ${DATA_DIR} && ssh-keygen -q -t ed25519 -N '' -C pi -f /etc/pullvault/id_ed25519 && mount -t tmpfs -o size=64m,mode=0755 backupdisk ${DATA_DIR}`]);
    const piPub = (await pi.readFile('/etc/pullvault/id_ed25519.pub')).toString().trim().split(' ').slice(0, 2).join(' ');
    spec = serverSpec(web, [{ path: '/srv/site' }]);
    await web.exec(['sh', '-c', 'mkdir -p /srv/site && echo hello > /srv/site/index.html']);
    await provisionLabServer(web, spec, piPub, pi.address!);
    await pi.writeFile('/etc/pullvault/known_hosts', `${web.address} ${web.hostKey}\n`);
    // as install-runtime leaves it (test/unit/install-plan.test.ts): the token alone, 0600
    await pi.writeFile(TOKEN_FILE, `${token}\n`, { mode: 0o600 });
    listener = hooks.spawn([`${REPO}/node_modules/.bin/tsx`, `${REPO}/test/fixtures/http-recorder.ts`, String(PORT), LOG], { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitFor('listener up', async () => (await hooks.exec(['sh', '-c', `test -e ${LOG} || curl -s -o /dev/null -X POST http://127.0.0.1:${PORT}/warmup`], { okCodes: [0, 7] })).code === 0, 30_000, 100);
  });

  afterAll(async () => {
    listener?.kill('SIGKILL');
    await Promise.all([pi, web, hooks].filter(Boolean).map((h) => h.stop()));
    await net?.stop();
  });

  it('json: the start and the ok run arrive with the bearer token from its file', async () => {
    const r = await run({ url: url('/ok/hook'), format: 'json', tokenFile: TOKEN_FILE });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const got = await received();
    expect(got.map((g) => JSON.parse(g.body).event)).toEqual(['start', 'ok']);
    for (const g of got) {
      expect(g).toMatchObject({ method: 'POST', url: '/ok/hook' });
      expect(g.headers.authorization).toBe(`Bearer ${token}`);
      expect(g.headers['content-type']).toBe('application/json');
    }
    const ok = JSON.parse(got[1].body);
    expect(ok).toMatchObject({ source: 'pullvault', version: 1, event: 'ok', pi: 'pi', exitCode: 0, outcome: 'ok', title: 'pullvault on pi: run ok' });
    expect(ok.summary).toMatch(/^web: ok \d{8}T\d{6}Z$/);
  });

  it('ntfy: a failed run arrives with Title, Priority and Tags; the ok start is not pushed', async () => {
    // web unreachable: nothing listens on that port
    const r = await run({ url: url('/ok/pullvault-alerts'), format: 'ntfy', tokenFile: TOKEN_FILE }, { connect: { web: { host: web.address!, port: 2 } } });
    expect(r.code).toBe(1);
    const got = await received();
    expect(got).toHaveLength(1);
    expect(got[0].headers).toMatchObject({ title: 'pullvault on pi: run failed (exit 1)', priority: 'high', tags: 'rotating_light,pullvault', authorization: `Bearer ${token}` });
    expect(got[0].body).toMatch(/^web: FAILED: /);
    expect(r.stderr).not.toContain(token);
  });

  it('refused: a backup disk that is not mounted is pushed too', async () => {
    const r = await run({ url: url('/ok/pullvault-alerts'), format: 'ntfy' }, { paths: { ...labConfig([spec]).paths, dataDir: '/srv/not-mounted' } });
    expect(r.code).toBe(3);
    const got = await received();
    expect(got.map((g) => g.headers.title)).toEqual([expect.stringMatching(/^pullvault on pi: run refused: /)]);
    expect(got[0].headers.authorization).toBeUndefined();
  });

  it('a hanging listener costs its time budget and a warning; the run still succeeds', async () => {
    const r = await run({ url: url('/hang/hook'), format: 'json', tokenFile: TOKEN_FILE, timeoutSeconds: 1 });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`warning: notify webhook ${hooks.address}:${PORT} \\(start\\): `));
    expect(r.stderr).toMatch(/warning: notify webhook .* \(ok\): /);
    expect(r.stderr).not.toContain(token);
    expect(r.stderr).not.toContain('/hang/hook');
    // two attempts each (one retry), both answered by silence
    expect((await received()).length).toBe(4);
    // two events × (2 attempts of 1 s + the pause): well under a minute, whatever the load
    expect(r.seconds).toBeLessThan(60);
  });

  it('an unreachable listener: a warning, the run succeeds', async () => {
    const r = await run({ url: `http://${hooks.address}:8081/hook`, format: 'json', timeoutSeconds: 2 });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: notify webhook .*:8081 \(ok\): POST to .*:8081: .*ECONNREFUSED/);
  });
});
