// Daily-churn benchmark: a generated server changes a little every day; pullvault's offsite phase
// (the runtime's own code, delta incrementals on) against restic, borg and duplicity on the same
// snapshots in the same run: bytes each tool adds per day, and the time to restore the last day.
//
//   npx tsx bench/churn.ts [--scale 0.25] [--days 6] [--work /var/tmp/pv-churn] [--no-baselines] [--rounds 3]
//   PV_KEEP=1 keeps the stores; --restore-only then measures the restores again on them (same --work, --days)
//
// The server at --scale 1 (≈ 850 MB): a 400 MB SQL dump regenerated daily with 1% of its rows
// changed and 0.5% added (stored as dumps/mariadb/shop.sql.zst, compressed as the pull does), a
// 300 MB disk image with 0.5% of its 4 KiB blocks rewritten, a 100 MB log growing 5 MB a day, a
// Maildir of 2000 mails gaining 200 and losing 50, a web tree of 500 pages with 20 edited. Day 0
// is the full; days 1… are the incrementals. Every tool backs up the same tree: each day's
// snapshot, copied (rsync -a --delete) into one stable folder so the baselines see one path.
import { execFileSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { dateOfSnapshotId } from '../contract/disk-layout.ts';
import { loadPrivateKey } from '../runtime/archive/pgp.ts';
import { offsitePhase } from '../runtime/offsite/phase.ts';
import { planRestore } from '../runtime/offsite/chain.ts';
import { APPLY_LONG, DELTA_DIR, DELTA_INDEX, RECOMPRESS_ARGV, parseDeltaIndex, patchMember, recordPath } from '../runtime/offsite/delta-plan.ts';
import { isSafeRelative } from '../runtime/archive/tar-format.ts';
import { listServer, restore } from '../runtime/offsite/restore.ts';
import { DirTarget } from '../runtime/offsite/target-dir.ts';
import { buildManifest } from '../runtime/pull/manifest.ts';
import { dirTargetConfig, genKey, makeSnapshot, markdownBlock, treeSignature, type TestKey } from '../test/integration/offsite-fixture.ts';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const scale = Number(arg('scale', '0.25'));
const days = Number(arg('days', '6'));
const work = arg('work', '/var/tmp/pv-churn');
const baselines = !process.argv.includes('--no-baselines');
const rounds = Number(arg('rounds', '3'));
/** only the restores, again, on the stores a run with PV_KEEP=1 left in --work */
const restoreOnly = process.argv.includes('--restore-only');
const MB = 1e6;
const mb = (n: number) => `${(n / MB).toFixed(1)} MB`;

/** A seeded byte stream (AES-CTR keystream): the same data on every run. */
function stream(seed: string) {
  const c = createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16, 0));
  const zero = Buffer.alloc(1 << 16);
  return (n: number) => {
    const out: Buffer[] = [];
    for (let left = n; left > 0; left -= zero.length) out.push(c.update(zero.subarray(0, Math.min(left, zero.length))));
    return Buffer.concat(out);
  };
}
const rand = stream('churn');
/** xorshift32, seeded: the many small choices (words, rows, blocks) */
let state = 2463534242;
const u32 = () => {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return state >>> 0;
};
const WORDS = 'the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part'.split(' ');
const text = (n: number) => {
  const out: string[] = [];
  for (let len = 0; len < n; ) {
    const w = WORDS[u32() % WORDS.length];
    out.push(w);
    len += w.length + 1;
  }
  return out.join(' ').slice(0, n);
};

// ---- the server --------------------------------------------------------------------------
const ROW_BYTES = 100;
let rows: Uint16Array; // per row: the day it last changed
let rowCount = 0;

function sqlDump(): Buffer {
  const parts: string[] = ['-- MariaDB dump 10.19\nCREATE TABLE `orders` (`id` int PRIMARY KEY, `customer` varchar(64), `total` int, `note` text);\n'];
  for (let r = 0; r < rowCount; r++) {
    const d = rows[r];
    const a = Math.imul(r + 1, 2654435761 + d) >>> 0;
    const b = Math.imul(a ^ (r + 7), 40503) >>> 0;
    parts.push(`INSERT INTO \`orders\` VALUES (${r + 1},'customer-${a.toString(36)}-${b.toString(36)}',${a % 100000},'${WORDS[a % 50]} ${WORDS[b % 60]} ${b.toString(16)}');\n`);
  }
  return Buffer.from(parts.join(''));
}

