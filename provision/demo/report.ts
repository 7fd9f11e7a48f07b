// The demo's report for people: short, one fact per line.
import type { DemoReport, StepCount } from './flow.ts';

const mib = (b?: number) => (b === undefined ? '?' : b < 1024 * 1024 ? `${(b / 1024).toFixed(0)} KiB` : `${(b / 1024 / 1024).toFixed(1)} MiB`);
const sc = (s: StepCount) => `${s.changed} changed, ${s.failed} failed`;

export function renderReport(r: DemoReport): string {
  const L: string[] = [];
  L.push('', `pullvault demo — ${r.target === 's3' ? 'offsite: S3 (local moto endpoint)' : 'offsite: a folder (dir target)'} — ${r.seconds.toFixed(0)} s`, '');
  L.push('Provisioned');
  L.push(`  runtime bundle    pullvault ${r.runtime.version} (build ${r.runtime.build}), ${mib(r.runtime.bytes)}, Node 18+`);
  if (r.provisioned.aws) L.push(`  provision-aws     bucket, write-once policy, lifecycle, writer + restore users: ${sc(r.provisioned.aws.first)}; again: ${sc(r.provisioned.aws.second)}`);
  for (const s of r.provisioned.servers) L.push(`  provision-server  ${s.name}: ${sc(s.first)}; again: ${sc(s.second)}`);
  const i = r.provisioned.install;
  L.push(`  install-runtime   pi: ${sc(i.first)}; again: ${sc(i.second)}; on the pi: ${i.installedVersion ?? '?'}`);
  L.push('');
  for (const c of r.cycles) {
    L.push(`Cycle ${c.n} (cron job on the pi): exit ${c.exitCode}, ${c.seconds.toFixed(1)} s`);
    for (const s of c.servers) {
      if (!s.snapshot) L.push(`  ${s.server.padEnd(5)} no snapshot`);
      else
        L.push(`  ${s.server.padEnd(5)} snapshot ${s.snapshot}: ${s.files} files, ${mib(s.bytes)}; pulled new/changed ${s.newFiles} files, ${mib(s.newBytes)} in ${s.seconds?.toFixed(1)} s${s.dumps?.length ? `; dumps ${s.dumps.join(', ')}` : ''}${s.partial ? '  PARTIAL' : ''}`);
    }
    if (!c.uploads.length) L.push('  offsite: nothing uploaded');
    for (const u of c.uploads) L.push(`  offsite: ${u.server} ${u.kind} ${mib(u.bytes)} → ${u.key}`);
    if (c.cronOutput) {
      const lines = c.cronOutput.split('\n').filter((l) => l.trim());
      L.push(`  cron would mail: ${lines[0]}`);
      for (const l of lines.slice(Math.max(2, lines.length - 4))) L.push(`    | ${l.slice(0, 200)}`);
    }
  }
  L.push('');
  L.push("A thief with the Pi's SSH key");
  for (const p of r.probes) L.push(`  ${p.refused === p.expectRefused ? (p.expectRefused ? 'refused ' : 'allowed ') : 'WRONG   '} ${p.name}  (${p.detail})`);
  L.push('');
  if (r.restore) {
    const x = r.restore;
    const ok = !x.manifestProblems.length && !x.mismatches.length && x.differsFromNow && !x.verifyProblems.length;
    L.push(`Restore on the owner's machine: ${ok ? 'OK' : 'PROBLEMS'}`);
    L.push(`  web1 as of ${x.snapshot}: ${x.entries} entries, ${mib(x.bytes)}; manifest check: ${x.manifestProblems.length ? x.manifestProblems.length + ' problem(s)' : 'all match'}`);
    L.push(`  vs the source at that time (${x.comparedPaths.join(', ')}): ${x.comparedEntries} entries compared (path, size, sha256), ${x.mismatches.length} mismatch(es); differs from the source now: ${x.differsFromNow ? 'yes' : 'NO'}`);
    for (const m of x.mismatches.slice(0, 5)) L.push(`    ${m}`);
    L.push(`  verify (decrypt every archive, check checksums): ${x.verifyProblems.length ? x.verifyProblems.join('; ') : 'ok'}`);
  }
  for (const s of r.skipped) L.push(s);
  for (const n of r.notes) L.push(`note: ${n}`);
  return L.join('\n') + '\n';
}
