// `make build`: bundles the Pi's runtime (runtime/main.ts and every dependency) into one ES
// module, dist/pullvault.mjs, that runs on Node 18+ (Raspberry Pi OS's own `nodejs`).
//
// The bundle's entry is a small shim (below): `pullvault --version` answers before anything
// else is loaded, and a Node older than the target gets a clear message instead of a syntax
// error. The build hash is the sha256 of the bundle itself (computed with a placeholder, then
// substituted), so the same sources always give the same file and the same hash — which is
// what makes a second `make install-runtime` report `0 changed`.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import standaloneCodeModule from 'ajv/dist/standalone/index.js';
import { schemaAjv } from '../contract/json-schema.ts';
import { RuntimeConfigSchema } from '../contract/runtime-config-schema.ts';
import { readUplotFromNodeModules } from '../lib/chart-assets.ts';

import { REPO_ROOT } from './state.ts';
const RUNTIME_ENTRY = 'runtime/main.ts';
const DEFAULT_OUT = path.join(REPO_ROOT, 'dist', 'pullvault.mjs');
/** The oldest Node the bundle runs on (Raspberry Pi OS bookworm ships 18). */
export const NODE_TARGET_MAJOR = 18;

const HASH_PLACEHOLDER = '__PULLVAULT_BUILD_HASH_0123456789__';

export interface BuiltRuntime {
  /** where it was written (when written) */
  file?: string;
  content: string;
  /** sha256 of content, hex */
  sha256: string;
  version: string;
  /** first 12 hex digits of the bundle's hash, as `pullvault --version` prints it */
  buildHash: string;
  bytes: number;
  warnings: string[];
  /** every source file bundled, relative to the repo (esbuild's metafile inputs) */
  inputs: string[];
}

function entryShim(version: string, entry: string): string {
  // Plain JS (no TS needed); resolved against the repo root. Dynamic import is inlined by
  // esbuild (no splitting), so the output stays one file, and nothing of the runtime is
  // evaluated before the version/Node checks.
  return `
const VERSION = ${JSON.stringify(version)};
const BUILD = ${JSON.stringify(HASH_PLACEHOLDER)};
const args = process.argv.slice(2);
if (args[0] === '--version' || args[0] === '-V') {
  process.stdout.write('pullvault ' + VERSION + ' (build ' + BUILD + ', node ' + process.versions.node + ')\\n');
  process.exit(0);
}
const major = Number(process.versions.node.split('.')[0]);
if (major < ${NODE_TARGET_MAJOR}) {
  process.stderr.write('pullvault: needs Node.js ${NODE_TARGET_MAJOR} or newer, this is ' + process.version + ' (apt-get install nodejs)\\n');
  process.exit(2);
}
globalThis.__PULLVAULT_BUILD__ = { version: VERSION, build: BUILD };
// The Pi runs its distribution's Node (18 on bookworm): without this, the AWS SDK writes a notice
// about its future Node requirement into every cron run's log.
if (process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED === undefined) process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
await import(${JSON.stringify(entry.startsWith('/') ? entry : './' + entry)});
`;
}

// ajv's standalone module is CommonJS; under NodeNext its default import is the module object.
type StandaloneCode = typeof standaloneCodeModule.default;
const standaloneCode: StandaloneCode = (standaloneCodeModule as unknown as { default?: StandaloneCode }).default ?? (standaloneCodeModule as unknown as StandaloneCode);

/**
 * The runtime's config check as ajv standalone code: the same schema and options as at dev time,
 * compiled now instead of at each start of the Pi's program (no ajv compiler in the bundle).
 */
function configCheckModule(): string {
  const ajv = schemaAjv({ source: true, esm: true });
  const validate = ajv.compile(RuntimeConfigSchema);
  return `${standaloneCode(ajv, validate)}
import { formatSchemaErrors } from './schema-errors.ts';
export const runtimeConfigSchemaProblems = (data) => (validate(data) ? [] : formatSchemaErrors(validate.errors ?? [], data));
`;
}

const precompiledConfigCheck: esbuild.Plugin = {
  name: 'precompiled-config-check',
  setup(b) {
    b.onLoad({ filter: /[\\/]contract[\\/]runtime-config-check\.ts$/ }, () => ({ contents: configCheckModule(), loader: 'js', resolveDir: path.join(REPO_ROOT, 'contract') }));
  },
};

export interface BuildOptions {
  /** write the bundle here (default dist/pullvault.mjs); null: do not write */
  outFile?: string | null;
  /** log a line when done */
  log?: (line: string) => void;
  /** the module to bundle behind the shim (default runtime/main.ts; tests use others) */
  entry?: string;
}

