// Offsite benchmark: archive+encrypt+upload (to a dir target) against `tar | zstd | gpg -e`,
// peak RSS as the archive grows, restore RSS, incremental size after a 1% change, and for
// context restic and duplicity on the same data to a local target.
//
//   npx tsx bench/offsite.ts [--sizes 256,1024] [--rounds 3] [--work /var/tmp/pv-bench] [--no-baselines] [--no-restore]
//
// PV_NODE_FLAGS='--max-old-space-size=1024' runs the measured children with other V8 flags than the
// Pi wrapper's (NODE_HEAP_FLAGS); "" for V8's defaults on this machine.
// --no-baselines skips restic/duplicity (not the tar|zstd|gpg pipeline); rounds alternate the
// pipeline and pullvault on the same snapshot and report the median.
//
// Each measured pullvault step runs in its own Node process (peak RSS = that process's
// maxRSS; tar, zstd and gpg are separate processes in both pipelines).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { loadRecipient, loadPrivateKey } from '../runtime/archive/pgp.ts';
import { sendArchive } from '../runtime/offsite/phase.ts';
import { restore } from '../runtime/offsite/restore.ts';
import { DirTarget } from '../runtime/offsite/target-dir.ts';
import type { UploadRecord } from '../runtime/offsite/uploads.ts';
import { genKey, makeSnapshot } from '../test/integration/offsite-fixture.ts';
import { NODE_HEAP_FLAGS } from '../provision/runtime/plan.ts';
import { readFileSync } from 'node:fs';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};

function sampler() {
  const samples: number[] = [];
  const t = setInterval(() => samples.push(process.memoryUsage().rss), 250);
  return {
    stop() {
      clearInterval(t);
      return { peakMB: process.resourceUsage().maxRSS / 1024, samplesMB: samples.map((s) => Math.round(s / 1048576)) };
    },
  };
}

// ---- child mode: one measured step, JSON on stdout -------------------------------------
async function child(): Promise<void> {
  const [, , , what, json] = process.argv;
  const a = JSON.parse(json) as Record<string, string>;
  const s = sampler();
  const t0 = Date.now();
  let out: Record<string, unknown> = {};
  if (what === 'send') {
    const recipients = [await loadRecipient('owner', a.ownerPub, a.ownerFpr), await loadRecipient('escrow', a.escrowPub, a.escrowFpr)];
    const base = a.baseRecord ? { dir: a.baseDir, record: JSON.parse(a.baseRecord) as UploadRecord } : undefined;
    const rec = await sendArchive({ target: new DirTarget(a.store), recipients, server: 'bench', snapshotDir: a.snapDir, snapshot: a.id, base, log: () => {}, attempts: 1, backoffMs: 0, now: new Date() });
    out = { record: rec };
  } else if (what === 'restore') {
    const decryptor = a.key ? { kind: 'key' as const, privateKey: await loadPrivateKey(readFileSync(a.key, 'utf8')) } : { kind: 'gpg' as const, homedir: a.homedir };
    const r = await restore({ target: new DirTarget(a.store), server: 'bench', to: a.to, decryptor, log: () => {}, tmpDir: a.tmp });
    out = { problems: r.problems.length, entries: r.entries };
  }
  const m = s.stop();
  process.stdout.write(JSON.stringify({ seconds: (Date.now() - t0) / 1000, ...m, ...out }) + '\n');
  process.exit(0);
}

function runChild(what: string, a: Record<string, string>): Promise<Record<string, unknown> & { seconds: number; peakMB: number; samplesMB: number[] }> {
  return new Promise((res, rej) => {
    // the Pi wrapper's heap flags: the bench measures what the Pi runs (tsx's own heap counts too)
    const c = spawn(process.execPath, [...(process.env.PV_NODE_FLAGS !== undefined ? process.env.PV_NODE_FLAGS.split(' ').filter(Boolean) : NODE_HEAP_FLAGS), '--import', 'tsx', resolve('bench/offsite.ts'), '--child', what, JSON.stringify(a)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (b) => (out += b));
    // the last JSON line: flags such as --trace-gc print to stdout too
    c.on('close', (code) => (code === 0 ? res(JSON.parse(out.trim().split('\n').filter((l) => l.startsWith('{')).pop()!)) : rej(new Error(`${what} child exited ${code}`))));
  });
}

/** Real OS pipes between the processes: tar | zstd | gpg. */
function pipelineBaseline(snapDir: string, outFile: string, homedir: string, fprs: string[]): Promise<number> {
  const t0 = Date.now();
  const tar = spawn('tar', ['--create', '--file=-', '--format=posix', '--numeric-owner', 'files', 'manifest.jsonl', 'snapshot.json'], { cwd: snapDir, stdio: ['ignore', 'pipe', 'inherit'] });
  const zstd = spawn('zstd', ['-q', '-c', '-3', '-T0'], { stdio: [tar.stdout, 'pipe', 'inherit'] });
  const gpg = spawn('gpg', ['--homedir', homedir, '--batch', '--yes', '--trust-model', 'always', '--compress-algo', 'none', ...fprs.flatMap((f) => ['-r', f]), '--output', outFile, '--encrypt'], { stdio: [zstd.stdout, 'ignore', 'inherit'] });
  return new Promise((res, rej) => gpg.on('close', (c) => (c === 0 ? res((Date.now() - t0) / 1000) : rej(new Error(`gpg exited ${c}`)))));
}

function timed(argv: string[], env: Record<string, string> = {}): number {
  const t0 = Date.now();
  execFileSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  return (Date.now() - t0) / 1000;
}

function du(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? du(p) : e.isFile() ? statSync(p).size : 0;
  }
  return n;
}