function mutateDump(day: number) {
  if (day === 0) {
    rowCount = Math.round((400 * MB * scale) / ROW_BYTES);
    rows = new Uint16Array(rowCount * 2);
    return;
  }
  for (let k = Math.round(rowCount * 0.01); k > 0; k--) rows[u32() % rowCount] = day;
  const added = Math.round(rowCount * 0.005);
  for (let r = rowCount; r < rowCount + added; r++) rows[r] = day;
  rowCount += added;
}

function mutateFiles(src: string, day: number) {
  const img = join(src, 'var/lib/vm/disk.img');
  const log = join(src, 'var/log/app.log');
  const mail = join(src, 'home/mail/Maildir');
  const www = join(src, 'srv/www');
  if (day === 0) {
    for (const d of ['var/lib/vm', 'var/log', 'home/mail/Maildir/cur', 'home/mail/Maildir/new', 'home/mail/Maildir/tmp', 'srv/www']) mkdirSync(join(src, d), { recursive: true });
    const fd = openSync(img, 'w');
    for (let left = Math.round(300 * MB * scale); left > 0; left -= 1 << 20) writeSync(fd, rand(Math.min(left, 1 << 20)));
    closeSync(fd);
    writeFileSync(log, logLines(Math.round(100 * MB * scale), 0));
    for (let m = 0; m < Math.round(2000 * scale); m++) writeFileSync(join(mail, 'cur', `${1700000000 + m}.M${m}.host:2,S`), mailText(m));
    for (let p = 0; p < Math.round(500 * scale); p++) writeFileSync(join(www, `page-${p}.html`), `<html><body>${text(4000 + (u32() % 8000))}</body></html>\n`);
    return;
  }
  // 0.5% of the image's 4 KiB blocks rewritten in place
  const blocks = Math.floor(statSync(img).size / 4096);
  const fd = openSync(img, 'r+');
  for (let k = Math.round(blocks * 0.005); k > 0; k--) writeSync(fd, rand(4096), 0, 4096, (u32() % blocks) * 4096);
  closeSync(fd);
  appendFileSync(log, logLines(Math.round(5 * MB * scale), day));
  const cur = readdirSync(join(mail, 'cur')).sort();
  for (let k = 0; k < Math.round(50 * scale) && cur.length; k++) unlinkSync(join(mail, 'cur', cur.splice(u32() % cur.length, 1)[0]));
  for (let k = 0; k < Math.round(200 * scale); k++) writeFileSync(join(mail, 'new', `${1800000000 + day * 10000 + k}.M${k}.host`), mailText(day * 10000 + k));
  const pages = readdirSync(www);
  for (let k = 0; k < Math.round(20 * scale); k++) appendFileSync(join(www, pages[u32() % pages.length]), `<p>edit ${day}.${k}: ${text(200)}</p>\n`);
}

function logLines(n: number, day: number): string {
  const out: string[] = [];
  for (let len = 0, i = 0; len < n; i++) {
    const l = `2024-01-${String(day + 1).padStart(2, '0')}T${String(i % 24).padStart(2, '0')}:00:${String(i % 60).padStart(2, '0')}Z app[${1000 + (i % 97)}]: GET /item/${u32() % 100000} 200 ${u32() % 5000}ms ${text(40)}\n`;
    out.push(l);
    len += l.length;
  }
  return out.join('');
}
const mailText = (m: number) => `From: sender${m % 300}@example.org\nTo: owner@example.org\nSubject: ${text(40)}\nMessage-ID: <${m}@example.org>\n\n${text(3000 + (u32() % 20000))}\n`;

