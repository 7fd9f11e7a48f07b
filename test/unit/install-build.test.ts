// The runtime bundle: one ES module for Node 18+, dependencies inside, --version answered first.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildRuntime, NODE_TARGET_MAJOR } from '../../provision/build-runtime.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'pv-build-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// A stand-in entry using the heavy dependencies the runtime uses (CommonJS ones among them).
const entry = path.join(tmp, 'entry.ts');
writeFileSync(
  entry,
  `import { Client } from 'ssh2';
import * as openpgp from 'openpgp';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
const b = (globalThis as any).__PULLVAULT_BUILD__;
console.log(JSON.stringify({ args: process.argv.slice(2), deps: [typeof Client, typeof openpgp.encrypt, typeof S3Client, typeof Upload], build: b }));
`,
);

describe('build-runtime', () => {
  it('bundles into one executable file that runs without node_modules, and reproducibly', async () => {
    const out = path.join(tmp, 'dist', 'pullvault.mjs');
    const b = await buildRuntime({ entry, outFile: out });
    expect(b.file).toBe(out);
    expect(statSync(out).mode & 0o111).not.toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text.startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(b.buildHash).toMatch(/^[0-9a-f]{12}$/);
    // copied away from the repo, it still runs: everything is inside
    const alone = path.join(tmp, 'alone.mjs');
    writeFileSync(alone, text);
    const r = JSON.parse(execFileSync(process.execPath, [alone, 'status', '--json'], { cwd: tmp, encoding: 'utf8' }));
    expect(r).toEqual({ args: ['status', '--json'], deps: ['function', 'function', 'function', 'function'], build: { version: b.version, build: b.buildHash } });
    // same sources → same bytes, same hash
    const again = await buildRuntime({ entry, outFile: null });
    expect(again.sha256).toBe(b.sha256);
  });

  it('--version prints the package version and build hash before loading the runtime', async () => {
    const b = await buildRuntime({ entry, outFile: path.join(tmp, 'v.mjs') });
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const v = execFileSync(path.join(tmp, 'v.mjs'), ['--version'], { encoding: 'utf8' });
    expect(v).toMatch(new RegExp(`^pullvault ${pkg.version.replace(/\./g, '\\.')} \\(build ${b.buildHash}, node `));
  });

  it(`refuses a Node older than ${NODE_TARGET_MAJOR} with a message, not a SyntaxError`, async () => {
    const file = path.join(tmp, 'old.mjs');
    await buildRuntime({ entry, outFile: file });
    const pretend = path.join(tmp, 'pretend-node16.mjs');
    writeFileSync(pretend, "Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '16.20.0' } }); Object.defineProperty(process, 'version', { value: 'v16.20.0' });\n");
    const r = spawnSync(process.execPath, ['--import', pretend, file, 'status'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`needs Node.js ${NODE_TARGET_MAJOR} or newer, this is v16.20.0`);
    expect(r.stdout).toBe(''); // the runtime itself never started
  });

  it('a missing entry is a clear error', async () => {
    await expect(buildRuntime({ entry: path.join(tmp, 'nope.ts'), outFile: null })).rejects.toThrow(/nope\.ts is missing/);
  });

  it('the CLI prints --help', () => {
    const r = spawnSync('npx', ['tsx', 'provision/build-runtime.ts', '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('dist/pullvault.mjs');
  });
});
