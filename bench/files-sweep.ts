// File-count sweep: peak RSS and time of pull (rsync + pre-hasher + manifest), offsite full,
// offsite incremental and restore, against restic's backup and restore of the same trees, at
// several file counts, and the bytes-per-file slope between points.
//   npx tsx bench/files-sweep.ts [--points 250000,1000000] [--dir /var/tmp]
// Each point: a source of N small files in directories of 1000; pull A (initial), then 10 files
// of 1 MiB added (10 MiB changed) and pull B with --link-dest A; the full of A and the incremental
// of B on A into a folder store; restore of B (the chain) into an empty folder. Every step runs in
// its own Node process under GNU time: bench/files-sweep-step.ts (the runtime's own functions)
// bundled as the runtime is (provision/build-runtime.ts), so no TypeScript loader is measured.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { randomBytes } from 'node:crypto';
import { buildRuntime } from '../provision/build-runtime.ts';
import { REPO_ROOT } from '../provision/state.ts';
import { NODE_HEAP_FLAGS } from '../provision/runtime/plan.ts';
import { genKey, markdownBlock } from '../test/integration/offsite-fixture.ts';

const { values: o } = parseArgs({ options: { points: { type: 'string', default: '250000,1000000' }, dir: { type: 'string', default: '/var/tmp' } } });
const points = o.points!.split(',').map(Number);

interface Row {
  n: number;
  step: string;
  s: number;
  /** the step's own process (the runtime's Node process; for restic, restic) */
  mib: number;
  /** GNU time %M: the largest single process of the step (rsync, tar, zstd count here) */
  treeMib: number;
}

/** wall seconds, GNU time's max RSS (MiB) and the step's own JSON line */
function timed(argv: string[], env: Record<string, string> = {}, cwd = REPO_ROOT): { s: number; treeMib: number; out: Record<string, unknown> } {
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %M', ...argv], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
  const m = /TIME ([\d.]+) (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${argv.join(' ')}: exit ${r.status}: ${r.stderr.slice(-1500)}`);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return { s: Number(m[1]), treeMib: Number(m[2]) / 1024, out: last.startsWith('{') ? (JSON.parse(last) as Record<string, unknown>) : {} };
}

const bundleDir = mkdtempSync(join(o.dir!, 'files-sweep-bundle-'));
const bundle = join(bundleDir, 'step.mjs');
await buildRuntime({ entry: 'bench/files-sweep-step.ts', outFile: bundle });
const rows: Row[] = [];
for (const n of points) {
  const work = mkdtempSync(join(o.dir!, 'files-sweep-'));
  try {
    const src = join(work, 'src');
    for (let d = 0; d * 1000 < n; d++) {
      const dir = join(src, `d${String(d).padStart(5, '0')}`);
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < Math.min(1000, n - d * 1000); f++) writeFileSync(join(dir, `f${f}`), `${d}/${f}\n`);
    }
    const k = genKey(work, 'owner');
    writeFileSync(join(work, 'key.json'), JSON.stringify(k));
    const [a, b] = [join(work, 'snaps', 'a'), join(work, 'snaps', 'b')];
    mkdirSync(a, { recursive: true });
    mkdirSync(b);
    const step = (name: string, ...args: string[]) => {
      // the heap flags of the Pi's wrapper: the bench measures what the Pi runs
      const t = timed(['node', ...NODE_HEAP_FLAGS, bundle, ...args]);
      rows.push({ n, step: name, s: t.s, mib: Number(t.out.vmHwmKiB) / 1024, treeMib: t.treeMib });
      console.log(`  ${n} ${name}: ${t.s.toFixed(1)} s, ${(Number(t.out.vmHwmKiB) / 1024).toFixed(0)} MiB (${JSON.stringify(t.out)})`);
    };
    const restic = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: join(work, 'restic-cache') };
    const repo = join(work, 'restic');
    // the format's standard-tools floor: docs/restore-by-hand.md's script as written (gpg, zstd, tar)
    const byHand = join(work, 'restore-by-hand.sh');
    writeFileSync(byHand, markdownBlock('docs/restore-by-hand.md', 'restore-by-hand.sh'));
    const byHandStep = (to: string) => {
      const t = timed(['bash', byHand, join(work, 'store'), 'sweep', to], { GNUPGHOME: k.homedir });
      rows.push({ n, step: 'restore-by-hand', s: t.s, mib: t.treeMib, treeMib: t.treeMib });
      console.log(`  ${n} restore-by-hand: ${t.s.toFixed(1)} s, largest process ${t.treeMib.toFixed(0)} MiB`);
    };
    const resticStep = (name: string, argv: string[], cwd: string) => {
      const t = timed(['restic', '--repo', repo, '--quiet', ...argv], restic, cwd);
      rows.push({ n, step: name, s: t.s, mib: t.treeMib, treeMib: t.treeMib });
      console.log(`  ${n} ${name}: ${t.s.toFixed(1)} s, ${t.treeMib.toFixed(0)} MiB`);
    };
    execFileSync('restic', ['init', '--repo', repo], { env: { ...process.env, ...restic }, stdio: 'ignore' });
    execFileSync('sync');
    step('pull-full', 'pull', src, a);
    resticStep('restic-full', ['backup', '.'], src);
    for (let i = 0; i < 10; i++) writeFileSync(join(src, 'd00000', `big${i}`), randomBytes(1 << 20));
    step('pull-inc', 'pull', src, b, a);
    resticStep('restic-inc', ['backup', '.'], src);
    step('offsite-full', 'offsite-full', work, a);
    step('offsite-inc', 'offsite-inc', work, b, a);
    rmSync(src, { recursive: true, force: true });
    execFileSync('sync');
    step('restore', 'restore', work, join(work, 'restored'));
    rmSync(join(work, 'restored'), { recursive: true, force: true });
    execFileSync('sync');
    byHandStep(join(work, 'by-hand'));
    rmSync(join(work, 'by-hand'), { recursive: true, force: true });
    execFileSync('sync');
    resticStep('restic-restore', ['restore', 'latest', '--target', join(work, 'restic-restored')], work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`${n} files done (load ${loadavg()[0].toFixed(1)})`);
}
rmSync(bundleDir, { recursive: true, force: true });
console.log('\n| files | step | seconds | peak RSS MiB | largest process MiB |\n|---:|---|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.n} | ${r.step} | ${r.s.toFixed(1)} | ${r.mib.toFixed(0)} | ${r.treeMib.toFixed(0)} |`);
if (points.length > 1) {
  console.log('\nslope of the peak RSS (bytes per file) between consecutive points, and first to last:');
  for (const s of new Set(rows.map((r) => r.step))) {
    const at = (n: number) => rows.find((r) => r.n === n && r.step === s)!.mib;
    const sl = (lo: number, hi: number) => (((at(hi) - at(lo)) * 1048576) / (hi - lo)).toFixed(0);
    const pairs = points.slice(1).map((hi, i) => sl(points[i]!, hi));
    console.log(`  ${s}: ${pairs.join(', ')}${points.length > 2 ? `; ${sl(points[0]!, points[points.length - 1]!)}` : ''}`);
  }
}
