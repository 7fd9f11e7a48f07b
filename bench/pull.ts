// Benchmark: `pullvault run` against bare rsync over the same SSH transport, in lab hosts.
//   sudo npx tsx bench/pull.ts [--size-mb 2048] [--files 50000]
// Runs: initial pull, no-change run, 1%-changed run. Each: wall time of the runtime (bundled
// with esbuild, as on the Pi) and of the very same rsync command line (runtime/pull/commands.ts:
// same ssh options, same -aHAX --numeric-ids --delete, --link-dest to its own previous copy),
// the ratio, and peak RSS (GNU time %M: max RSS of the process or any of its children).
import { parseArgs } from 'node:util';
import { endpointFor, rsyncArgv } from '../runtime/pull/commands.ts';
import { startHost, startLabNetwork } from '../test/lab/index.ts';
import { CONFIG, DATA_DIR, labConfig, provisionLabServer, REPO, serverSpec } from '../test/integration/pull-lab.ts';

const { values: o } = parseArgs({ options: { 'size-mb': { type: 'string', default: '2048' }, files: { type: 'string', default: '50000' } } });
const sizeMb = Number(o['size-mb']);
const files = Number(o.files);

const net = await startLabNetwork({ subnet: '10.219.0.0/24' });
const [pi, srv] = await Promise.all([startHost({ name: 'pi', network: net }), startHost({ name: 'srv', network: net })]);
try {
  const tmpfsMb = Math.ceil(sizeMb * 2.6) + 512;
  await pi.exec(['sh', '-c', `mkdir -p /etc/pullvault ${DATA_DIR} && ssh-keygen -q -t ed25519 -N '' -f /etc/pullvault/id_ed25519 && mount -t tmpfs -o size=${tmpfsMb}m disk ${DATA_DIR}`]);
  const piPub = (await pi.readFile('/etc/pullvault/id_ed25519.pub')).toString().trim().split(' ').slice(0, 2).join(' ');
  await provisionLabServer(srv, piPub, pi.address!, false);
  await pi.writeFile('/etc/pullvault/known_hosts', `${srv.address} ${srv.hostKey}\n`);
  const gen = (...a: string[]) => srv.exec([`${REPO}/node_modules/.bin/tsx`, `${REPO}/bench/gen-data.ts`, '/srv/bench', '--size-mb', String(sizeMb), '--files', String(files), ...a]);
  const t0 = Date.now();
  process.stdout.write((await gen()).stdout);
  console.log(`(generated in ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  await srv.exec(['chmod', '-R', 'a+rX', '/srv/bench']);
  const spec = serverSpec(srv, [{ path: '/srv/bench' }]);
  const config = labConfig([spec]);
  await pi.writeFile(CONFIG, JSON.stringify(config));
  await pi.exec([`${REPO}/node_modules/.bin/esbuild`, `${REPO}/runtime/main.ts`, '--bundle', '--platform=node', '--format=esm', '--target=node18', '--log-level=warning', '--outfile=/opt/pullvault.mjs']);

  const timed = async (argv: string[]) => {
    const r = await pi.exec(['/usr/bin/time', '-f', 'TIME %e %M', ...argv], { okCodes: [0, 4, 23, 24] });
    if (process.env.PV_VERBOSE) process.stdout.write(r.stderr);
    const m = /TIME ([\d.]+) (\d+)/.exec(r.stderr)!;
    return { seconds: Number(m[1]), rssMiB: Math.round(Number(m[2]) / 1024), code: r.code };
  };
  const ep = endpointFor(config, spec);
  let bareN = 0;
  const bare = () => {
    bareN++;
    return timed(rsyncArgv(config, ep, { root: '/srv/bench', exclude: [], dest: `${DATA_DIR}/bare/${bareN}`, linkDest: bareN > 1 ? `${DATA_DIR}/bare/${bareN - 1}` : undefined }));
  };
  const runtime = () => timed(['node', '/opt/pullvault.mjs', 'run', '--config', CONFIG, '--no-prune', ...(process.env.PV_VERBOSE ? ['--progress'] : [])]);

  const rows: { run: string; runtime: number; rsync: number; ratio: number; rssMiB: number; rsyncRssMiB: number }[] = [];
  const one = async (name: string) => {
    await pi.exec(['mkdir', '-p', `${DATA_DIR}/bare`]);
    const b = await bare();
    const r = await runtime();
    if (r.code !== 0) throw new Error(`runtime exit ${r.code}`);
    rows.push({ run: name, runtime: r.seconds, rsync: b.seconds, ratio: Math.round((r.seconds / b.seconds) * 100) / 100, rssMiB: r.rssMiB, rsyncRssMiB: b.rssMiB });
    console.log(JSON.stringify(rows[rows.length - 1]));
    await new Promise((res) => setTimeout(res, 1100)); // next snapshot id
  };
  await one('initial');
  await one('no-change');
  process.stdout.write((await gen('--mutate', '1')).stdout);
  await one('1%-changed');
  const st = JSON.parse((await pi.exec(['sh', '-c', `cat ${DATA_DIR}/pullvault/snapshots/srv/latest/snapshot.json`])).stdout);
  console.log(`\nlast snapshot: ${st.stats.files} files, ${(st.stats.bytes / 1048576).toFixed(0)} MiB, hashed ${st.stats.hashedFiles} files / ${(st.stats.hashedBytes / 1048576).toFixed(1)} MiB`);
  console.log(`\n| run | runtime s | rsync s | ratio | runtime peak RSS MiB | rsync peak RSS MiB |\n|---|---|---|---|---|---|`);
  for (const r of rows) console.log(`| ${r.run} | ${r.runtime} | ${r.rsync} | ${r.ratio} | ${r.rssMiB} | ${r.rsyncRssMiB} |`);
} finally {
  await Promise.all([pi.stop(), srv.stop()]);
  await net.stop();
}