/** Half incompressible, half text-like files of ~1 MiB, plus small ones. */
function generate(dir: string, mb: number): string[] {
  const files: string[] = [];
  const words = Array.from({ length: 5000 }, () => randomBytes(4).toString('hex'));
  for (let i = 0; i * 1 < mb; i++) {
    const sub = join(dir, `d${i % 50}`);
    mkdirSync(sub, { recursive: true });
    const f = join(sub, `f${i}.${i % 2 ? 'bin' : 'txt'}`);
    if (i % 2) writeFileSync(f, randomBytes(1 << 20));
    else {
      const parts: string[] = [];
      let n = 0;
      while (n < 1 << 20) {
        const w = words[(Math.random() * words.length) | 0];
        parts.push(w);
        n += w.length + 1;
      }
      writeFileSync(f, parts.join(' ').slice(0, 1 << 20));
    }
    files.push(f);
    if (i % 10 === 0) writeFileSync(join(sub, `small${i}.cfg`), `key=${i}\n`);
  }
  return files;
}

const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;

async function main(): Promise<void> {
  const sizes = arg('sizes', '256,1024').split(',').map(Number);
  const work = resolve(arg('work', '/var/tmp/pv-bench'));
  const baselines = !process.argv.includes('--no-baselines');
  const restores = !process.argv.includes('--no-restore');
  const rounds = Number(arg('rounds', '1'));
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const owner = genKey(work, 'owner');
  const escrow = genKey(work, 'escrow');
  execFileSync('gpg', ['--homedir', owner.homedir, '--batch', '--import', escrow.publicFile], { stdio: 'ignore' });
  const report: string[] = [];
  const say = (s: string) => (console.log(s), report.push(s));
  const ver = (argv: string[]) => execFileSync(argv[0], argv.slice(1)).toString().split('\n')[0].trim();
  say(`${new Date().toISOString()} · ${cpus().length}× ${cpus()[0]?.model ?? '?'} · ${Math.round(totalmem() / 2 ** 30)} GiB · node ${process.version} · ${ver(['gpg', '--version'])} · ${ver(['zstd', '--version'])} · load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  for (const size of sizes) {
    const src = join(work, `src-${size}`);
    const data = join(work, `data-${size}`);
    const files = generate(src, size);
    const snap0 = makeSnapshot(data, 'bench', '20240101T000000Z', src);
    const input = du(join(snap0, 'files'));
    say(`\n## ${size} MiB data set: ${files.length} large files, ${mb(input)}`);

    const store = join(work, `store-${size}`);
    const common = { ownerPub: owner.publicFile, ownerFpr: owner.fingerprint, escrowPub: escrow.publicFile, escrowFpr: escrow.fingerprint, store };
    // rounds alternate baseline and pullvault; the last round's store is kept for the restores
    const rows: { base: number; pv: number; peak: number; load: string; samples: number[]; rec: UploadRecord; baseBytes: number }[] = [];
    for (let round = 1; round <= rounds; round++) {
      rmSync(store, { recursive: true, force: true });
      // each timed step starts with no dirty pages: the background writeback of the previous
      // step's 0.6–2.6 GB output must not land inside the next step's time (the pipeline does
      // not fsync; pullvault does, before link())
      execFileSync('sync');
      const load = loadavg().map((x) => x.toFixed(1)).join(' ');
      const base = await pipelineBaseline(snap0, join(work, `baseline-${size}.gpg`), owner.homedir, [owner.fingerprint, escrow.fingerprint]);
      const baseBytes = statSync(join(work, `baseline-${size}.gpg`)).size;
      rmSync(join(work, `baseline-${size}.gpg`), { force: true });
      execFileSync('sync');
      const full = await runChild('send', { ...common, snapDir: snap0, id: '20240101T000000Z' });
      const row = { base, pv: full.seconds, peak: full.peakMB, load, samples: full.samplesMB, rec: full.record as UploadRecord, baseBytes };
      rows.push(row);
      say(`  round ${round}/${rounds} (load ${load}): pullvault ${row.pv.toFixed(1)} s, tar|zstd|gpg ${base.toFixed(1)} s → ratio ${(base / row.pv).toFixed(2)}; peak RSS ${row.peak.toFixed(0)} MB`);
    }
    const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) / 2)];
    const pv = med(rows.map((r) => r.pv));
    const base = med(rows.map((r) => r.base));
    const ratios = rows.map((r) => r.base / r.pv);
    const rec = rows[rows.length - 1].rec;
    say(`archive+encrypt+upload (dir), median of ${rounds}: pullvault ${pv.toFixed(1)} s (${mb(input / pv)}/s), tar|zstd|gpg ${base.toFixed(1)} s (${mb(input / base)}/s) → ratio ${(base / pv).toFixed(2)} of the pipeline's throughput (per-round ratios ${ratios.map((r) => r.toFixed(2)).join(', ')}, median ${med(ratios).toFixed(2)})`);
    say(`  bytes: pullvault ${mb(rec.bytes)} (+ manifest ${rec.manifestBytes} B), pipeline ${mb(rows[rows.length - 1].baseBytes)}`);
    const s = rows[rows.length - 1].samples;
    say(`  pullvault peak RSS ${Math.max(...rows.map((r) => r.peak)).toFixed(0)} MB (max over rounds); RSS at 25/50/75/100% of the last run: ${[0.25, 0.5, 0.75, 1].map((q) => s[Math.min(s.length - 1, Math.floor(q * (s.length - 1)))]).join('/')} MB`);

    for (const mode of restores ? (['key', 'gpg'] as const) : []) {
      const to = join(work, `restore-${size}-${mode}`);
      const r = await runChild('restore', { store, to, tmp: work, ...(mode === 'key' ? { key: owner.secretFile } : { homedir: owner.homedir }) });
      say(`restore (${mode === 'key' ? 'armored key, native decryption' : 'gpg'}): ${r.seconds.toFixed(1)} s, peak RSS ${r.peakMB.toFixed(0)} MB, ${r.problems} problems`);
      rmSync(to, { recursive: true, force: true });
    }

    // 1% of the large files rewritten
    const changed = files.filter((_, i) => i % 100 === 7);
    for (const f of changed) writeFileSync(f, f.endsWith('.bin') ? randomBytes(1 << 20) : readFileSync(f, 'utf8').split(' ').reverse().join(' '));
    const snap1 = makeSnapshot(data, 'bench', '20240102T000000Z', src);
    const inc = await runChild('send', { ...common, snapDir: snap1, id: '20240102T000000Z', baseDir: snap0, baseRecord: JSON.stringify(rec) });
    const irec = inc.record as UploadRecord;
    const rels = changed.map((f) => `files/${f.slice(src.length + 1)}`);
    const compressed = execFileSync('bash', ['-c', 'tar -c --null -T - | zstd -3 -q -c | wc -c'], { cwd: snap1, input: rels.join('\0') + '\0' });
    const cz = Number(compressed.toString().trim());
    say(`incremental after a 1% change (${changed.length} files): ${mb(irec.bytes)} archive + ${mb(irec.manifestBytes)} manifest; changed files zstd -3: ${mb(cz)} → ratio ${(irec.bytes / cz).toFixed(3)} (archive), ${((irec.bytes + irec.manifestBytes) / cz).toFixed(3)} (with manifest); ${inc.seconds.toFixed(1)} s`);

    if (baselines) {
      const env = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: join(work, 'restic-cache') };
      const rrepo = join(work, `restic-${size}`);
      timed(['restic', 'init', '--repo', rrepo], env);
      const r1 = timed(['restic', 'backup', '--repo', rrepo, '--quiet', join(snap0, 'files')], env);
      const rb1 = du(rrepo);
      const r2 = timed(['restic', 'backup', '--repo', rrepo, '--quiet', join(snap1, 'files')], env);
      say(`restic (local repo): full ${r1.toFixed(1)} s ${mb(rb1)}; after 1% change ${r2.toFixed(1)} s +${mb(du(rrepo) - rb1)}`);
      const drepo = join(work, `dup-${size}`);
      const denv = { GNUPGHOME: owner.homedir, PASSPHRASE: '' };
      const dargs = ['--allow-source-mismatch', '--encrypt-key', owner.fingerprint, '--gpg-options=--trust-model=always', '--no-print-statistics', '--archive-dir', join(work, 'dup-cache')];
      try {
        const d1 = timed(['duplicity', 'full', ...dargs, join(snap0, 'files'), `file://${drepo}`], denv);
        const db1 = du(drepo);
        const d2 = timed(['duplicity', 'incremental', ...dargs, join(snap1, 'files'), `file://${drepo}`], denv);
        say(`duplicity (local, gpg): full ${d1.toFixed(1)} s ${mb(db1)}; after 1% change ${d2.toFixed(1)} s +${mb(du(drepo) - db1)}`);
      } catch (e) {
        say(`duplicity: failed: ${(e as Error).message.split('\n').slice(0, 3).join(' ')}`);
      }
    }
    rmSync(src, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
    rmSync(store, { recursive: true, force: true });
  }
  writeFileSync(join(work, 'report.txt'), report.join('\n') + '\n');
  if (existsSync(work)) console.log(`\nreport: ${join(work, 'report.txt')}`);
}

if (process.argv[2] === '--child') await child();
else await main();
