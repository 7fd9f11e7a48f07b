// `pullvault list`: the local snapshots of each server.
import { EXIT } from '../exit-codes.ts';
import { listSnapshots } from '../pull/snapshot.ts';
import { formatAge, formatBytes } from '../status.ts';
import { defineAction } from './action.ts';

export default defineAction({
  name: 'list',
  summary: 'local snapshots per server   [--server NAME] [--json]',
  help: 'usage: pullvault list [--config FILE] [--server NAME]… [--json]',
  config: true,
  options: { server: { type: 'string', multiple: true }, json: { type: 'boolean' } },
  async main({ values: o, config, out }) {
    const now = Date.now();
    const all: Record<string, unknown[]> = {};
    for (const name of o.server ?? config.inventory.servers.map((s) => s.name)) {
      const snaps = await listSnapshots(config.paths.dataDir, name);
      all[name] = snaps.map((s) => ({ id: s.id, partial: s.info?.partial ?? true, files: s.info?.stats.files, bytes: s.info?.stats.bytes, finishedAt: s.info?.finishedAt }));
      if (o.json) continue;
      out(`${name}: ${snaps.length} snapshot(s)`);
      for (const s of snaps.reverse()) {
        const i = s.info;
        out(`  ${s.id}  ${i ? `${formatAge(now - Date.parse(i.finishedAt)).padStart(6)} ago  ${String(i.stats.files).padStart(8)} files  ${formatBytes(i.stats.bytes).padStart(10)}${i.partial ? '  PARTIAL' : ''}` : '(no snapshot.json)'}`);
      }
    }
    if (o.json) out(JSON.stringify(all, null, 2));
    return EXIT.OK;
  },
});
