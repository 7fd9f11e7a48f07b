// Local retention applied: plan with retention.ts, then delete (or, dry-run, only report).
import { readlink, rename, rm } from 'node:fs/promises';
import type { RuntimeConfig } from './config.ts';
import { vaultLayout } from './manifest-format.ts';
import { pinnedSnapshots } from './offsite-pins.ts';
import { listSnapshots } from './pull/snapshot.ts';
import { planRetention, type RetentionDecision } from './retention.ts';

export interface PruneReport {
  server: string;
  decisions: RetentionDecision[];
  deleted: string[];
}

export async function prune(config: RuntimeConfig, opts: { now: Date; dryRun: boolean; log: (s: string) => void }): Promise<PruneReport[]> {
  const L = vaultLayout(config.paths.dataDir);
  const reports: PruneReport[] = [];
  const pins = await pinnedSnapshots(config);
  for (const server of config.inventory.servers) {
    const snaps = await listSnapshots(config.paths.dataDir, server.name);
    const decisions = planRetention(
      snaps.map((s) => ({ id: s.id, partial: s.info ? s.info.partial : true })),
      config.inventory.retention,
      opts.now,
    ).map((d) => (d.keep || !pins.has(`${server.name}/${d.id}`) ? d : { ...d, keep: true, reason: pins.get(`${server.name}/${d.id}`)! }));
    const latest = await readlink(L.latest(server.name)).catch(() => undefined);
    const deleted: string[] = [];
    for (const d of decisions) {
      if (d.keep) continue;
      if (d.id === latest) continue; // belt and braces: planRetention keeps the newest already
      if (opts.dryRun) {
        opts.log(`would delete ${server.name}/${d.id} (${d.reason})`);
        continue;
      }
      // rename first so a crash mid-delete never leaves a half snapshot under its id
      const dir = L.snapshotDir(server.name, d.id);
      const doomed = `${dir}.deleting`;
      await rename(dir, doomed);
      await rm(doomed, { recursive: true, force: true });
      deleted.push(d.id);
      opts.log(`deleted ${server.name}/${d.id} (${d.reason})`);
    }
    reports.push({ server: server.name, decisions, deleted });
  }
  return reports;
}
