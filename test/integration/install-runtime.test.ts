// install-runtime against a lab host standing in for the Pi: over SSH with the pinned host key,
// twice (the second run changes nothing), then the installed runtime runs inside the host with
// the Node on this machine, and the cron job it installed is run the way cron would run it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildRuntime, type BuiltRuntime } from '../../provision/build-runtime.ts';
import { Redactor, TextReporter } from '../../provision/engine/index.ts';
import { loadInventory, type LoadedInventory } from '../../provision/inventory/validate.ts';
import { cronSchedule, INSTALL_PATHS, installRuntimeOverSsh } from '../../provision/runtime-install.ts';
import { describeLab, startHost, type LabHost } from '../lab/index.ts';

const SECRET = 'lab-writer-secret-0123456789abcdefghijklmnop';

describeLab('install-runtime on a lab "pi"', () => {
  let pi: LabHost;
  let tmp: string;
  let loaded: LoadedInventory;
  let bundle: BuiltRuntime;
  let state: string;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'pv-install-it-'));
    state = path.join(tmp, 'state');
    mkdirSync(path.join(state, 'aws'), { recursive: true });
    writeFileSync(path.join(state, 'aws', 'writer-credentials.json'), JSON.stringify({ accessKeyId: 'LABWRITERKEYID000001', secretAccessKey: SECRET }));
    [pi, bundle] = await Promise.all([startHost({ name: 'pi' }), buildRuntime({ outFile: path.join(tmp, 'pullvault.mjs') })]);
    const base = await loadInventory(path.resolve('inventory.json'));
    const inventory = structuredClone(base.inventory);
    // the lab host is reached through a stream (sock), so host is only a name here; the key is pinned
    inventory.pi.ssh = { host: 'pi.lab', port: 22, hostKey: pi.hostKey, admin: 'root', adminKeyFile: pi.adminKeyFile };
    inventory.schedule.pull = '41 3,15 * * *';
    loaded = { ...base, inventory };
  });
  afterAll(async () => {
    await pi?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  async function install(dryRun = false) {
    const out: string[] = [];
    const reporter = new TextReporter(new Redactor(), (t) => out.push(t));
    const r = await installRuntimeOverSsh(loaded, { bundle, stateDir: state, dryRun, reporter, sock: await pi.sock() });
    return { ...r, text: out.join('') };
  }

  it('dry run against a fresh Pi: shows the plan, changes nothing', async () => {
    const r = await install(true);
    expect(r.summary.failed).toBe(0);
    expect(r.summary.changed).toBeGreaterThanOrEqual(10);
    expect(r.text).toMatch(/would change +crontab \/etc\/cron\.d\/pullvault/);
    expect((await pi.exec(['test', '-e', INSTALL_PATHS.config], { okCodes: [0, 1] })).code).toBe(1);
  });

  it('installs, then the second run reports 0 changed', async () => {
    const first = await install();
    expect(first.summary.failed).toBe(0);
    expect(first.summary.changed).toBeGreaterThanOrEqual(10);
    expect(first.installedVersion).toBe(`pullvault ${bundle.version} (build ${bundle.buildHash}, node ${process.versions.node})`);
    // the S3 secret went to the Pi but never into the output
    expect(first.text).not.toContain(SECRET);
    expect(JSON.parse((await pi.readFile(INSTALL_PATHS.awsCredentials)).toString()).secretAccessKey).toBe(SECRET);
    // the Pi has no key of its own yet: said, not silently ignored
    expect(first.warnings.join('\n')).toMatch(/no SSH key at \/etc\/pullvault\/ssh\/id_ed25519/);

    const second = await install();
    expect([second.summary.changed, second.summary.failed]).toEqual([0, 0]);
    expect(second.text).toMatch(/\d+ ok, 0 changed, 0 failed/);
  });

  it('files on the Pi: owners and modes, config secrets 0600 under a 0700 folder', async () => {
    const st = async (p: string) => (await pi.exec(['stat', '-c', '%U:%G %a', p])).stdout.trim();
    expect(await st('/etc/pullvault')).toBe('root:root 700');
    expect(await st(INSTALL_PATHS.config)).toBe('root:root 600');
    expect(await st(INSTALL_PATHS.awsCredentials)).toBe('root:root 600');
    expect(await st(INSTALL_PATHS.wrapper)).toBe('root:root 755');
    expect(await st(INSTALL_PATHS.bundle)).toBe('root:root 644');
    expect((await pi.exec(['sha256sum', INSTALL_PATHS.bundle])).stdout.split(' ')[0]).toBe(bundle.sha256);
    const config = JSON.parse((await pi.readFile(INSTALL_PATHS.config)).toString());
    expect(config.paths.knownHostsFile).toBe(INSTALL_PATHS.knownHosts);
    expect(config.inventory.servers.map((s: { name: string }) => s.name)).toEqual(['web1', 'db1']);
    // known_hosts answers OpenSSH's own lookup
    expect((await pi.exec(['ssh-keygen', '-F', '[db1.example.net]:2222', '-f', INSTALL_PATHS.knownHosts])).stdout).toContain(loaded.inventory.servers[1]!.ssh.hostKey);
  });

  it('the cron line carries the inventory schedule and MAILTO', async () => {
    const cron = (await pi.readFile(INSTALL_PATHS.cron)).toString();
    expect(cronSchedule(cron)).toBe('41 3,15 * * *');
    expect(cron).toMatch(/^MAILTO=owner@example\.org$/m);
  });

  it('the installed bundle runs inside the host: --version and status', async () => {
    const v = await pi.exec(['pullvault', '--version']);
    expect(v.stdout.trim()).toBe(`pullvault ${bundle.version} (build ${bundle.buildHash}, node ${process.versions.node})`);
    const s = await pi.exec(['pullvault', 'status'], { okCodes: [0, 1, 2, 3] });
    // it reads the installed config; no run has happened yet
    expect(s.stderr).not.toMatch(/cannot read config|internal error/);
    expect(s.code).toBe(0);
    expect(s.stdout + s.stderr).toMatch(/web1/);
  });

  it('the cron job, run as cron runs it: the runtime refuses an unmounted backup disk, and the failure is printed for cron to mail', async () => {
    const r = await pi.exec(['sh', '-c', `env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PULLVAULT_CRON=1 MAILTO=owner@example.org ${INSTALL_PATHS.cronRun}`], { okCodes: [0, 1, 2, 3, 4] });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(3); // exit 3: refused by pre-flight, nothing written
    expect(r.stdout).toMatch(/pullvault run failed on pi with exit code 3/);
    const log = (await pi.readFile(INSTALL_PATHS.logFile)).toString();
    expect(log).toMatch(/cron: \/usr\/local\/bin\/pullvault run/);
    expect(log).toMatch(/\/srv\/pullvault/);
  });

  it('a file changed on the Pi by hand is put back, and --dry-run shows the diff first', async () => {
    await pi.exec(['sh', '-c', `sed -i 's/^MAILTO=.*/MAILTO=someone@else.example/' ${INSTALL_PATHS.cron}`]);
    const dry = await install(true);
    expect(dry.summary.changed).toBe(1);
    expect(dry.text).toContain('-MAILTO=someone@else.example');
    expect(dry.text).toContain('+MAILTO=owner@example.org');
    expect((await pi.readFile(INSTALL_PATHS.cron)).toString()).toContain('someone@else.example');
    const fix = await install();
    expect(fix.summary.changed).toBe(1);
    expect((await install()).summary.changed).toBe(0);
  });

  it('refuses a Pi whose host key is not the pinned one', async () => {
    const other = structuredClone(loaded.inventory);
    other.pi.ssh!.hostKey = loaded.inventory.servers[0]!.ssh.hostKey;
    await expect(installRuntimeOverSsh({ ...loaded, inventory: other }, { bundle, stateDir: state, dryRun: true, reporter: new TextReporter(new Redactor(), () => {}), sock: await pi.sock() })).rejects.toThrow(/host key mismatch/);
  });
});