// ---- the tools -----------------------------------------------------------------------------
function run(argv: string[], env: Record<string, string> = {}): number {
  const t0 = Date.now();
  execFileSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  return (Date.now() - t0) / 1000;
}
function du(dir: string): number {
  let n = 0;
  if (!existsSync(dir)) return 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? du(p) : e.isFile() ? statSync(p).size : 0;
  }
  return n;
}
/** CPU seconds of this process and of the children it waited for (user + system: /proc/self/stat), less noisy than wall time on a shared machine */
function cpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14–17 of stat(5): utime stime cutime cstime, here from index 0 = field 3
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}
const resticEnv = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: join(work, 'restic-cache') };
const borgEnv = { BORG_PASSPHRASE: 'bench', BORG_BASE_DIR: join(work, 'borg-home'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' };
const dupEnv = (owner: TestKey) => ({ GNUPGHOME: owner.homedir, PASSPHRASE: '' });
const dupArgs = (owner: TestKey) => ['--allow-source-mismatch', '--encrypt-key', owner.fingerprint, '--gpg-options=--trust-model=always', '--no-print-statistics', '--archive-dir', join(work, 'dup-cache')];
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * The restore of the last day, `--rounds` times, each tool into an empty folder, and two floors of
 * this archive format: (a) docs/restore-by-hand.md's script as written (gpg, zstd, tar, the patch
 * steps), (b) each archive of the chain decrypted and decompressed to /dev/null (gpg -d | zstd -d:
 * the least any restore of tar | zstd | OpenPGP archives costs, before writing a single file).
 */
async function restores(o: { say: (s: string) => void; owner: TestKey; last: string; store: string; keep: boolean }) {
  const { say, owner, last, store } = o;
  const rs: Record<string, number[]> = {};
  const to = (t: string) => join(work, `restore-${t}`);
  const key = await loadPrivateKey(readFileSync(owner.secretFile, 'utf8'));
  const want = treeSignature(join(last, 'files')).join('\n');
  const byHand = join(work, 'restore-by-hand.sh');
  writeFileSync(byHand, markdownBlock('docs/restore-by-hand.md', 'restore-by-hand.sh'));
  const plan = planRestore(await listServer(new DirTarget(store), 'shop'));
  const gpgEnv = { GNUPGHOME: owner.homedir };
  const cpu: Record<string, number[]> = {};
  const timed = (t: string, f: () => void) => {
    rmSync(to(t), { recursive: true, force: true });
    execFileSync('sync');
    const t0 = Date.now();
    const c0 = cpuSeconds();
    f();
    (rs[t] ??= []).push((Date.now() - t0) / 1000);
    (cpu[t] ??= []).push(cpuSeconds() - c0);
  };
  for (let round = 0; round < rounds; round++) {
    rmSync(to('pullvault'), { recursive: true, force: true });
    execFileSync('sync');
    const t0 = Date.now();
    const c0 = cpuSeconds();
    const rep = await restore({ target: new DirTarget(store), server: 'shop', to: to('pullvault'), decryptor: { kind: 'key', privateKey: key }, log: () => {}, tmpDir: work });
    (rs.pullvault ??= []).push((Date.now() - t0) / 1000);
    (cpu.pullvault ??= []).push(cpuSeconds() - c0);
    if (rep.problems.length) throw new Error(`pullvault restore: ${rep.problems.slice(0, 5).join('; ')}`);
    if (treeSignature(join(to('pullvault'), 'files')).join('\n') !== want) throw new Error('pullvault restore differs from the snapshot');
    timed('by-hand', () => run(['bash', byHand, store, 'shop', to('by-hand')], gpgEnv));
    if (round === 0 && treeSignature(join(to('by-hand'), 'files')).join('\n') !== want) throw new Error('the by-hand restore differs from the snapshot');
    timed('floor', () => {
      for (const s of plan.steps) run(['bash', '-c', 'set -o pipefail; gpg --batch --quiet --decrypt -- "$1" | zstd -dcq >/dev/null', 'floor', join(store, s.key)], gpgEnv);
    });
    timed('floor+patches', () => floorWithPatches(plan.steps.map((s) => join(store, s.key)), join(work, 'floor-patches'), gpgEnv));
    if (baselines) {
      timed('restic', () => run(['restic', 'restore', 'latest', '--repo', join(work, 'restic'), '--target', to('restic')], resticEnv));
      timed('borg', () => {
        mkdirSync(to('borg'));
        execFileSync('borg', ['extract', `${join(work, 'borg')}::${snapshotId(days - 1)}`], { cwd: to('borg'), env: { ...process.env, ...borgEnv }, stdio: ['ignore', 'ignore', 'pipe'] });
      });
      timed('duplicity', () => run(['duplicity', 'restore', ...dupArgs(owner), `file://${join(work, 'dup')}`, to('duplicity')], dupEnv(owner)));
      if (round === 0)
        for (const t of ['restic', 'borg', 'duplicity'])
          if (treeSignature(join(to(t), 'files')).join('\n') !== want) say(`note: ${t}'s restore differs from the snapshot (owners/modes as the tool keeps them)`);
    }
  }
  const m = (t: string) => median(rs[t]);
  say(`(1-minute load ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs at the end)`);
  say(`restore of the last day (${plan.steps.length} archives; median of ${rounds}): ${Object.keys(rs).map((t) => `${t} ${m(t).toFixed(2)} s`).join(', ')}`);
  for (const t of Object.keys(rs)) say(`  ${t}: ${rs[t].map((x) => x.toFixed(2)).join(', ')} s; CPU (user+sys, with its processes) ${cpu[t].map((x) => x.toFixed(2)).join(', ')} s`);
  say(`CPU seconds (median): ${Object.keys(rs).map((t) => `${t} ${median(cpu[t]).toFixed(2)}`).join(', ')}; pullvault / floor+patches ${(median(cpu.pullvault) / median(cpu['floor+patches'])).toFixed(2)}${baselines ? `, pullvault / restic ${(median(cpu.pullvault) / median(cpu.restic)).toFixed(2)}` : ''}`);
  say(`floor (${plan.steps.length} archives: gpg -d | zstd -d >/dev/null): pullvault / floor ${(m('pullvault') / m('floor')).toFixed(2)}, by-hand / floor ${(m('by-hand') / m('floor')).toFixed(2)}`);
  say(`floor+patches (the same, and each patched file's chain of zstd --patch-from, files side by side): pullvault / it ${(m('pullvault') / m('floor+patches')).toFixed(2)}`);
  if (baselines) {
    say(`ratio pullvault / tool: ${['restic', 'borg', 'duplicity', 'by-hand'].map((t) => `${t} ${(m('pullvault') / m(t)).toFixed(2)}`).join(', ')}`);
    say(`floor / restic ${(m('floor') / m('restic')).toFixed(2)}, floor+patches / restic ${(m('floor+patches') / m('restic')).toFixed(2)}, by-hand / restic ${(m('by-hand') / m('restic')).toFixed(2)}`);
  }
  if (!o.keep) for (const t of Object.keys(rs)) rmSync(to(t), { recursive: true, force: true });
}

/**
 * The floor of a forward-delta chain: every archive decrypted and decompressed (gpg -d | zstd -d |
 * tar, which must read the whole stream), keeping only the full's versions of the files the
 * incrementals patch and the incrementals' patches; then each such file's chain of
 * `zstd -d --patch-from` in a scratch folder (a dump decompressed once before and compressed once
 * after, as it must end up), the files side by side. Nothing else is written, nothing checked.
 */
function floorWithPatches(archives: string[], scratch: string, env: Record<string, string>) {
  rmSync(scratch, { recursive: true, force: true });
  const tar = (a: string, dir: string, members: string[]) => {
    mkdirSync(dir, { recursive: true });
    run(['bash', '-c', 'set -o pipefail; a=$1 d=$2; shift 2; gpg --batch --quiet --decrypt -- "$a" | zstd -dcq | tar -x -f - -C "$d" -- "$@"', 'floor', a, dir, ...members], env);
  };
  const chains = new Map<string, { mode: string; patches: string[] }>();
  archives.slice(1).forEach((a, i) => {
    const dir = join(scratch, `incr-${i}`);
    tar(a, dir, [DELTA_DIR, DELTA_INDEX]);
    for (const d of parseDeltaIndex(readFileSync(join(dir, DELTA_INDEX), 'utf8'), isSafeRelative).deltas) {
      const p = recordPath(d).toString('utf8');
      const c = chains.get(p) ?? { mode: d.mode, patches: [] };
      c.patches.push(join(dir, patchMember(recordPath(d), d.mode).toString('utf8')));
      chains.set(p, c);
    }
  });
  const base = join(scratch, 'base');
  tar(archives[0], base, [...chains.keys()]);
  const script = [...chains].map(([p, c], k) => {
    const cur = join(scratch, `cur-${k}`);
    const first = c.mode === 'unzst' ? `zstd -dcq '${join(base, p)}' >'${cur}'` : `cp '${join(base, p)}' '${cur}'`;
    const steps = c.patches.map((x) => `zstd -d -q -f --long=${APPLY_LONG} --patch-from='${cur}' -o '${cur}.new' '${x}' && mv '${cur}.new' '${cur}'`);
    const last = c.mode === 'unzst' ? [`${RECOMPRESS_ARGV.join(' ')} -T0 <'${cur}' >'${cur}.zst'`] : [];
    return `(${[first, ...steps, ...last].join(' && ')}) &`;
  });
  run(['bash', '-c', `set -e; ${script.join('\n')}\nfor j in $(jobs -p); do wait $j; done`], env);
  rmSync(scratch, { recursive: true, force: true });
}

const snapshotId = (day: number) => `202401${String(day + 1).padStart(2, '0')}T020000Z`;

async function main() {
  const src = join(work, 'server');
  const data = join(work, 'data');
  const store = join(work, 'store');
  const current = join(work, 'current');
  const report: string[] = [];
  const say = (s: string) => {
    console.log(s);
    report.push(s);
  };
  say(`# churn: scale ${scale} (${days} days), ${cpus().length} CPUs, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${new Date().toISOString()}${restoreOnly ? ', restores only' : ''}`);
  if (restoreOnly) {
    const homedir = join(work, 'gnupg-owner');
    const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(execFileSync('gpg', ['--homedir', homedir, '--with-colons', '--list-keys']).toString())![1];
    const owner: TestKey = { name: 'owner', homedir, fingerprint, publicFile: join(work, 'owner.asc'), secretFile: join(work, 'owner.secret.asc'), passphrase: '' };
    await restores({ say, owner, last: join(data, 'pullvault', 'snapshots', 'shop', snapshotId(days - 1)), store, keep: true });
    writeFileSync(join(work, 'report-restores.txt'), report.join('\n') + '\n');
    return;
  }
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  mkdirSync(src);
  const owner = genKey(work, 'owner');
  const config = dirTargetConfig(data, store, work, [owner]);
  const tools = baselines ? ['pullvault', 'restic', 'borg', 'duplicity'] : ['pullvault'];
  const bytes: Record<string, number[]> = Object.fromEntries(tools.map((t) => [t, []]));
  const secs: Record<string, number[]> = Object.fromEntries(tools.map((t) => [t, []]));
  const restic = resticEnv;
  const borg = borgEnv;
  const dup = dupEnv(owner);
  let last = '';
  for (let day = 0; day < days; day++) {
    const id = snapshotId(day);
    mutateFiles(src, day);
    mutateDump(day);
    const snap = makeSnapshot(data, 'shop', id, src);
    mkdirSync(join(snap, 'dumps/mariadb'), { recursive: true });
    writeFileSync(join(snap, 'dumps/mariadb/shop.sql.zst'), execFileSync('zstd', ['-q', '-c', '-3'], { input: sqlDump(), maxBuffer: 1 << 30 }));
    await buildManifest(snap, { threads: 2 });
    last = snap;
    const t0 = Date.now();
    const lines: string[] = [];
    const [r] = await offsitePhase(config, [{ server: 'shop', snapshotDir: snap, id, ok: true }], { log: (l) => lines.push(l), now: new Date(dateOfSnapshotId(id).getTime() + 60_000) });
    if (!r.key) throw new Error(`offsite failed: ${lines.join('\n')}`);
    bytes.pullvault.push(r.bytes!);
    secs.pullvault.push((Date.now() - t0) / 1000);
    const deltaLine = lines.find((l) => / as deltas /.test(l));
    if (baselines) {
      execFileSync('rsync', ['-a', '--delete', `${snap}/`, `${current}/`]);
      if (day === 0) {
        run(['restic', 'init', '--repo', join(work, 'restic')], restic);
        run(['borg', 'init', '--encryption=repokey-blake2', join(work, 'borg')], borg);
      }
      for (const [tool, repo, argv, env] of [
        ['restic', join(work, 'restic'), ['restic', 'backup', '--repo', join(work, 'restic'), '--quiet', '.'], restic],
        ['borg', join(work, 'borg'), ['borg', 'create', `${join(work, 'borg')}::${id}`, '.'], borg],
        ['duplicity', join(work, 'dup'), ['duplicity', day === 0 ? 'full' : 'incremental', ...dupArgs(owner), current, `file://${join(work, 'dup')}`], dup],
      ] as const) {
        const before = du(repo);
        const t = Date.now();
        execFileSync(argv[0], argv.slice(1), { cwd: current, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
        secs[tool].push((Date.now() - t) / 1000);
        bytes[tool].push(du(repo) - before);
      }
    }
    say(`day ${day} (${mb(du(snap))} snapshot): ${tools.map((t) => `${t} +${mb(bytes[t][day])} ${secs[t][day].toFixed(1)} s`).join(', ')}${deltaLine ? `; ${deltaLine.replace(/^offsite shop: /, '')}` : ''}`);
  }
  const incr = (t: string) => median(bytes[t].slice(1));
  say('');
  say(`median daily incremental (days 1–${days - 1}): ${tools.map((t) => `${t} ${mb(incr(t))}`).join(', ')}`);
  if (baselines) say(`ratio pullvault / tool: ${tools.slice(1).map((t) => `${t} ${(incr('pullvault') / incr(t)).toFixed(3)}`).join(', ')}`);

  await restores({ say, owner, last, store, keep: !!process.env.PV_KEEP });
  writeFileSync(join(work, 'report.txt'), report.join('\n') + '\n');
  console.log(`\nreport: ${join(work, 'report.txt')}`);
  if (!process.env.PV_KEEP) for (const d of ['server', 'data', 'current', 'restic', 'borg', 'dup', 'store', 'restore-by-hand.sh']) rmSync(join(work, d), { recursive: true, force: true });
}

await main();
