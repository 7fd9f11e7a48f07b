// The runtime's one CLI frame (runtime/cli.ts + runtime/actions/): every action listed in --help
// and answering its own --help, and the exit codes decided in one place: usage and config errors
// 2, a failed restore/verify 1, the action's own code otherwise.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../provision/inventory/validate.ts';
import { planInstall } from '../../provision/runtime/plan.ts';
import { loadInstallTemplates } from '../../provision/runtime/inputs.ts';
import { ACTIONS } from '../../runtime/actions/index.ts';
import { main, VERSION } from '../../runtime/cli.ts';
import { quietly } from '../integration/offsite-fixture.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');
const dir = mkdtempSync(join(tmpdir(), 'pv-cli-'));
const CONFIG = join(dir, 'config.json');
// a config as install-runtime writes it for the example inventory (servers web1, db1), its disk here
const loaded = await loadInventory(join(REPO, 'inventory.json'));
const recipientKeys = Object.fromEntries(loaded.inventory.recipients.map((r) => [r.name, 'key']));
const planned = planInstall({ inventory: loaded.inventory, templates: await loadInstallTemplates(), bundle: { content: '', version: '0', buildHash: '0' }, recipientKeys }).config;
writeFileSync(CONFIG, JSON.stringify({ ...planned, paths: { ...planned.paths, dataDir: join(dir, 'data') } }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pv = (...argv: string[]) => quietly(() => main(argv));

describe('pullvault CLI frame', () => {
  it('--help lists every action and the exit codes; no command prints it to stderr with exit 2', async () => {
    const h = await pv('--help');
    expect(h.value).toBe(0);
    for (const name of Object.keys(ACTIONS)) expect(h.out).toMatch(new RegExp(`^  ${name} `, 'm'));
    expect(h.out).toMatch(/^exit codes:\n  0  ok\n/m);
    expect(h.out).toMatch(/^  75 another run is pulling/m);
    const none = await pv();
    expect(none.value).toBe(2);
    expect(none.err).toBe(h.out);
  });

  it('--version, before or after a command', async () => {
    expect(await pv('--version')).toMatchObject({ value: 0, out: `pullvault ${VERSION}\n` });
    expect(await pv('status', '--version')).toMatchObject({ value: 0, out: `pullvault ${VERSION}\n` });
  });

  it('each action answers its own --help without reading a config', async () => {
    for (const name of Object.keys(ACTIONS)) {
      const r = await pv(name, '--help', '--config', '/nonexistent/config.json');
      expect(r.value, `${name} --help`).toBe(0);
      expect(r.out).toMatch(new RegExp(`^usage: pullvault ${name} `));
    }
    expect((await pv('restore', '--help')).out).toMatch(/SOURCE: --config FILE/);
  });

  it('usage and config errors exit 2 with one clear line', async () => {
    const unknown = await pv('frobnicate');
    expect(unknown).toMatchObject({ value: 2 });
    expect(unknown.err).toMatch(/^pullvault: unknown command "frobnicate"/);
    const badOption = await pv('status', '--config', CONFIG, '--bogus');
    expect(badOption.value).toBe(2);
    expect(badOption.err).toMatch(/^pullvault status: Unknown option '--bogus'.*\n\(see pullvault status --help\)/s);
    // an option of another action is refused too
    expect((await pv('status', '--config', CONFIG, '--no-prune')).value).toBe(2);
    expect((await pv('list', '--config', CONFIG, 'extra')).value).toBe(2);
    const noConfig = await pv('status', '--config', join(dir, 'missing.json'));
    expect(noConfig).toMatchObject({ value: 2 });
    expect(noConfig.err).toMatch(/missing\.json: cannot read config: ENOENT/);
    const server = await pv('list', '--config', CONFIG, '--server', 'nope');
    expect(server).toMatchObject({ value: 2 });
    expect(server.err).toMatch(/--server nope: not in the config \(web1, db1\)/);
    const restore = await pv('restore', '--target', `dir:${dir}`, '--to', join(dir, 'r'));
    expect(restore).toMatchObject({ value: 2 });
    expect(restore.err).toMatch(/^pullvault restore: --server is required/);
  });

  it('--config before the command is the command\'s config', async () => {
    const a = await pv('--config', CONFIG, 'list');
    const b = await pv('list', '--config', CONFIG);
    expect(a).toMatchObject({ value: 0, out: 'web1: 0 snapshot(s)\ndb1: 0 snapshot(s)\n' });
    expect(b).toEqual(a);
    expect((await pv('list', '--config', CONFIG, '--server', 'db1', '--json')).out).toBe('{\n  "db1": []\n}\n');
  });

  it('a restore that cannot work is a failure (exit 1, one error line), not a crash', async () => {
    const r = await pv('restore', '--server', 'web1', '--to', join(dir, 'r'), '--key', join(dir, 'no-such-key.asc'), '--target', `dir:${dir}`);
    expect(r.value).toBe(1);
    expect(r.err).toMatch(/^error: .*no-such-key\.asc/m);
  });

  it('the owner-side commands read --config FILE one way: every bad file is exit 2 naming the file, nothing run', async () => {
    const notJson = join(dir, 'not-json.json');
    writeFileSync(notJson, '{ "servers": [');
    const neither = join(dir, 'neither.json');
    writeFileSync(neither, JSON.stringify({ hello: 'world' }));
    const badPi = join(dir, 'bad-pi.json');
    writeFileSync(badPi, JSON.stringify({ ...planned, paths: { ...planned.paths, dataDir: 'relative/data' } }));
    const to = join(dir, 'restored');
    const argv: Record<string, string[]> = {
      restore: ['--server', 'web1', '--to', to],
      verify: ['--server', 'web1'],
      watch: [],
      report: ['--out', join(dir, 'report.html')],
    };
    for (const [cmd, rest] of Object.entries(argv)) {
      const a = await pv(cmd, ...rest, '--config', notJson, '--key', join(dir, 'no-such-key.asc'));
      expect(a, cmd).toMatchObject({ value: 2 });
      expect(a.err, cmd).toMatch(new RegExp(`^pullvault ${cmd}: .*not-json\\.json: not valid JSON`));
      const b = await pv(cmd, ...rest, '--config', neither, '--key', join(dir, 'no-such-key.asc'));
      expect(b.err, cmd).toMatch(/neither\.json: neither an inventory .* nor the Pi's config\.json/);
      const c = await pv(cmd, ...rest, '--config', badPi, '--key', join(dir, 'no-such-key.asc'));
      expect(c, cmd).toMatchObject({ value: 2 });
      expect(c.err, cmd).toContain(`${badPi}: paths.dataDir: must be an absolute path`);
      const missing = await pv(cmd, ...rest, '--config', join(dir, 'missing.json'), '--key', join(dir, 'no-such-key.asc'));
      expect(missing.err, cmd).toMatch(/missing\.json: cannot read: ENOENT/);
    }
    expect(existsSync(to) || existsSync(join(dir, 'report.html'))).toBe(false);
  });
});
