// Benchmark: `pullvault run` against bare rsync over the same SSH transport, in lab hosts.
//   sudo npx tsx bench/pull.ts [--size-mb 2048] [--files 50000] [--rounds 3] [--only KINDS] [--link-mbit N]
// Runs: initial pull, no-change run, 1%-changed run, each `--rounds` times. Each: wall time of
// the runtime (bundled exactly as `make build` does, run as `node pullvault.mjs run`) and of
// rsync as the runtime runs it minus the runtime's own additions (runtime/pull/commands.ts: same
// ssh options, same -aHAX --numeric-ids --delete, --link-dest to its own previous copy; without
// the --out-format name list the pre-hasher reads, whose cost counts against the runtime), the ratio, peak RSS (GNU time
// %M: max RSS of the process or any of its children), CPU seconds (user+sys of the process and
// its children: rsync, ssh — far less sensitive to a busy machine than wall time), the runtime's
// phase times (its own log lines: rsync, manifest), the machine's busy cores and steal (/proc/stat)
// and the load average. Within a round the two alternate which goes first, and every initial run
// (bare or runtime) starts on an empty disk. Initial rounds also time a floor: the same rsync, then
// openssl sha256 of every file on both cores (what any tool that records sha256 pays at least).
// Medians per kind at the end.
// The offsite phase is not part of this benchmark (--no-offsite; see bench/offsite.ts).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { buildRuntime } from '../provision/build-runtime.ts';
import { NODE_HEAP_FLAGS } from '../provision/runtime/plan.ts';
import { endpointFor, rsyncArgv } from '../runtime/pull/commands.ts';
import { startHost, startLabNetwork } from '../provision/lab/index.ts';
import { CONFIG, DATA_DIR, labConfig, provisionLabServer, REPO, serverSpec } from '../test/integration/pull-lab.ts';

const { values: o } = parseArgs({
  options: { 'size-mb': { type: 'string', default: '2048' }, files: { type: 'string', default: '50000' }, rounds: { type: 'string', default: '3' }, only: { type: 'string' }, 'link-mbit': { type: 'string' } },
});
const sizeMb = Number(o['size-mb']);
const files = Number(o.files);
const rounds = Number(o.rounds);
/** --link-mbit N: the server sends at most N Mbit/s (tc tbf on its side of the lab link), as an uplink would */
const linkMbit = o['link-mbit'] === undefined ? undefined : Number(o['link-mbit']);
if (linkMbit !== undefined && !(linkMbit > 0)) throw new Error(`--link-mbit: a rate in Mbit/s above 0, not "${o['link-mbit']}"`);
/** --only initial,no-change: run just those kinds (the initial pull always runs once, to have something to compare with) */
const KINDS = ['initial', 'no-change', '1%-changed'];
const kinds = new Set((o.only ?? KINDS.join(',')).split(','));
for (const k of kinds) if (!KINDS.includes(k)) throw new Error(`--only: unknown kind "${k}" (kinds: ${KINDS.join(', ')})`);

