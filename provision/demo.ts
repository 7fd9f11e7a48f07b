// `sudo make demo`: the whole system on this machine, in disposable lab hosts. See provision/demo/flow.ts.
import { defineCommand, UsageError } from './cli-common.ts';
import { runDemo } from './demo/flow.ts';
import { renderReport } from './demo/report.ts';

const HELP = `usage: sudo make demo [ARGS="--target dir | --keep"]

Shows pullvault end to end on this machine, in disposable isolated lab hosts (nothing on the
machine changes apart from installed packages): two servers with generated data (homes of
several users, web files, MariaDB and PostgreSQL), a "pi", and a local S3 endpoint (moto).
It provisions AWS, both servers and the runtime on the pi, runs two backup cycles as cron
would with changes in between, tries what a thief with the Pi's key would try, restores a
point in time on the owner's side and checks it against the source. Then tears it all down.

options:
      --target s3|dir   offsite target: the local S3 endpoint (default) or a folder on the pi
      --keep            leave the lab running and print how to look in (Ctrl-C ends it)
  -h, --help            this text`;

export const command = defineCommand({
  help: HELP,
  options: { target: { type: 'string', default: 's3' }, keep: { type: 'boolean', default: false } },
  inventory: false,
  async run({ values }) {
    if (values.target !== 's3' && values.target !== 'dir') throw new UsageError(`--target: "${values.target}" is not s3 or dir`);
    // the AWS SDK's notice about Node versions of 2027 is not news for someone watching a demo
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const t0 = Date.now();
    const log = (l: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${l}`);
    const report = await runDemo({ target: values.target, keep: values.keep, log });
    process.stdout.write(renderReport(report));
    const failed =
      report.probes.some((p) => p.refused !== p.expectRefused) ||
      report.cycles.some((c) => c.exitCode !== 0) ||
      (report.restore && (report.restore.mismatches.length || report.restore.manifestProblems.length || report.restore.verifyProblems.length));
    if (report.keep) {
      console.log('\nThe lab is running. Look in:');
      for (const l of report.keep.howTo) console.log(`  ${l}`);
      console.log('\nPress Ctrl-C to tear it down.');
      await new Promise<void>((res) => {
        process.once('SIGINT', res);
        process.once('SIGTERM', res);
      });
      await report.keep.stop();
      console.log('lab stopped.');
    } else console.log('The lab is torn down; this machine is as it was (apart from installed packages).');
    return failed ? 1 : 0;
  },
});
