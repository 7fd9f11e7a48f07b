// Pull one server into a new snapshot: <id>.partial → rsync per root (--link-dest to the
// previous snapshot) → dumps → manifest → snapshot.json → atomic rename → `latest`.
// A failure before the rename leaves the .partial for the next run to reuse and clean up.
import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, readlink, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import type { ServerSpec } from '../../contract/inventory-schema.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { MANIFEST_VERSION, SNAPSHOT_ID_RE, vaultLayout, type SnapshotInfo } from '../../contract/disk-layout.ts';
import { endpointFor, filesDirFor, rsyncArgv } from './commands.ts';
import { dumpDatabases } from './dumps.ts';
import { buildManifest, INFO_FILE } from './manifest.ts';
import { PreHasher } from './prehash.ts';
import { stderrTail } from '../../lib/proc/index.ts';
import { pull } from '../proc.ts';
import { describeRsyncExit, RSYNC_PARTIAL_CODES, unreadablePaths } from './rsync-output.ts';

export interface PullResult {
  server: string;
  ok: boolean;
  /** present when a snapshot was made (also when ok is false because a dump failed) */
  snapshot?: { id: string; dir: string; info: SnapshotInfo };
  error?: string;
}

export interface PullOptions {
  /** snapshot id for this run (one per run, shared by all servers) */
  id: string;
  log: (line: string) => void;
  /** show rsync's progress (terminal) */
  progress?: boolean;
  /** called with rsync's progress output chunks */
  onProgress?: (chunk: string) => void;
}

class PullError extends Error {}

export interface SnapshotListing {
  id: string;
  dir: string;
  info?: SnapshotInfo;
}