const net = await startLabNetwork({ subnet: '10.219.0.0/24' });
const [pi, srv] = await Promise.all([startHost({ name: 'pi', network: net }), startHost({ name: 'srv', network: net })]);
try {
  const tmpfsMb = Math.ceil(sizeMb * 3.6) + 512;
  await pi.exec(['sh', '-c', `mkdir -p /etc/pullvault ${DATA_DIR} && ssh-keygen -q -t ed25519 -N '' -f /etc/pullvault/id_ed25519 && mount -t tmpfs -o size=${tmpfsMb}m disk ${DATA_DIR}`]);
  const piPub = (await pi.readFile('/etc/pullvault/id_ed25519.pub')).toString().trim().split(' ').slice(0, 2).join(' ');
  await pi.writeFile('/etc/pullvault/known_hosts', `${srv.address} ${srv.hostKey}\n`);
  const spec = serverSpec(srv, [{ path: '/srv/bench' }]);
  const config = labConfig([spec]);
  await provisionLabServer(srv, spec, piPub, pi.address!);
  const gen = (...a: string[]) => srv.exec([`${REPO}/node_modules/.bin/tsx`, `${REPO}/bench/gen-data.ts`, '/srv/bench', '--size-mb', String(sizeMb), '--files', String(files), ...a]);
  const t0 = Date.now();
  process.stdout.write((await gen()).stdout);
  console.log(`(generated in ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  await srv.exec(['chmod', '-R', 'a+rX', '/srv/bench']);
  if (linkMbit !== undefined) {
    await srv.exec(['tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', 'tbf', 'rate', `${linkMbit}mbit`, 'burst', '256kb', 'latency', '400ms']);
    console.log(`link: the server sends at most ${linkMbit} Mbit/s`);
  }
  await pi.writeFile(CONFIG, JSON.stringify(config));
  const built = await buildRuntime({ outFile: null });
  await pi.writeFile('/opt/pullvault.mjs', built.content, { mode: 0o755 });
  console.log(`runtime bundle: ${(built.bytes / 1024).toFixed(0)} KiB (build ${built.buildHash})`);

  // machine-wide CPU time (all cores, both ends of the transfer): whether the run had CPU to spare
  // (and steal: time the hypervisor gave this VM's CPUs to someone else, a sign of a noisy round)
  const cpuJiffies = () => {
    const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { busy: user! + nice! + system! + irq! + softirq!, steal: steal! };
  };
  const timed = async (argv: string[]) => {
    const cpu0 = cpuJiffies();
    const r = await pi.exec(['/usr/bin/time', '-f', 'TIME %e %M %U %S', ...argv], { okCodes: [0, 1, 4, 23, 24] });
    if (process.env.PV_VERBOSE) process.stdout.write(r.stderr);
    const m = /TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)/.exec(r.stderr)!;
    const phase = (re: RegExp) => Number(re.exec(r.stderr)?.[1] ?? NaN);
    const cpu1 = cpuJiffies();
    const perSecond = (j: number) => Math.round((j / 100 / Number(m[1])) * 100) / 100; // USER_HZ = 100
    return {
      cores: perSecond(cpu1.busy - cpu0.busy),
      steal: perSecond(cpu1.steal - cpu0.steal),
      seconds: Number(m[1]), rssMiB: Math.round(Number(m[2]) / 1024), cpu: Math.round((Number(m[3]) + Number(m[4])) * 100) / 100, code: r.code, stderr: r.stderr,
      rsyncS: phase(/rsync \S+: exit \d+ in ([\d.]+) s/), manifestS: phase(/manifest: .* in ([\d.]+) s/),
    };
  };
  const load = async () => (await pi.exec(['cat', '/proc/loadavg'])).stdout.split(' ')[0];
  const ep = endpointFor(config, spec);
  // Two baselines. "same depth": rsync into a tree laid out like the runtime's own
  // (<disk>/X/snapshots/<server>/<n>/files/<root>), --link-dest to the previous one. This is the
  // ratio the targets are about: what the runtime adds to the rsync it runs. "shallow":
  // <disk>/b/<n>, as a hand-written script might. They differ because rsync 3.5.0 (the
  // CVE-2026-53795 fix) resolves an absolute --link-dest one component at a time from "/", twice
  // per file: each directory level of the link-dest path costs every file a few syscalls.
  let bareN = 0;
  const bareDir = { deep: (n: number) => `${DATA_DIR}/bare/snapshots/srv/${n}/files/srv/bench`, shallow: (n: number) => `${DATA_DIR}/b/${n}` };
  // An initial pull starts on an empty disk, every time: with the other copies of the round left
  // in place, whichever ran later in a round was 10–20 % slower (measured; a pause between runs did
  // not change that), which no alternation of the order evens out among three runs.
  const emptyDisk = () => pi.exec(['sh', '-c', `rm -rf ${DATA_DIR}/bare ${DATA_DIR}/b ${DATA_DIR}/pullvault`]);
  const bareJob = (dir: (n: number) => string, n: number, fresh: boolean) => rsyncArgv(config, ep, { root: '/srv/bench', exclude: [], dest: dir(n), linkDest: fresh ? undefined : dir(n - 1) });
  const bare = async (fresh: boolean) => {
    const n = ++bareN;
    const run = async (dir: (n: number) => string) => {
      if (fresh) await emptyDisk();
      await pi.exec(['mkdir', '-p', dir(n)]);
      return timed(bareJob(dir, n, fresh));
    };
    const deep = await run(bareDir.deep);
    const shallow = await run(bareDir.shallow);
    // An initial pull's floor for any tool that records the sha256 of what it pulled: the same
    // rsync, then every file hashed by openssl (C, the CPU's SHA instructions, 2 processes) with
    // nothing else (no walk of its own, no start-up, no manifest written).
    const floor = fresh ? await floorRun(n) : undefined;
    return { deep, shallow, floor };
  };
  const floorRun = async (n: number) => {
    await emptyDisk();
    const dest = bareDir.deep(n);
    await pi.exec(['mkdir', '-p', dest]);
    const hashAll = 'd=$1; shift; "$@" && find "$d" -type f -print0 | xargs -0 -P2 -n 1000 openssl dgst -sha256 > /dev/null';
    return timed(['sh', '-c', hashAll, 'sh', dest, ...bareJob(bareDir.deep, n, true)]);
  };
  // As cron runs it (no terminal): --progress only forces the log lines the phase times come
  // from; rsync's own progress display stays off without a terminal, as under cron.
  // PV_CPU_PROF=DIR: a V8 CPU profile of every runtime run, copied out to DIR.
  const prof = process.env.PV_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/pv-prof'] : [];
  // with the Pi wrapper's heap flags: the bench measures what the Pi runs
  const runtime = () => timed(['node', ...NODE_HEAP_FLAGS, ...prof, '/opt/pullvault.mjs', 'run', '--config', CONFIG, '--no-prune', '--no-offsite', '--progress']);

  interface Row { run: string; runtime: number; rsync: number; ratio: number; floor: number; floorRatio: number; rsyncShallow: number; ratioShallow: number; cpu: number; rsyncCpu: number; rssMiB: number; rsyncRssMiB: number; rsyncS: number; manifestS: number; prehashed: number; cores: number; rsyncCores: number; steal: number; load: string }
  const rows: Row[] = [];
  const one = async (name: string, fresh: boolean) => {
    const l = await load();
    // alternate the order, so neither always runs on a warmer (or busier) machine
    let b: Awaited<ReturnType<typeof bare>>, r: Awaited<ReturnType<typeof timed>>;
    if (rows.length % 2 === 0) {
      b = await bare(fresh);
      if (fresh) await emptyDisk();
      r = await runtime();
    } else {
      if (fresh) await emptyDisk();
      r = await runtime();
      b = await bare(fresh);
    }
    if (r.code !== 0) throw new Error(`runtime exit ${r.code}: ${r.stderr}`);
    const ratio = (x: number, y: number) => Math.round((x / y) * 100) / 100;
    const prehashed = Number(/\((\d+) while rsync ran\)/.exec(r.stderr)?.[1] ?? NaN);
    rows.push({ run: name, runtime: r.seconds, rsync: b.deep.seconds, ratio: ratio(r.seconds, b.deep.seconds), floor: b.floor?.seconds ?? NaN, floorRatio: b.floor ? ratio(b.floor.seconds, b.deep.seconds) : NaN, rsyncShallow: b.shallow.seconds, ratioShallow: ratio(r.seconds, b.shallow.seconds), cpu: r.cpu, rsyncCpu: b.deep.cpu, rssMiB: r.rssMiB, rsyncRssMiB: Math.max(b.deep.rssMiB, b.shallow.rssMiB), rsyncS: r.rsyncS, manifestS: r.manifestS, prehashed, cores: r.cores, rsyncCores: b.deep.cores, steal: Math.max(r.steal, b.deep.steal), load: l });
    console.log(JSON.stringify(rows[rows.length - 1]));
    // the previous bare copies are no longer needed (keeps the tmpfs small)
    if (bareN > 1) await pi.exec(['rm', '-rf', bareDir.deep(bareN - 1), bareDir.shallow(bareN - 1)]);
    await new Promise((res) => setTimeout(res, 1100)); // next snapshot id
  };
  for (let i = 0; i < (kinds.has('initial') ? rounds : 1); i++) await one('initial', true);
  // the initial rounds left one tree at most: the runs that follow need all three to link to (untimed)
  if (kinds.has('no-change') || kinds.has('1%-changed')) {
    await emptyDisk();
    const n = ++bareN;
    for (const dir of [bareDir.deep, bareDir.shallow]) {
      await pi.exec(['mkdir', '-p', dir(n)]);
      await pi.exec(bareJob(dir, n, true), { okCodes: [0, 23, 24] });
    }
    const r = await runtime();
    if (r.code !== 0) throw new Error(`runtime exit ${r.code}: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 1100)); // next snapshot id
  }
  for (let i = 0; i < (kinds.has('no-change') ? rounds : 0); i++) await one('no-change', false);
  for (let i = 0; i < (kinds.has('1%-changed') ? rounds : 0); i++) {
    process.stdout.write((await gen('--mutate', '1')).stdout);
    await one('1%-changed', false);
  }
  if (process.env.PV_CPU_PROF) {
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(process.env.PV_CPU_PROF, { recursive: true });
    for (const f of (await pi.exec(['ls', '/tmp/pv-prof'])).stdout.split('\n').filter(Boolean)) writeFileSync(`${process.env.PV_CPU_PROF}/${f}`, await pi.readFile(`/tmp/pv-prof/${f}`));
  }
  const st = JSON.parse((await pi.exec(['sh', '-c', `cat ${DATA_DIR}/pullvault/snapshots/srv/latest/snapshot.json`])).stdout);
  console.log(`\nlast snapshot: ${st.stats.files} files, ${(st.stats.bytes / 1048576).toFixed(0)} MiB, hashed ${st.stats.hashedFiles} files / ${(st.stats.hashedBytes / 1048576).toFixed(1)} MiB`);
  console.log(`\n| run | rounds | runtime s | rsync s (same depth) | ratio | floor: rsync + sha256 s | floor ratio | rsync s (shallow) | ratio to shallow | CPU s runtime / rsync | runtime: rsync s / manifest s | files hashed while rsync ran | runtime peak RSS MiB | rsync peak RSS MiB | cores busy runtime / rsync | steal (cores) | load (1 min) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|`);
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  for (const kind of KINDS) {
    const rs = rows.filter((r) => r.run === kind);
    console.log(`| ${kind} | ${rs.length} | ${med(rs.map((r) => r.runtime))} | ${med(rs.map((r) => r.rsync))} | ${med(rs.map((r) => r.ratio))} | ${kind === 'initial' ? `${med(rs.map((r) => r.floor))} | ${med(rs.map((r) => r.floorRatio))}` : '– | –'} | ${med(rs.map((r) => r.rsyncShallow))} | ${med(rs.map((r) => r.ratioShallow))} | ${med(rs.map((r) => r.cpu))} / ${med(rs.map((r) => r.rsyncCpu))} | ${med(rs.map((r) => r.rsyncS))} / ${med(rs.map((r) => r.manifestS))} | ${med(rs.map((r) => r.prehashed))} | ${med(rs.map((r) => r.rssMiB))} | ${med(rs.map((r) => r.rsyncRssMiB))} | ${med(rs.map((r) => r.cores))} / ${med(rs.map((r) => r.rsyncCores))} | ${rs.map((r) => r.steal).join(' ')} | ${rs.map((r) => r.load).join(' ')} |`);
  }
  console.log('\n(ratio column: median of the per-round ratios)');
} finally {
  await Promise.all([pi.stop(), srv.stop()]);
  await net.stop();
}
