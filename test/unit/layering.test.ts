// The layering rules (.dependency-cruiser.cjs) on a tree with one breach of each: every rule fires
// where it should and nowhere else, so a typo in a rule's path cannot turn it into a no-op.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tree = mkdtempSync(path.join(tmpdir(), 'pv-layering-'));
afterAll(() => rmSync(tree, { recursive: true, force: true }));

const FILES: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'fixture', type: 'module', dependencies: { handlebars: '*' }, devDependencies: { vitest: '*' } }),
  'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', allowImportingTsExtensions: true, noEmit: true } }),
  'contract/floor.ts': "import { s3 } from '../lib/shared.ts';\nexport const floor = s3;\n",
  'lib/shared.ts': "import { pull } from '../runtime/pull.ts';\nexport const s3 = pull;\n",
  'runtime/pull.ts': "import type { Plan } from '../provision/server/plan.ts';\nexport const pull = 1;\nexport type P = Plan;\n",
  'runtime/uses-contract.ts': "import { floor } from '../contract/floor.ts';\nimport Handlebars from 'handlebars';\nexport const ok = [floor, Handlebars];\n",
  'runtime/dev-dep.ts': "import { it } from 'vitest';\nexport const x = it;\n",
  'runtime/uses-test.ts': "import { fixture } from '../test/fixture.ts';\nexport const y = fixture;\n",
  'runtime/typo.ts': "import { nothing } from './nosuch.ts';\nexport const z = nothing;\n",
  'runtime/cycle-a.ts': "import { b } from './cycle-b.ts';\nexport const a = b;\n",
  'runtime/cycle-b.ts': "import type { a } from './cycle-a.ts';\nexport const b = 1;\nexport type A = typeof a;\n",
  'provision/cli.ts': "import { pull } from '../runtime/pull.ts';\nimport { floor } from '../contract/floor.ts';\nexport const cli = [pull, floor];\n",
  'provision/demo/flow.ts': "export const restore = () => import('../../runtime/pull.ts');\n",
  'provision/exec/local.ts': "import { spawn } from 'node:child_process';\nexport const run = spawn;\n",
  'provision/exec/quote.ts': "export const q = (s: string) => s;\n",
  'provision/server/plan.ts': "import { q } from '../exec/quote.ts';\nimport Handlebars from 'handlebars';\nexport type Plan = string;\nexport const p = [q, Handlebars];\n",
  'provision/aws/policies.ts': "import { readFileSync } from 'node:fs';\nimport { run } from '../exec/local.ts';\nexport const n = [readFileSync, run];\n",
  'provision/runtime/steps.ts': "import { readFileSync } from 'node:fs';\nimport { run } from '../exec/local.ts';\nexport const i = [readFileSync, run];\n",
  'test/fixture.ts': "export const fixture = 1;\n",
};

describe('layering rules', () => {
  it('flag exactly the breaches of the fixture tree', () => {
    for (const [f, text] of Object.entries(FILES)) {
      mkdirSync(path.dirname(path.join(tree, f)), { recursive: true });
      writeFileSync(path.join(tree, f), text);
    }
    symlinkSync(path.join(REPO, 'node_modules'), path.join(tree, 'node_modules'));
    const r = spawnSync(
      path.join(REPO, 'node_modules/.bin/depcruise'),
      ['--config', path.join(REPO, '.dependency-cruiser.cjs'), '--output-type', 'json', 'contract', 'lib', 'provision', 'runtime', 'test'],
      { cwd: tree, encoding: 'utf8', timeout: 120_000 },
    );
    expect(r.stderr).toBe('');
    const found = (JSON.parse(r.stdout) as { summary: { violations: { from: string; to: string; rule: { name: string } }[] } }).summary.violations
      .map((v) => `${v.rule.name}: ${v.from} → ${v.to.replace(/^.*\/node_modules\//, 'node_modules/')}`)
      .sort();
    expect(found).toEqual(
      [
        'admin-into-runtime: provision/cli.ts → runtime/pull.ts',
        'bundle-no-dev-dependencies: runtime/dev-dep.ts → node_modules/vitest/dist/index.js',
        'contract-imports-nothing-of-theirs: contract/floor.ts → lib/shared.ts',
        'lib-imports-no-side: lib/shared.ts → runtime/pull.ts',
        'no-circular: runtime/cycle-a.ts → runtime/cycle-b.ts',
        'no-test-code-in-production: runtime/uses-test.ts → test/fixture.ts',
        'not-to-unresolvable: runtime/typo.ts → ./nosuch.ts',
        'pure-plan-no-core: provision/aws/policies.ts → fs',
        'pure-plan-no-executor: provision/aws/policies.ts → provision/exec/local.ts',
        'runtime-into-admin: runtime/pull.ts → provision/server/plan.ts',
      ].sort(),
    );
  }, 120_000);
});
