// Database dumps through the server's dispatcher, streamed to disk: ssh stdout → zstd → file,
// or ssh stdout → file for a format compressed already (pg_dump -Fc). Which dumps a run takes and
// where they land is each registered engine's (contract/db-engines.ts); the data never passes
// through this process.
import { mkdir, open, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ServerSpec } from '../../contract/inventory-schema.ts';
import { engineVerb, type DispatchVerb } from '../../contract/dispatch-protocol.ts';
import { DB_ENGINES } from '../../contract/db-engines.ts';
import type { DbEngineSpec, DumpJob } from '../../contract/db-engine.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import type { SnapshotInfo } from '../../contract/disk-layout.ts';
import { sshVerbArgv, type Endpoint } from './commands.ts';
import { stderrTail as tail } from '../../lib/proc/index.ts';
import { pull } from '../proc.ts';

export type DumpRecord = SnapshotInfo['dumps'][number];

export class DumpError extends Error {}

async function listVerb(config: RuntimeConfig, ep: Endpoint, verb: DispatchVerb): Promise<string[]> {
  const r = await pull.run(sshVerbArgv(config, ep, verb));
  if (r.code !== 0) throw new DumpError(`${verb} failed (exit ${r.code}): ${tail(r.stderr, 3)}`);
  return r.stdout.split('\n').map((s) => s.trim()).filter((s) => s.length > 0);
}

/** Stream one verb's stdout into `file`, through `zstd` when `compress`. Removes the file on failure. */
async function dumpToFile(config: RuntimeConfig, ep: Endpoint, verb: DispatchVerb, arg: string | undefined, file: string, compress: boolean): Promise<number> {
  await mkdir(dirname(file), { recursive: true });
  const fh = await open(file, 'w', 0o600);
  const what = arg ? `${verb} ${arg}` : verb;
  try {
    if (compress) {
      const ssh = pull.start(sshVerbArgv(config, ep, verb, arg));
      const zstd = pull.start(['zstd', '-q', '-c', '-3'], { stdio: [ssh.child.stdout!, fh.fd, 'pipe'] });
      // zstd has its own copy of the pipe; ours would keep ssh's 'close' from ever firing
      ssh.child.stdout!.destroy();
      const [s, z] = await Promise.all([ssh.done, zstd.done]);
      if (s.code !== 0) throw new DumpError(`${what} failed (exit ${s.code}): ${tail(s.stderr, 3)}`);
      if (z.code !== 0) throw new DumpError(`${what}: zstd failed (exit ${z.code}): ${tail(z.stderr, 3)}`);
    } else {
      const s = await pull.start(sshVerbArgv(config, ep, verb, arg), { stdio: ['ignore', fh.fd, 'pipe'] }).done;
      if (s.code !== 0) throw new DumpError(`${what} failed (exit ${s.code}): ${tail(s.stderr, 3)}`);
    }
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(file).catch(() => {});
    throw e;
  }
  await fh.close();
  return (await stat(file)).size;
}

/**
 * All configured dumps of a server into `<snapshotDir>/dumps/…`. Never throws for a dump
 * failure: returns what succeeded and the errors, so the files snapshot is still kept.
 */
export async function dumpDatabases(
  config: RuntimeConfig, server: ServerSpec, ep: Endpoint, snapshotDir: string, log: (s: string) => void,
): Promise<{ dumps: DumpRecord[]; errors: string[] }> {
  const dumps: DumpRecord[] = [];
  const errors: string[] = [];
  const dbs: Record<string, unknown> = server.databases ?? {};
  const one = async (engine: DumpRecord['engine'], job: DumpJob) => {
    try {
      const t0 = Date.now();
      const bytes = await dumpToFile(config, ep, job.verb, job.arg, `${snapshotDir}/${job.file}`, job.compress);
      dumps.push({ engine, name: job.name, file: job.file, bytes });
      log(`  ${job.file}: ${bytes} bytes in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      errors.push(`${engine} ${job.name}: ${(e as Error).message}`);
    }
  };
  for (const spec of DB_ENGINES) {
    const engine: DbEngineSpec = spec as DbEngineSpec;
    const sel = dbs[engine.name];
    if (sel === undefined) continue;
    let listed: string[] = [];
    if (engine.needsList(sel)) {
      try {
        listed = await listVerb(config, ep, engineVerb(spec.name, 'list'));
      } catch (e) {
        errors.push(`${engine.name}: ${(e as Error).message}`);
      }
    }
    for (const job of engine.dumps(sel, listed)) await one(spec.name, job);
  }
  return { dumps, errors };
}
