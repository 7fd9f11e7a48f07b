// The real runtime bundle (runtime/main.ts): what esbuild put in it. The Pi needs S3 only; IAM and
// STS clients belong to provision-aws and must not ride along (size, and no code on the Pi that
// could manage users).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runtimeConfigProblems } from '../../contract/runtime-config.ts';
import { buildRuntime } from '../../provision/build-runtime.ts';
import { loadInventory } from '../../provision/inventory/validate.ts';
import { planInstall } from '../../provision/runtime/plan.ts';
import { loadInstallTemplates } from '../../provision/runtime/inputs.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(path.join(tmpdir(), 'pv-bundle-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('runtime bundle', () => {
  it('carries the S3 client and no IAM or STS client', async () => {
    const b = await buildRuntime({ outFile: null });
    const aws = b.inputs.filter((f) => f.includes('node_modules/@aws-sdk/client-'));
    expect(aws.some((f) => f.includes('node_modules/@aws-sdk/client-s3/'))).toBe(true);
    expect(aws.filter((f) => /node_modules\/@aws-sdk\/client-(iam|sts)\//.test(f))).toEqual([]);
    expect(b.content).not.toContain('IAMClient');
  }, 60_000);

  it('takes nothing from the admin side: only runtime/, contract/ and lib/ (and package.json for the version)', async () => {
    const b = await buildRuntime({ outFile: null });
    const own = b.inputs.filter((f) => !f.includes('node_modules/'));
    expect(own.some((f) => f.startsWith('contract/'))).toBe(true);
    expect(own.filter((f) => !/^(runtime|contract|lib)\//.test(f) && !['package.json', 'pullvault-entry.mjs'].includes(f))).toEqual([]);
  }, 60_000);

  it('checks config.json with the schema compiled at build time: no ajv compiler, no TypeBox, the same lines as at dev time', async () => {
    const out = path.join(tmp, 'pullvault.mjs');
    const b = await buildRuntime({ outFile: out });
    expect(b.inputs.filter((f) => /node_modules\/(ajv\/dist\/(core|compile)|@sinclair\/typebox)\b/.test(f))).toEqual([]);
    const loaded = await loadInventory(path.join(REPO, 'inventory.json'));
    const keys = Object.fromEntries(loaded.inventory.recipients.map((r) => [r.name, 'key']));
    const bundle = { content: '', version: '0', buildHash: '0' };
    const c = structuredClone(planInstall({ inventory: loaded.inventory, templates: await loadInstallTemplates(), bundle, recipientKeys: keys }).config) as any;
    c.paths.dataDir = 'srv/pullvault';
    c.paths.dataDri = '/srv';
    c.inventory.retention.daily = -1;
    c.inventory.notifications = { mailTo: 'not a mail address' };
    c.inventory.servers[0].ssh.host = 'bad host!';
    c.inventory.offsite.type = 'gcs';
    const file = path.join(tmp, 'config.json');
    writeFileSync(file, JSON.stringify(c));
    const expected = runtimeConfigProblems(c);
    expect(expected.length).toBeGreaterThanOrEqual(6);
    const r = spawnSync(process.execPath, [out, 'status', '--config', file], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(expected.map((p, i) => `${i === 0 ? 'pullvault status: ' : ''}${file}: ${p}`));
  }, 60_000);
});
