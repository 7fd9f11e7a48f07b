// File-count sweep: peak RSS and time of the memory-bound steps of pull and offsite (the
// manifest build, full and incremental; the full and incremental selection) against restic's
// backup of the same trees, at several file counts, and the bytes-per-file slope between points.
//   npx tsx bench/files-sweep.ts [--points 50000,200000] [--dir /var/tmp]
// Each point: N small files in directories of 1000 (A), then B = cp -al A (what rsync --link-dest
// makes) with 10 files of 1 MiB added (10 MiB changed). Every step runs in its own Node process
// (bench/files-sweep-step.ts, the runtime's own functions) under GNU time (%M: max RSS).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { randomBytes } from 'node:crypto';
import { REPO_ROOT } from '../provision/state.ts';

const { values: o } = parseArgs({ options: { points: { type: 'string', default: '50000,200000' }, dir: { type: 'string', default: '/var/tmp' } } });
const points = o.points!.split(',').map(Number);

/** wall seconds and max RSS (MiB) of argv, by GNU time */
function timedAll(argv: string[], env: Record<string, string> = {}, cwd = REPO_ROOT): { s: number; mib: number } {
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %M', ...argv], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 });
  const m = /TIME ([\d.]+) (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${argv.join(' ')}: exit ${r.status}: ${r.stderr.slice(-800)}`);
  return { s: Number(m[1]), mib: Number(m[2]) / 1024 };
}

const rows: { n: number; step: string; s: number; mib: number }[] = [];
for (const n of points) {
  const work = mkdtempSync(join(o.dir!, 'files-sweep-'));
  try {
    const a = join(work, 'a');
    for (let d = 0; d * 1000 < n; d++) {
      const dir = join(a, 'files', `d${String(d).padStart(5, '0')}`);
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < Math.min(1000, n - d * 1000); f++) writeFileSync(join(dir, `f${f}`), `${d}/${f}\n`);
    }
    const b = join(work, 'b');
    execFileSync('cp', ['-al', a, b]);
    for (let i = 0; i < 10; i++) writeFileSync(join(b, 'files', 'd00000', `big${i}`), randomBytes(1 << 20));
    const sort = join(work, 'sort');
    mkdirSync(sort);
    const step = (s: string) => rows.push({ n, step: s, ...timedAll(['node', '--import', 'tsx', 'bench/files-sweep-step.ts', s, a, b, sort]) });
    for (const s of ['manifest-full', 'manifest-inc', 'select-full', 'select-inc']) step(s);
    const restic = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: join(work, 'restic-cache') };
    execFileSync('restic', ['init', '--repo', join(work, 'restic')], { env: { ...process.env, ...restic }, stdio: 'ignore' });
    rows.push({ n, step: 'restic-full', ...timedAll(['restic', 'backup', '--repo', join(work, 'restic'), '--quiet', '.'], restic, a) });
    rows.push({ n, step: 'restic-inc', ...timedAll(['restic', 'backup', '--repo', join(work, 'restic'), '--quiet', '.'], restic, b) });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`${n} files done (load ${loadavg()[0].toFixed(1)})`);
}
console.log('| files | step | seconds | peak RSS MiB |\n|---:|---|---:|---:|');
for (const r of rows) console.log(`| ${r.n} | ${r.step} | ${r.s.toFixed(1)} | ${r.mib.toFixed(0)} |`);
if (points.length > 1) {
  const [lo, hi] = [points[0]!, points[points.length - 1]!];
  console.log('\nslope (bytes per file, between the first and last point):');
  for (const s of new Set(rows.map((r) => r.step))) {
    const x = rows.find((r) => r.n === lo && r.step === s)!;
    const y = rows.find((r) => r.n === hi && r.step === s)!;
    console.log(`  ${s}: ${(((y.mib - x.mib) * 1048576) / (hi - lo)).toFixed(0)}`);
  }
}
