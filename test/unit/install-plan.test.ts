// install-runtime's pure plan: inventory → the Pi's files. Plain data in, plain data out.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../provision/inventory/validate.ts';
import type { Inventory } from '../../contract/inventory-schema.ts';
import { cronSchedule, INSTALL_PATHS, knownHostsLines, planInstall, type InstallInput } from '../../provision/runtime/plan.ts';
import { loadInstallTemplates, readSecrets } from '../../provision/runtime/inputs.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';

const loaded = await loadInventory(path.resolve('inventory.json'));
const templates = await loadInstallTemplates();
const KEYS = { owner: '-----BEGIN PGP PUBLIC KEY BLOCK-----\nowner\n-----END PGP PUBLIC KEY BLOCK-----\n', escrow: 'escrow-key' };
const CREDS = JSON.stringify({ accessKeyId: 'AKIAEXAMPLEWRITER01', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' });

function input(over: Partial<InstallInput> = {}, inv: Inventory = loaded.inventory): InstallInput {
  return {
    inventory: inv,
    templates,
    bundle: { content: '#!/usr/bin/env node\nconsole.log(1)\n', version: '0.1.0', buildHash: 'abcdef012345' },
    recipientKeys: KEYS,
    awsCredentials: CREDS,
    ...over,
  };
}

const byPath = (plan: ReturnType<typeof planInstall>, p: string) => {
  const f = plan.files.find((x) => x.path === p);
  if (!f) throw new Error(`no file ${p} in plan: ${plan.files.map((x) => x.path).join(', ')}`);
  return f;
};

const tmp = mkdtempSync(path.join(tmpdir(), 'pv-install-plan-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('install plan', () => {
  it('is deterministic: the same inputs give the same files (what makes the second run "0 changed")', () => {
    const data = () => planInstall(input()).files.map(({ validate: _v, ...f }) => f);
    expect(data()).toEqual(data());
  });

  it('manages every file of the runtime, root-owned, secrets 0600', () => {
    const plan = planInstall(input());
    const modes = Object.fromEntries(plan.files.map((f) => [f.path, `${f.owner}:${f.group} ${f.mode}`]));
    expect(modes).toEqual({
      '/usr/local/lib/pullvault/pullvault.mjs': 'root:root 644',
      '/usr/local/bin/pullvault': 'root:root 755',
      '/etc/pullvault/config.json': 'root:root 600',
      '/etc/pullvault/aws-credentials.json': 'root:root 600',
      '/etc/pullvault/known_hosts': 'root:root 644',
      '/etc/pullvault/recipients/owner.asc': 'root:root 644',
      '/etc/pullvault/recipients/escrow.asc': 'root:root 644',
      '/usr/local/lib/pullvault/cron-run': 'root:root 755',
      '/etc/cron.d/pullvault': 'root:root 644',
      '/etc/logrotate.d/pullvault': 'root:root 644',
    });
    expect(byPath(plan, INSTALL_PATHS.awsCredentials).sensitive).toBe(true);
    expect(byPath(plan, INSTALL_PATHS.bundle).large).toBe(true);
    expect(plan.dirs.find((d) => d.path === '/etc/pullvault')?.mode).toBe('700');
    // every file's folder is managed, so an empty root works
    const dirs = new Set(plan.dirs.map((d) => d.path));
    for (const f of plan.files) expect(dirs.has(path.posix.dirname(f.path))).toBe(true);
  });

  it('config.json: the inventory as the Pi needs it, with the installed paths', () => {
    const plan = planInstall(input());
    const config = JSON.parse(byPath(plan, INSTALL_PATHS.config).content) as RuntimeConfig;
    expect(config.version).toBe(1);
    expect(config.paths).toEqual({
      sshKeyFile: '/etc/pullvault/ssh/id_ed25519',
      knownHostsFile: '/etc/pullvault/known_hosts',
      dataDir: '/srv/pullvault',
      recipientKeysDir: '/etc/pullvault/recipients',
      awsCredentialsFile: '/etc/pullvault/aws-credentials.json',
    });
    expect(config.inventory.recipients.map((r) => r.publicKeyFile)).toEqual(['/etc/pullvault/recipients/owner.asc', '/etc/pullvault/recipients/escrow.asc']);
    expect(config.inventory.servers.map((s) => s.name)).toEqual(['web1', 'db1']);
    expect(config.inventory.schedule).toEqual(loaded.inventory.schedule);
    expect(config.allowUnmountedDataDir).toBeUndefined();
    expect(config.connect).toBeUndefined();
    // the credentials are in their own file, never in the config
    expect(JSON.stringify(config)).not.toContain('wJalrXUtnFEMI');
    expect(byPath(plan, INSTALL_PATHS.awsCredentials).content).toContain('wJalrXUtnFEMI');
  });

  it('config.json drops admin-side paths the Pi has no use for', () => {
    const inv = structuredClone(loaded.inventory);
    inv.pi.ssh!.adminKeyFile = 'state/admin_key';
    inv.servers[0]!.ssh.adminKeyFile = '/home/me/.ssh/id_ed25519';
    const config = JSON.parse(byPath(planInstall(input({}, inv)), INSTALL_PATHS.config).content) as RuntimeConfig;
    expect(config.inventory.pi.ssh?.adminKeyFile).toBeUndefined();
    expect(config.inventory.servers[0]!.ssh.adminKeyFile).toBeUndefined();
    expect(inv.pi.ssh!.adminKeyFile).toBe('state/admin_key'); // the input is not modified
  });

  it('a secret file (the webhook token) goes in its own 0600 file; the config points there and never holds it', async () => {
    const inv = structuredClone(loaded.inventory);
    inv.notifications!.webhook = { url: 'https://ntfy.sh/pv-alerts-x7', tokenFile: 'secrets/ntfy-token' };
    const token = `tk_${Date.now().toString(36)}made-at-run-time`;
    mkdirSync(path.join(tmp, 'secrets'), { recursive: true });
    writeFileSync(path.join(tmp, 'secrets/ntfy-token'), `${token}\n`);
    const read = await readSecrets(inv, tmp);
    expect(read.files).toEqual({ 'webhook-token': `${token}\n` });
    // every secret value is masked in what install-runtime prints: the token, and the URLs that are tokens
    expect(read.values.sort()).toEqual([inv.notifications!.healthcheckUrl!, 'https://ntfy.sh/pv-alerts-x7', token].sort());
    const plan = planInstall(input({ secrets: read.files }, inv));
    const f = byPath(plan, '/etc/pullvault/secrets/webhook-token');
    expect(f).toMatchObject({ mode: '600', owner: 'root', sensitive: true, content: `${token}\n` });
    expect(plan.dirs.find((d) => d.path === '/etc/pullvault/secrets')?.mode).toBe('700');
    const config = JSON.parse(byPath(plan, INSTALL_PATHS.config).content) as RuntimeConfig;
    expect(config.inventory.notifications?.webhook?.tokenFile).toBe('/etc/pullvault/secrets/webhook-token');
    expect(JSON.stringify(config)).not.toContain(token);
    expect(inv.notifications!.webhook.tokenFile).toBe('secrets/ntfy-token'); // the input is not modified
    // without its content the plan refuses, naming the field's file; an unreadable file is named too
    expect(() => planInstall(input({}, inv))).toThrow(/webhook-token: no content for the secret file secrets\/ntfy-token/);
    inv.notifications!.webhook.tokenFile = 'secrets/missing';
    await expect(readSecrets(inv, tmp)).rejects.toThrow(`tokenFile: cannot read ${path.join(tmp, 'secrets/missing')} (ENOENT)`);
    // no webhook: no secrets folder at all
    expect(planInstall(input()).dirs.some((d) => d.path === '/etc/pullvault/secrets')).toBe(false);
  });

  it('lab options reach the config only when asked', () => {
    const connect = { web1: { host: '10.213.0.2' }, db1: { host: '10.213.0.3', port: 22 } };
    const config = JSON.parse(byPath(planInstall(input({ connect, allowUnmountedDataDir: true })), INSTALL_PATHS.config).content) as RuntimeConfig;
    expect(config.connect).toEqual(connect);
    expect(config.allowUnmountedDataDir).toBe(true);
  });

  it('known_hosts pins each server under its host[:port], its name (HostKeyAlias) and a connect override', () => {
    expect(knownHostsLines(loaded.inventory)).toEqual([
      `web1.example.net,web1 ${loaded.inventory.servers[0]!.ssh.hostKey}`,
      `[db1.example.net]:2222,db1 ${loaded.inventory.servers[1]!.ssh.hostKey}`,
    ]);
    expect(knownHostsLines(loaded.inventory, { db1: { host: '10.0.0.9' } })[1]).toBe(`[db1.example.net]:2222,db1,[10.0.0.9]:2222 ${loaded.inventory.servers[1]!.ssh.hostKey}`);
    const kh = byPath(planInstall(input()), INSTALL_PATHS.knownHosts).content;
    // OpenSSH reads it: ssh-keygen -F finds each server by name and by host:port
    const file = path.join(tmp, 'known_hosts');
    writeFileSync(file, kh);
    for (const name of ['web1', 'web1.example.net', '[db1.example.net]:2222', 'db1']) {
      const out = execFileSync('ssh-keygen', ['-F', name, '-f', file], { encoding: 'utf8' });
      expect(out).toContain('ssh-ed25519');
    }
  });

  it('the cron line runs the cron-run wrapper as root on the inventory schedule, with MAILTO', () => {
    const cron = byPath(planInstall(input()), INSTALL_PATHS.cron).content;
    expect(cronSchedule(cron)).toBe('17 */4 * * *');
    expect(cron).toMatch(/^MAILTO=owner@example\.org$/m);
    expect(cron).toMatch(/^17 \*\/4 \* \* \* root \/usr\/local\/lib\/pullvault\/cron-run$/m);
    expect(cron).toMatch(/^PULLVAULT_CRON=1$/m);
    expect(cron.endsWith('\n')).toBe(true); // cron ignores a last line without newline

    const inv = structuredClone(loaded.inventory);
    inv.schedule.pull = '5 1,13 * * 1-5';
    delete inv.notifications;
    const other = byPath(planInstall(input({}, inv)), INSTALL_PATHS.cron).content;
    expect(cronSchedule(other)).toBe('5 1,13 * * 1-5');
    expect(other).not.toMatch(/^MAILTO=/m);
  });

  it('cron-run: a failing run prints the log tail (for cron mail), a passing one prints nothing, a locked-out one (75) is skipped quietly', () => {
    const plan = planInstall(input());
    const script = byPath(plan, INSTALL_PATHS.cronRun).content;
    // no wrapper lock around the whole run: it would hold back the next pull while an upload goes on
    expect(script).not.toMatch(/flock/);
    // run the rendered script for real with a stand-in pullvault and paths under tmp
    const fake = path.join(tmp, 'pullvault');
    const log = path.join(tmp, 'log', 'pullvault.log');
    const rewritten = script.split(INSTALL_PATHS.wrapper).join(fake).split(INSTALL_PATHS.logFile).join(log).split(INSTALL_PATHS.logDir).join(path.dirname(log));
    const runScript = path.join(tmp, 'cron-run');
    writeFileSync(runScript, rewritten, { mode: 0o755 });
    const run = (rc: number) => {
      writeFileSync(fake, `#!/bin/sh\necho "cycle output for $1"\nexit ${rc}\n`, { mode: 0o755 });
      try {
        return { code: 0, out: execFileSync(runScript, { encoding: 'utf8' }) };
      } catch (e) {
        const err = e as { status: number; stdout: string };
        return { code: err.status, out: err.stdout };
      }
    };
    expect(run(0)).toEqual({ code: 0, out: '' });
    const failed = run(3);
    expect(failed.code).toBe(3);
    expect(failed.out).toContain('failed');
    expect(failed.out).toContain('exit code 3');
    expect(failed.out).toContain('cycle output for run');
    // while another run holds the runtime's pull lock, this one is skipped quietly (exit 0) and says so in the log
    expect(run(75)).toEqual({ code: 0, out: '' });
    expect(execFileSync('tail', ['-n', '1', log], { encoding: 'utf8' })).toContain('another pullvault run is still pulling; this one skipped');
  });

  it('the wrapper runs the bundle with node and passes the arguments through', () => {
    const w = byPath(planInstall(input()), INSTALL_PATHS.wrapper).content;
    expect(w.startsWith('#!/bin/sh\n')).toBe(true);
    expect(w).toContain('exec node --max-semi-space-size=1 --max-old-space-size=128 /usr/local/lib/pullvault/pullvault.mjs "$@"');
    execFileSync('sh', ['-n', '-c', w]);
  });

  it('logrotate covers the log folder', () => {
    const lr = byPath(planInstall(input()), INSTALL_PATHS.logrotate).content;
    expect(lr).toContain('/var/log/pullvault/*.log {');
    expect(lr).toMatch(/\bcompress\b/);
  });

  it('without writer credentials: no credentials file, and a note saying how to get them', () => {
    const plan = planInstall(input({ awsCredentials: undefined }));
    expect(plan.files.some((f) => f.path === INSTALL_PATHS.awsCredentials)).toBe(false);
    expect(plan.notes.join('\n')).toMatch(/make provision-aws/);
  });

  it('a dir target needs no S3 credentials at all', () => {
    const inv = structuredClone(loaded.inventory);
    inv.offsite = { type: 'dir', path: '/mnt/offsite' };
    const plan = planInstall(input({ awsCredentials: undefined }, inv));
    expect(plan.notes).toEqual([]);
    expect(plan.config.paths.awsCredentialsFile).toBeUndefined();
  });

  it('a missing recipient key or template is a clear error', () => {
    expect(() => planInstall(input({ recipientKeys: { owner: 'x' } }))).toThrow(/escrow/);
    expect(() => planInstall(input({ templates: { ...templates, cron: undefined as unknown as string } }))).toThrow(/cron\.hbs is missing/);
  });
});