/** Complete snapshots of a server (with their snapshot.json when readable), oldest first. */
export async function listSnapshots(dataDir: string, server: string): Promise<SnapshotListing[]> {
  const L = vaultLayout(dataDir);
  const names = await readdir(L.serverDir(server)).catch(() => [] as string[]);
  const out: SnapshotListing[] = [];
  for (const id of names.filter((n) => SNAPSHOT_ID_RE.test(n)).sort()) {
    const dir = L.snapshotDir(server, id);
    const info = await readFile(`${dir}/${INFO_FILE}`, 'utf8').then((s) => JSON.parse(s) as SnapshotInfo, () => undefined);
    out.push({ id, dir, info });
  }
  return out;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  await fh.sync().catch(() => {});
  await fh.close();
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/** Point `latest` at id atomically (a relative symlink, renamed over the old one). */
async function setLatest(serverDir: string, id: string): Promise<void> {
  const tmp = `${serverDir}/.latest.tmp`;
  await unlink(tmp).catch(() => {});
  await symlink(id, tmp);
  await rename(tmp, `${serverDir}/latest`);
}

/** The previous snapshot to link against: `latest` if it resolves, else the newest listed with a snapshot.json. */
export async function previousSnapshot(dataDir: string, server: string): Promise<SnapshotListing | undefined> {
  const L = vaultLayout(dataDir);
  const target = await readlink(L.latest(server)).catch(() => undefined);
  const all = await listSnapshots(dataDir, server);
  const viaLatest = target ? all.find((s) => s.id === target && s.info) : undefined;
  return viaLatest ?? [...all].reverse().find((s) => s.info);
}

/**
 * A killed run's `.partial` dirs: the newest becomes this run's partial (rsync brings it up to
 * date, keeping what was already transferred); older ones are removed.
 */
async function adoptPartials(serverDir: string, partial: string, log: (s: string) => void): Promise<void> {
  const all = await readdir(serverDir);
  // a killed manifest build's external sort (walk.ts) leaves its files next to the partial
  for (const n of all.filter((x) => x.startsWith('.sort-'))) await rm(`${serverDir}/${n}`, { recursive: true, force: true });
  const names = all.filter((n) => n.endsWith('.partial')).sort();
  const newest = names.pop();
  for (const n of names) {
    log(`  removing stale ${n}`);
    await rm(`${serverDir}/${n}`, { recursive: true, force: true });
  }
  if (newest && `${serverDir}/${newest}` !== partial) {
    log(`  resuming from interrupted ${newest}`);
    await rename(`${serverDir}/${newest}`, partial);
  }
  // what an interrupted run wrote after rsync is redone
  await rm(`${partial}/dumps`, { recursive: true, force: true });
  await rm(`${partial}/manifest.jsonl`, { force: true });
  await rm(`${partial}/${INFO_FILE}`, { force: true });
}

export async function pullServer(config: RuntimeConfig, server: ServerSpec, opts: PullOptions): Promise<PullResult> {
  const { log } = opts;
  const L = vaultLayout(config.paths.dataDir);
  const serverDir = L.serverDir(server.name);
  const startedAt = new Date();
  const finalDir = L.snapshotDir(server.name, opts.id);
  const partial = L.partialDir(server.name, opts.id);
  // hashes new files while rsync runs (rsync lists them); on a terminal rsync's stdout shows progress instead
  const prehash = opts.progress ? undefined : new PreHasher({ sortDir: serverDir });
  try {
    await mkdir(serverDir, { recursive: true, mode: 0o700 });
    if (await exists(finalDir)) throw new PullError(`snapshot ${opts.id} already exists`);
    const prev = await previousSnapshot(config.paths.dataDir, server.name);
    await adoptPartials(serverDir, partial, log);
    await mkdir(`${partial}/files`, { recursive: true, mode: 0o700 });

    const ep = endpointFor(config, server);
    const unreadable: string[] = [];
    let partialFlag = false;
    for (const p of server.paths) {
      const dest = filesDirFor(partial, p.path);
      await mkdir(dest, { recursive: true });
      const prevRoot = prev ? filesDirFor(prev.dir, p.path) : undefined;
      const linkDest = prevRoot && (await exists(prevRoot)) ? prevRoot : undefined;
      const argv = rsyncArgv(config, ep, { root: p.path, exclude: p.exclude ?? [], dest, linkDest, progress: opts.progress, listNames: !!prehash });
      log(`  rsync ${p.path}${linkDest ? ` (link-dest ${prev!.id})` : ''}`);
      const rsync = pull.start(argv);
      if (prehash) {
        const names = prehash.feed(dest);
        rsync.child.stdout!.on('data', (b: Buffer) => names.write(b));
        rsync.child.stdout!.on('end', () => names.end());
      } else if (opts.onProgress) rsync.child.stdout!.on('data', (b: Buffer) => opts.onProgress!(b.toString()));
      else rsync.child.stdout!.resume();
      const tR = Date.now();
      const r = await rsync.done;
      log(`  rsync ${p.path}: exit ${r.code} in ${((Date.now() - tR) / 1000).toFixed(1)} s`);
      if (r.code === 0) continue;
      if ((RSYNC_PARTIAL_CODES as readonly number[]).includes(r.code)) {
        partialFlag = true;
        const paths = unreadablePaths(r.stderr);
        unreadable.push(...(paths.length ? paths : [`${p.path} (${describeRsyncExit(r.code)})`]));
        log(`  warning: ${p.path}: ${describeRsyncExit(r.code)}; ${paths.length} path(s) not read`);
        continue;
      }
      throw new PullError(`${p.path}: ${describeRsyncExit(r.code)}: ${stderrTail(r.stderr, 4)}`);
    }

    const { dumps, errors } = await dumpDatabases(config, server, ep, partial, log);
    if (errors.length) partialFlag = true;

    const tM = Date.now();
    // the pre-hasher finishes its queue while the manifest walks the tree
    const knownReady = prehash?.finish().then(() => log(`  pre-hash: ${prehash.stats.hashed} of ${prehash.stats.hinted} hashed; ${((Date.now() - tM) / 1000).toFixed(1)} s to finish them`));
    const { stats } = await buildManifest(partial, { prevDir: prev?.dir, known: prehash?.lookup, knownReady });
    log(`  manifest: ${stats.files} files, ${stats.hashedFiles} hashed (${stats.prehashedFiles} while rsync ran), in ${((Date.now() - tM) / 1000).toFixed(1)} s`);
    const finishedAt = new Date();
    const info: SnapshotInfo = {
      version: MANIFEST_VERSION,
      server: server.name,
      id: opts.id,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      partial: partialFlag,
      unreadable,
      dumps,
      stats: { ...stats, seconds: Math.round((finishedAt.getTime() - startedAt.getTime()) / 100) / 10 },
      ...(errors.length ? { errors } : {}),
    };
    const fh = await open(`${partial}/${INFO_FILE}`, 'w', 0o644);
    await fh.writeFile(JSON.stringify(info, null, 2) + '\n');
    await fh.sync();
    await fh.close();
    await fsyncDir(partial);
    await rename(partial, finalDir);
    await setLatest(serverDir, opts.id);
    await fsyncDir(serverDir);
    const result: PullResult = { server: server.name, ok: errors.length === 0, snapshot: { id: opts.id, dir: finalDir, info } };
    if (errors.length) result.error = `dumps failed: ${errors.join('; ')}`;
    return result;
  } catch (e) {
    return { server: server.name, ok: false, error: (e as Error).message };
  } finally {
    await prehash?.close();
  }
}