export async function buildRuntime(opts: BuildOptions = {}): Promise<BuiltRuntime> {
  const entry = opts.entry ?? RUNTIME_ENTRY;
  if (!existsSync(path.resolve(REPO_ROOT, entry)))
    throw new Error(`${entry} is missing: nothing to bundle`);
  const pkg = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const result = await esbuild.build({
    stdin: { contents: entryShim(pkg.version, entry), resolveDir: REPO_ROOT, sourcefile: 'pullvault-entry.mjs', loader: 'js' },
    absWorkingDir: REPO_ROOT,
    nodePaths: [path.join(REPO_ROOT, 'node_modules')],
    bundle: true,
    platform: 'node',
    target: `node${NODE_TARGET_MAJOR}`,
    format: 'esm',
    write: false,
    metafile: true,
    minify: false,
    legalComments: 'none',
    logLevel: 'silent',
    // Several dependencies are CommonJS and call require('fs') etc.; an ES module has no
    // `require` (nor __dirname), so give the bundle them. The shebang makes the file executable on its own.
    banner: {
      js: [
        '#!/usr/bin/env node',
        '// pullvault runtime — built by `make build` (provision/build-runtime.ts); do not edit.',
        "import { createRequire as __pvCreateRequire } from 'node:module';",
        "import { fileURLToPath as __pvFileURLToPath } from 'node:url';",
        "import { dirname as __pvDirname } from 'node:path';",
        'const require = __pvCreateRequire(import.meta.url);',
        'const __filename = __pvFileURLToPath(import.meta.url);',
        'const __dirname = __pvDirname(__filename);',
      ].join('\n'),
    },
    // the report page's chart library, inlined into every page it writes (the Pi has no node_modules)
    define: { __PULLVAULT_UPLOT__: JSON.stringify(JSON.stringify(readUplotFromNodeModules())) },
    // ssh2's optional native add-ons (sshcrypto.node, cpu-features) are tried in try/catch and
    // have pure-JS fallbacks; a single-file bundle cannot carry .node files.
    external: ['*.node', 'cpu-features'],
    plugins: [precompiledConfigCheck],
  });
  const warnings = result.warnings.map((w) => `${w.location?.file ?? ''}:${w.location?.line ?? ''}: ${w.text}`);
  const raw = result.outputFiles[0]!.text;
  if (!raw.includes(HASH_PLACEHOLDER)) throw new Error('build: the version shim is missing from the bundle');
  const buildHash = createHash('sha256').update(raw).digest('hex').slice(0, 12);
  const content = raw.split(HASH_PLACEHOLDER).join(buildHash);
  const sha256 = createHash('sha256').update(content).digest('hex');
  const built: BuiltRuntime = { content, sha256, version: pkg.version, buildHash, bytes: Buffer.byteLength(content), warnings, inputs: Object.keys(result.metafile.inputs) };
  const outFile = opts.outFile === undefined ? DEFAULT_OUT : opts.outFile;
  if (outFile) {
    await mkdir(path.dirname(outFile), { recursive: true });
    const tmp = `${outFile}.tmp-${process.pid}`;
    await writeFile(tmp, content, { mode: 0o755 });
    await rename(tmp, outFile);
    built.file = outFile;
  }
  opts.log?.(`built ${outFile ? path.relative(process.cwd(), outFile) || outFile : 'runtime bundle'}: pullvault ${built.version} (build ${buildHash}), ${(built.bytes / 1024).toFixed(0)} KiB, target node${NODE_TARGET_MAJOR}`);
  return built;
}

const HELP = `usage: make build   (tsx provision/build-runtime.ts [--out FILE])

Bundles the Pi's runtime (${RUNTIME_ENTRY} and all its dependencies) into one file that runs
on Node ${NODE_TARGET_MAJOR}+: dist/pullvault.mjs. \`node dist/pullvault.mjs --version\` prints the
package version and the build hash.`;

async function cli(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) return (console.log(HELP), 0);
  const i = argv.indexOf('--out');
  const out = i >= 0 ? path.resolve(argv[i + 1] ?? '') : DEFAULT_OUT;
  try {
    const b = await buildRuntime({ outFile: out, log: (l) => console.log(l) });
    for (const w of b.warnings) console.warn(`warning: ${w}`);
    return 0;
  } catch (e) {
    const err = e as Error & { errors?: esbuild.Message[] };
    if (err.errors?.length) for (const m of err.errors) console.error(`build: ${m.location ? `${m.location.file}:${m.location.line}: ` : ''}${m.text}`);
    else console.error(`build: ${err.message}`);
    return 1;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  cli(process.argv.slice(2)).then((c) => process.exit(c));
}
