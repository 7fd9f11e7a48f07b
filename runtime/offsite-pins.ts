// Which snapshots local retention must keep for the offsite phase, whatever its rules say: the
// ones a running upload reads (listed in the offsite lock by its holder, which may be another
// run: the pull lock is released before the upload) and each server's last uploaded snapshot
// (the base the next incremental is computed against).
import type { RuntimeConfig } from '../contract/runtime-config.ts';
import { liveHolder } from './lock.ts';
import { vaultLayout } from '../contract/disk-layout.ts';
import { readUploads, uploadsFile } from './offsite/uploads.ts';

export const offsiteLockFile = (config: RuntimeConfig) => vaultLayout(config.paths.dataDir).offsiteLock;

/** Pure: the offsite lock's note for the snapshots a run is about to send. */
export function pinLines(snapshots: { server: string; id: string }[]): string[] {
  return snapshots.map((s) => `${s.server}/${s.id}`);
}

/** Pure: "server/id" → why it is kept, from the live holder's note and the upload records. */
export function pinsFrom(holder: { pid: number; note: string[] } | undefined, records: { server: string; snapshot: string; uploadedAt: string }[]): Map<string, string> {
  const pins = new Map<string, string>();
  const last = new Map<string, { snapshot: string; uploadedAt: string }>();
  for (const r of records) if (!last.has(r.server) || last.get(r.server)!.uploadedAt <= r.uploadedAt) last.set(r.server, r);
  for (const [server, r] of last) pins.set(`${server}/${r.snapshot}`, 'last uploaded (base of the next incremental)');
  for (const line of holder?.note ?? []) pins.set(line, `being uploaded (pid ${holder!.pid})`);
  return pins;
}

export async function pinnedSnapshots(config: RuntimeConfig): Promise<Map<string, string>> {
  const records = await readUploads(uploadsFile(config.paths.dataDir)).catch(() => []);
  return pinsFrom(await liveHolder(offsiteLockFile(config)), records);
}
