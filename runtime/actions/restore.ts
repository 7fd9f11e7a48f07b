// `pullvault restore` (the owner's machine): a server's tree as of a point, checked against its manifest.
import { parseAt } from '../offsite/chain.ts';
import { decryptorFrom, SOURCE_HELP, SOURCE_OPTIONS, targetFrom } from '../offsite/commands.ts';
import { restore } from '../offsite/restore.ts';
import { defineAction, UsageError } from './action.ts';

const log = (line: string) => process.stderr.write(line + '\n');

export default defineAction({
  name: 'restore',
  summary: 'offsite archives into a folder, checked against the manifest (see pullvault restore --help)',
  help: `usage: pullvault restore --server NAME --to DIR [--at TIME] [--path PATH] [--force] SOURCE KEY
${SOURCE_HELP}`,
  config: false,
  errorsAreFailures: true,
  options: {
    ...SOURCE_OPTIONS,
    server: { type: 'string' },
    to: { type: 'string' },
    at: { type: 'string' },
    path: { type: 'string' },
    force: { type: 'boolean' },
  },
  async main({ values: o, out }) {
    if (!o.server) throw new UsageError('--server is required');
    if (!o.to) throw new UsageError('--to is required');
    const target = await targetFrom(o);
    const r = await restore({
      target,
      server: o.server,
      to: o.to,
      at: o.at ? parseAt(o.at) : undefined,
      path: o.path,
      force: o.force === true,
      decryptor: await decryptorFrom(o),
      log,
      tmpDir: o.tmpdir,
    });
    if (r.problems.length) {
      out(`restore of ${o.server} as of ${r.snapshot} into ${o.to} does NOT match its manifest:\n${r.problems.map((p) => `  ${p}`).join('\n')}`);
      return 1;
    }
    out(`restored ${o.server} as of ${r.snapshot} into ${o.to}: ${r.entries} entries, ${r.bytes} bytes, all match the manifest`);
    return 0;
  },
});
