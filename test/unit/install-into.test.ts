// installRuntimeInto: the same plan and steps as over SSH, written under an image's root folder
// (what provision-pi calls). A temp folder stands in for the root; runs as root (chown).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Redactor, TextReporter } from '../../provision/engine/index.ts';
import { loadInventory } from '../../provision/inventory/validate.ts';
import { installRuntimeInto } from '../../provision/runtime-install.ts';
import type { BuiltRuntime } from '../../provision/build-runtime.ts';

const isRoot = process.getuid?.() === 0;
const tmp = mkdtempSync(path.join(tmpdir(), 'pv-into-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const loaded = await loadInventory(path.resolve('inventory.json'));
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const state = path.join(tmp, 'state');
mkdirSync(path.join(state, 'aws'), { recursive: true });
writeFileSync(path.join(state, 'aws', 'writer-credentials.json'), JSON.stringify({ accessKeyId: 'AKIAEXAMPLEWRITER01', secretAccessKey: SECRET }));
const bundle = (body: string): BuiltRuntime => ({ content: `#!/usr/bin/env node\n${body}\n`, sha256: 'x', version: '0.1.0', buildHash: 'abcdef012345', bytes: body.length, warnings: [], inputs: [] });

function capture() {
  const out: string[] = [];
  return { reporter: new TextReporter(new Redactor(), (t) => out.push(t)), text: () => out.join('') };
}

describe.skipIf(!isRoot)('installRuntimeInto (image root)', () => {
  const root = path.join(tmp, 'root');
  mkdirSync(root);

  it('dry run: lists what it would write and writes nothing', async () => {
    const c = capture();
    const s = await installRuntimeInto(root, loaded, { bundle: bundle('console.log(1)'), stateDir: state, dryRun: true, reporter: c.reporter });
    expect(s.failed).toBe(0);
    expect(s.changed).toBeGreaterThan(10);
    expect(readdirSync(root)).toEqual([]);
    expect(c.text()).toContain('would change');
  });

  it('writes the files with their modes, then a second run reports 0 changed', async () => {
    const c = capture();
    const first = await installRuntimeInto(root, loaded, { bundle: bundle('console.log(1)'), stateDir: state, reporter: c.reporter });
    expect(first.failed).toBe(0);
    const mode = (p: string) => (statSync(path.join(root, p)).mode & 0o7777).toString(8);
    expect(mode('etc/pullvault/config.json')).toBe('600');
    expect(mode('etc/pullvault/aws-credentials.json')).toBe('600');
    expect(mode('etc/pullvault')).toBe('700');
    expect(mode('usr/local/bin/pullvault')).toBe('755');
    expect(readFileSync(path.join(root, 'etc/cron.d/pullvault'), 'utf8')).toMatch(/^17 \*\/4 \* \* \* root /m);
    expect(JSON.parse(readFileSync(path.join(root, 'etc/pullvault/aws-credentials.json'), 'utf8')).secretAccessKey).toBe(SECRET);
    // the secret is never printed, even in the diff of a created file
    expect(c.text()).not.toContain(SECRET);
    expect(c.text()).toContain('sensitive');

    const again = capture();
    const second = await installRuntimeInto(root, loaded, { bundle: bundle('console.log(1)'), stateDir: state, reporter: again.reporter });
    expect([second.changed, second.failed]).toEqual([0, 0]);
    expect(again.text()).toMatch(/0 changed, 0 failed/);
  });

  it('a new bundle changes only the bundle, shown by hash (no multi-megabyte diff)', async () => {
    const c = capture();
    const s = await installRuntimeInto(root, loaded, { bundle: bundle('console.log(2)'), stateDir: state, reporter: c.reporter });
    expect(s.results.filter((r) => r.status === 'changed').map((r) => r.id)).toEqual(['bundle /usr/local/lib/pullvault/pullvault.mjs']);
    expect(c.text()).toMatch(/sha256 [0-9a-f]{12}→[0-9a-f]{12}/);
    expect(c.text()).not.toContain('console.log(2)');
  });

  it('puts back a file changed by hand (mode and content)', async () => {
    const kh = path.join(root, 'etc/pullvault/known_hosts');
    writeFileSync(kh, 'tampered\n', { mode: 0o666 });
    const s = await installRuntimeInto(root, loaded, { bundle: bundle('console.log(2)'), stateDir: state, reporter: capture().reporter });
    expect(s.changed).toBe(1);
    expect(readFileSync(kh, 'utf8')).toContain('web1.example.net,web1 ssh-ed25519');
  });
});
