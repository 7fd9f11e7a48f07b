// Pre-flight: is dataDir the configured, unlocked, mounted backup disk with room to spare?
// Facts are gathered read-only (gatherDiskFacts); the verdict is pure (judgeDisk), so a refusal
// happens before anything is written and the SD card is never filled.
import { readFile, realpath, statfs } from 'node:fs/promises';
import { dataMapperName, minFreeMiB } from '../provision/inventory/defaults.ts';
import type { RuntimeConfig } from './config.ts';
import { mountAt, parseMountinfo, type MountEntry } from './mountinfo.ts';

export interface DiskFacts {
  dataDir: string;
  /** realpath of dataDir, or undefined when it does not exist */
  realDir?: string;
  mount?: MountEntry;
  rootMount?: MountEntry;
  /** device-mapper facts of the mount's device, when it is one */
  dm?: { name: string; uuid: string; suspended: boolean };
  freeMiB?: number;
}

export interface DiskRules {
  mapperName: string;
  minFreeMiB: number;
  allowUnmounted: boolean;
  allowUnencrypted: boolean;
}

export type DiskVerdict = { ok: true; freeMiB: number; notes: string[] } | { ok: false; reason: string };

export function judgeDisk(f: DiskFacts, r: DiskRules): DiskVerdict {
  const notes: string[] = [];
  if (!f.realDir) return { ok: false, reason: `data dir ${f.dataDir} does not exist (is the backup disk mounted?)` };
  if (r.allowUnmounted) {
    notes.push('allowUnmountedDataDir: mount checks skipped (lab only)');
  } else {
    const m = f.mount;
    if (!m) return { ok: false, reason: `data dir ${f.dataDir} is not a mountpoint: the backup disk is not mounted` };
    if (f.rootMount && m.dev === f.rootMount.dev)
      return { ok: false, reason: `data dir ${f.dataDir} is on the root filesystem (${m.dev}), not the backup disk` };
    if (!m.options.includes('rw')) return { ok: false, reason: `data dir ${f.dataDir} is mounted read-only` };
    if (f.dm) {
      if (!f.dm.uuid.startsWith('CRYPT-'))
        return { ok: false, reason: `data dir ${f.dataDir} is on device-mapper ${f.dm.name}, which is not dm-crypt` };
      if (f.dm.suspended) return { ok: false, reason: `dm-crypt device ${f.dm.name} is suspended (locked)` };
      if (f.dm.name !== r.mapperName && !r.allowUnencrypted)
        return { ok: false, reason: `data dir ${f.dataDir} is on ${f.dm.name}, not the configured /dev/mapper/${r.mapperName}` };
    } else if (!r.allowUnencrypted) {
      return {
        ok: false,
        reason: `data dir ${f.dataDir} is mounted from ${m.source} (${m.fsType}), not the unlocked dm-crypt volume /dev/mapper/${r.mapperName}`,
      };
    } else {
      notes.push(`allowUnencryptedDataDir: accepting ${m.fsType} ${m.source} (lab only)`);
    }
  }
  if (f.freeMiB === undefined) return { ok: false, reason: `cannot read free space of ${f.dataDir}` };
  if (f.freeMiB < r.minFreeMiB)
    return { ok: false, reason: `only ${f.freeMiB} MiB free on ${f.dataDir}; at least ${r.minFreeMiB} MiB required` };
  return { ok: true, freeMiB: f.freeMiB, notes };
}

export function diskRules(config: RuntimeConfig): DiskRules {
  return {
    mapperName: dataMapperName(config.inventory.pi),
    minFreeMiB: minFreeMiB(config.inventory.pi),
    allowUnmounted: config.allowUnmountedDataDir === true,
    allowUnencrypted: config.allowUnencryptedDataDir === true,
  };
}

const readText = (p: string) => readFile(p, 'utf8').then((s) => s.trim(), () => undefined);

export async function gatherDiskFacts(dataDir: string): Promise<DiskFacts> {
  const f: DiskFacts = { dataDir };
  f.realDir = await realpath(dataDir).catch(() => undefined);
  if (!f.realDir) return f;
  const mounts = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
  f.mount = mountAt(mounts, f.realDir);
  f.rootMount = mountAt(mounts, '/');
  if (f.mount) {
    const sys = `/sys/dev/block/${f.mount.dev}/dm`;
    const uuid = await readText(`${sys}/uuid`);
    if (uuid !== undefined) {
      f.dm = { uuid, name: (await readText(`${sys}/name`)) ?? '?', suspended: (await readText(`${sys}/suspended`)) === '1' };
    }
  }
  try {
    const s = await statfs(f.realDir);
    f.freeMiB = Math.floor((s.bavail * s.bsize) / 1048576);
  } catch {
    /* judged as unreadable */
  }
  return f;
}

export async function preflight(config: RuntimeConfig): Promise<DiskVerdict> {
  return judgeDisk(await gatherDiskFacts(config.paths.dataDir), diskRules(config));
}
