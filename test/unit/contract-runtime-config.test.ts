// config.json: one schema and validator (contract/runtime-config.ts) used by install-runtime
// before the file is written and by the runtime when it loads it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseRuntimeConfig, readRuntimeConfig, runtimeConfigProblems, type RuntimeConfig } from '../../contract/runtime-config.ts';
import { loadInventory } from '../../provision/inventory/validate.ts';
import { planInstall, type InstallInput } from '../../provision/runtime/plan.ts';
import { loadInstallTemplates } from '../../provision/runtime/inputs.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const loaded = await loadInventory(path.join(REPO, 'inventory.json'));
const templates = await loadInstallTemplates();
const tmp = mkdtempSync(path.join(tmpdir(), 'pv-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const input = (over: Partial<InstallInput> = {}): InstallInput => ({
  inventory: loaded.inventory,
  templates,
  bundle: { content: '#!/usr/bin/env node\n', version: '0.1.0', buildHash: 'abcdef012345' },
  recipientKeys: Object.fromEntries(loaded.inventory.recipients.map((r) => [r.name, 'key'])),
  ...over,
});
/** The config install-runtime writes for the repo's example inventory. */
const good = (): RuntimeConfig => structuredClone(planInstall(input()).config);

describe('runtime config validator', () => {
  it('accepts what install-runtime writes', () => {
    expect(runtimeConfigProblems(good())).toEqual([]);
    expect(runtimeConfigProblems(JSON.parse(JSON.stringify(good())))).toEqual([]);
  });

  const cases: [string, (c: any) => void, string[]][] = [
    ['another version', (c) => (c.version = 2), ['version: must be 1']],
    ['no data dir', (c) => delete c.paths.dataDir, ['paths.dataDir: is required']],
    ['a relative key path', (c) => (c.paths.sshKeyFile = 'id_ed25519'), [`paths.sshKeyFile: must be an absolute path (the Pi's private SSH key for pulling, on the encrypted root)`]],
    ['a misspelt key', (c) => ((c.paths.dataDri = '/srv'), delete c.paths.dataDir), ['paths.dataDir: is required', 'paths.dataDri: unknown key (check the spelling)']],
    ['a bad port inside the inventory', (c) => (c.inventory.servers[0].ssh.port = 70000), ['inventory.servers[0].ssh.port: must be <= 65535']],
    ['no servers', (c) => (c.inventory.servers = []), ['inventory.servers: must have at least 1 item']],
    ['a flag that is not a boolean', (c) => (c.allowUnmountedDataDir = 'yes'), ['allowUnmountedDataDir: must be a boolean']],
    ['a connect override for a server that does not exist', (c) => (c.connect = { nosuch: { host: '10.0.0.9' } }), ['connect.nosuch: no server of that name in inventory.servers']],
    [
      'an s3 target without the writer credentials file',
      (c) => delete c.paths.awsCredentialsFile,
      ['paths.awsCredentialsFile: is required for an s3 offsite target (the writer credentials on the Pi)'],
    ],
  ];
  it.each(cases)('refuses %s, naming the field', (_name, spoil, lines) => {
    const c = good();
    expect(c.inventory.offsite.type).toBe('s3');
    spoil(c);
    expect(runtimeConfigProblems(c)).toEqual(lines);
    expect(() => parseRuntimeConfig(JSON.stringify(c), '/etc/pullvault/config.json')).toThrow(new ConfigError('/etc/pullvault/config.json', lines));
  });

  it('names the file for text that is not JSON, and for a file it cannot read', async () => {
    expect(() => parseRuntimeConfig('{"version": 1,', 'c.json')).toThrow(/^c\.json: not valid JSON: /);
    await expect(readRuntimeConfig(path.join(tmp, 'missing.json'))).rejects.toThrow(`${path.join(tmp, 'missing.json')}: cannot read config: ENOENT`);
  });

  it('install-runtime refuses to plan a config the runtime would refuse: nothing is written', () => {
    expect(() => planInstall(input({ paths: { recipientsDir: 'etc/pullvault/recipients' } }))).toThrow(
      /^the config for \/etc\/pullvault\/config\.json: paths\.recipientKeysDir: must be an absolute path/,
    );
    expect(() => planInstall(input({ connect: { nosuch: { host: '10.0.0.9' } } }))).toThrow(
      'the config for /etc/pullvault/config.json: connect.nosuch: no server of that name in inventory.servers',
    );
  });

  it('the runtime refuses a bad config at load: exit 2, every problem on stderr, nothing run', () => {
    const c = good() as any;
    c.paths.dataDir = 'srv/pullvault';
    c.inventory.retention.daily = -1;
    const file = path.join(tmp, 'config.json');
    writeFileSync(file, JSON.stringify(c));
    const r = spawnSync(path.join(REPO, 'node_modules/.bin/tsx'), [path.join(REPO, 'runtime/main.ts'), 'status', '--config', file], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${file}: inventory.retention.daily: must be >= 0`);
    expect(r.stderr).toContain(`${file}: paths.dataDir: must be an absolute path`);
    expect(r.stdout).toBe('');
  }, 60_000);
});
