// `pullvault report`: writes the report page (render.ts) from the Pi's own history (on the Pi) or
// from the store's manifests (on the owner's machine, with the restore credentials and a key).
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { historyFile, readHistory } from '../../history.ts';
import { UsageError, type OptionValues, type Options } from '../../../lib/cli/args.ts';
import { decryptorFrom, readSourceConfig, SOURCE_OPTIONS, targetFrom } from '../../offsite/commands.ts';
import { fetchDecrypt, listServer, readHeader } from '../../offsite/restore.ts';
import { readUploads, uploadsFile } from '../../offsite/uploads.ts';
import { writeFileAtomic } from '../../state.ts';
import type { WatchReport } from '../watch.ts';
import { fromPiHistory, fromStore, type StoredArchive } from './data.ts';
import { renderReportHtml } from './render.ts';
import { chartAssets } from '../../../lib/chart-assets.ts';

export const REPORT_HELP = `usage: pullvault report --config FILE [--out FILE] [--from pi|store] [--watch FILE] [SOURCE KEY]

Writes one self-contained HTML page (no server, nothing loaded from the network; the chart library
uPlot is inside it) with, per server over time: snapshot size and file count, bytes pulled and pull
duration, archives uploaded offsite (full and incremental), failed and partial pulls; the runs
(duration, outcome) and the watchdog's latest verdicts when known.

  --config FILE     the Pi's config.json (default source: the Pi's run history next to its run record,
                    and its upload records) or inventory.json (default source: the store)
  --from pi|store   pi: the history on this Pi; store: every manifest in the offsite store
                    (SOURCE and KEY as for pullvault restore: --target, --credentials, --gpg-homedir, --key …)
  --watch FILE      the watchdog's verdicts (pullvault watch --save FILE) to show on the page
  --out FILE        default pullvault-report.html
  --title TEXT      the page's title`;

export const REPORT_OPTIONS = {
  ...SOURCE_OPTIONS,
  out: { type: 'string' },
  from: { type: 'string' },
  watch: { type: 'string' },
  title: { type: 'string' },
} as const satisfies Options;

/** `pullvault report` with its parsed options: writes the page, 0. */
export async function report(o: OptionValues<typeof REPORT_OPTIONS>, err: (s: string) => void): Promise<number> {
  if (!o.config) throw new UsageError('--config FILE is required');
  const source = await readSourceConfig(o.config);
  const { inventory } = source;
  const isPi = source.config !== undefined;
  const from = o.from ?? (isPi ? 'pi' : 'store');
  if (from !== 'pi' && from !== 'store') throw new UsageError(`--from: pi or store, not ${from}`);
  if (from === 'pi' && !isPi) throw new UsageError(`--from pi needs the Pi's config.json (paths of the run record and the backup disk); ${o.config} is an inventory`);
  const watch = o.watch ? await readWatchReport(o.watch) : undefined;
  const servers = inventory.servers.map((s) => s.name);
  const title = o.title ?? `pullvault: ${inventory.pi?.name ?? 'backups'}`;
  const now = new Date();
  let data;
  if (from === 'pi') {
    const config = source.config!;
    const history = await readHistory(historyFile(config));
    const uploads = await readUploads(uploadsFile(config.paths.dataDir)).catch(() => []);
    data = fromPiHistory({ title, generatedAt: now, servers, history, uploads, watch });
    err(`report: ${history.length} run(s) from ${historyFile(config)}, ${uploads.length} upload(s)`);
  } else {
      const target = await targetFrom(o, source);
    const archives: StoredArchive[] = [];
    const work = await mkdtemp(join(tmpdir(), 'pullvault-report-'));
    try {
      const decryptor = await decryptorFrom(o);
      for (const server of servers) {
        const listing = await listServer(target, server);
        for (const [i, a] of listing.archives.entries()) {
          const f = join(work, `m${i}`);
          let info;
          try {
            await fetchDecrypt(target, a.manifestKey, f, decryptor);
            info = (await readHeader(f)).info;
          } catch (e) {
            err(`report: ${a.manifestKey}: ${(e as Error).message.split('\n')[0]} (its figures are left out)`);
          } finally {
            await rm(f, { force: true });
          }
          archives.push({ server, snapshot: a.snapshot, kind: a.kind, bytes: a.size, ...(info ? { info } : {}) });
        }
        err(`report: ${server}: ${listing.archives.length} archive(s)`);
      }
    } finally {
      target.close();
      await rm(work, { recursive: true, force: true });
    }
    data = fromStore({ title, generatedAt: now, store: target.label, servers, archives, watch });
  }
  const out = o.out ?? 'pullvault-report.html';
  await writeFileAtomic(out, renderReportHtml(data, chartAssets()));
  process.stdout.write(`wrote ${out}\n`);
  return 0;
}

/** `pullvault watch --save FILE`'s output, or a usage error naming the file. */
async function readWatchReport(file: string): Promise<WatchReport> {
  let w: WatchReport;
  try {
    w = JSON.parse(await readFile(file, 'utf8')) as WatchReport;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`--watch ${file}: ${code ? `cannot read: ${code}` : `not valid JSON: ${(e as Error).message}`}`);
  }
  if (w?.pullvault !== 'watch') throw new UsageError(`--watch ${file}: not the output of pullvault watch --save`);
  return w;
}
