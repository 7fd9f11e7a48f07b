// Benchmark: `pullvault run` against bare rsync over the same SSH transport, in lab hosts.
//   sudo npx tsx bench/pull.ts [--size-mb 2048] [--files 50000] [--rounds 3]
// Runs: initial pull, no-change run, 1%-changed run, each `--rounds` times. Each: wall time of
// the runtime (bundled exactly as `make build` does, run as `node pullvault.mjs run`) and of the
// very same rsync command line (runtime/pull/commands.ts: same ssh options, same -aHAX
// --numeric-ids --delete, --link-dest to its own previous copy), the ratio, peak RSS (GNU time
// %M: max RSS of the process or any of its children), CPU seconds (user+sys of the process and
// its children: rsync, ssh — far less sensitive to a busy machine than wall time), the runtime's
// phase times (its own log lines: rsync, manifest) and the load average. Within a round the two
// alternate which goes first. Medians per kind at the end.
// The offsite phase is not part of this benchmark (--no-offsite; see bench/offsite.ts).
import { parseArgs } from 'node:util';
import { buildRuntime } from '../provision/build-runtime.ts';
import { endpointFor, rsyncArgv } from '../runtime/pull/commands.ts';
import { startHost, startLabNetwork } from '../provision/lab/index.ts';
import { CONFIG, DATA_DIR, labConfig, provisionLabServer, REPO, serverSpec } from '../test/integration/pull-lab.ts';

const { values: o } = parseArgs({
  options: { 'size-mb': { type: 'string', default: '2048' }, files: { type: 'string', default: '50000' }, rounds: { type: 'string', default: '3' } },
});
const sizeMb = Number(o['size-mb']);
const files = Number(o.files);
const rounds = Number(o.rounds);

const net = await startLabNetwork({ subnet: '10.219.0.0/24' });
const [pi, srv] = await Promise.all([startHost({ name: 'pi', network: net }), startHost({ name: 'srv', network: net })]);
try {
  const tmpfsMb = Math.ceil(sizeMb * 2.6) + 512;
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
  await pi.writeFile(CONFIG, JSON.stringify(config));
  const built = await buildRuntime({ outFile: null });
  await pi.writeFile('/opt/pullvault.mjs', built.content, { mode: 0o755 });
  console.log(`runtime bundle: ${(built.bytes / 1024).toFixed(0)} KiB (build ${built.buildHash})`);

  const timed = async (argv: string[]) => {
    const r = await pi.exec(['/usr/bin/time', '-f', 'TIME %e %M %U %S', ...argv], { okCodes: [0, 1, 4, 23, 24] });
    if (process.env.PV_VERBOSE) process.stdout.write(r.stderr);
    const m = /TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)/.exec(r.stderr)!;
    const phase = (re: RegExp) => Number(re.exec(r.stderr)?.[1] ?? NaN);
    return {
      seconds: Number(m[1]), rssMiB: Math.round(Number(m[2]) / 1024), cpu: Math.round((Number(m[3]) + Number(m[4])) * 100) / 100, code: r.code, stderr: r.stderr,
      rsyncS: phase(/rsync \S+: exit \d+ in ([\d.]+) s/), manifestS: phase(/manifest: .* in ([\d.]+) s/),
    };
  };
  const load = async () => (await pi.exec(['cat', '/proc/loadavg'])).stdout.split(' ')[0];
  const ep = endpointFor(config, spec);
  let bareN = 0;
  const bare = (fresh: boolean) => {
    bareN++;
    return timed(rsyncArgv(config, ep, { root: '/srv/bench', exclude: [], dest: `${DATA_DIR}/bare/${bareN}`, linkDest: fresh ? undefined : `${DATA_DIR}/bare/${bareN - 1}` }));
  };
  const runtime = () => timed(['node', '/opt/pullvault.mjs', 'run', '--config', CONFIG, '--no-prune', '--no-offsite', '--progress']);

  interface Row { run: string; runtime: number; rsync: number; ratio: number; cpu: number; rsyncCpu: number; rssMiB: number; rsyncRssMiB: number; rsyncS: number; manifestS: number; load: string }
  const rows: Row[] = [];
  const one = async (name: string, fresh: boolean) => {
    if (fresh) await pi.exec(['sh', '-c', `rm -rf ${DATA_DIR}/bare ${DATA_DIR}/pullvault`]);
    await pi.exec(['mkdir', '-p', `${DATA_DIR}/bare`]);
    const l = await load();
    // alternate the order, so neither always runs on a warmer (or busier) machine
    let b: Awaited<ReturnType<typeof timed>>, r: Awaited<ReturnType<typeof timed>>;
    if (rows.length % 2 === 0) {
      b = await bare(fresh);
      r = await runtime();
    } else {
      r = await runtime();
      b = await bare(fresh);
    }
    if (r.code !== 0) throw new Error(`runtime exit ${r.code}: ${r.stderr}`);
    rows.push({ run: name, runtime: r.seconds, rsync: b.seconds, ratio: Math.round((r.seconds / b.seconds) * 100) / 100, cpu: r.cpu, rsyncCpu: b.cpu, rssMiB: r.rssMiB, rsyncRssMiB: b.rssMiB, rsyncS: r.rsyncS, manifestS: r.manifestS, load: l });
    console.log(JSON.stringify(rows[rows.length - 1]));
    // the previous bare copy is no longer needed (keeps the tmpfs small)
    if (bareN > 1) await pi.exec(['rm', '-rf', `${DATA_DIR}/bare/${bareN - 1}`]);
    await new Promise((res) => setTimeout(res, 1100)); // next snapshot id
  };
  for (let i = 0; i < rounds; i++) await one('initial', true);
  for (let i = 0; i < rounds; i++) await one('no-change', false);
  for (let i = 0; i < rounds; i++) {
    process.stdout.write((await gen('--mutate', '1')).stdout);
    await one('1%-changed', false);
  }
  const st = JSON.parse((await pi.exec(['sh', '-c', `cat ${DATA_DIR}/pullvault/snapshots/srv/latest/snapshot.json`])).stdout);
  console.log(`\nlast snapshot: ${st.stats.files} files, ${(st.stats.bytes / 1048576).toFixed(0)} MiB, hashed ${st.stats.hashedFiles} files / ${(st.stats.hashedBytes / 1048576).toFixed(1)} MiB`);
  console.log(`\n| run | rounds | runtime s | rsync s | ratio | CPU s runtime / rsync | runtime: rsync s / manifest s | runtime peak RSS MiB | rsync peak RSS MiB | load (1 min) |\n|---|---|---|---|---|---|---|---|---|---|`);
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  for (const kind of ['initial', 'no-change', '1%-changed']) {
    const rs = rows.filter((r) => r.run === kind);
    console.log(`| ${kind} | ${rs.length} | ${med(rs.map((r) => r.runtime))} | ${med(rs.map((r) => r.rsync))} | ${med(rs.map((r) => r.ratio))} | ${med(rs.map((r) => r.cpu))} / ${med(rs.map((r) => r.rsyncCpu))} | ${med(rs.map((r) => r.rsyncS))} / ${med(rs.map((r) => r.manifestS))} | ${med(rs.map((r) => r.rssMiB))} | ${med(rs.map((r) => r.rsyncRssMiB))} | ${rs.map((r) => r.load).join(' ')} |`);
  }
  console.log('\n(ratio column: median of the per-round ratios)');
} finally {
  await Promise.all([pi.stop(), srv.stop()]);
  await net.stop();
}
