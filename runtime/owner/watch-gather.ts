// The watchdog's reads from the store, for the plan of watch-judge.ts: the listing, every
// manifest of the newest chain (and the point before it) decrypted and checked against its key,
// and the planned archives downloaded, decrypted (OpenPGP integrity), compared with the checksum
// their manifest recorded, and their zstd frames tested. Every problem is evidence, never thrown.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Decryptor } from '../archive/pgp.ts';
import { start } from '../proc.ts';
import type { Step } from '../offsite/chain.ts';
import { checkHeader, fetchDecrypt, listServer, manifestEntries, readHeader } from '../offsite/restore.ts';
import type { Target } from '../offsite/target.ts';
import { watchPlan, type DataCheck, type ManifestCheck, type PlanOptions, type ServerEvidence, type Totals, type WatchPlan } from './watch-judge.ts';

export interface GatherOptions extends PlanOptions {
  decryptor: Decryptor;
  log: (line: string) => void;
  tmpDir?: string;
}

const message = (e: unknown) => (e as Error).message ?? String(e);

/** Files and bytes of file content, counted from the manifest's entries. */
async function countEntries(file: string): Promise<Totals> {
  const t: Totals = { files: 0, bytes: 0 };
  for await (const e of manifestEntries(file)) {
    if (e.t !== 'f') continue;
    t.files++;
    t.bytes += e.s;
  }
  return t;
}

export async function gatherServer(target: Target, server: string, o: GatherOptions): Promise<{ evidence: ServerEvidence; plan: WatchPlan }> {
  const evidence: ServerEvidence = { server, listing: { archives: [], orphans: [], missing: [] }, manifests: [], data: [] };
  try {
    evidence.listing = await listServer(target, server);
  } catch (e) {
    evidence.listError = message(e);
    return { evidence, plan: { chain: [], data: [] } };
  }
  const plan = watchPlan(evidence.listing, o);
  const work = await mkdtemp(join(o.tmpDir ?? tmpdir(), 'pullvault-watch-'));
  try {
    const headed = plan.previous && !plan.chain.some((s) => s.key === plan.previous!.key) ? [...plan.chain, plan.previous] : plan.chain;
    const counted = new Set([plan.newest?.key, plan.previous?.key]);
    for (const [i, step] of headed.entries()) evidence.manifests.push(await checkManifest(target, step, join(work, `m${i}.jsonl.zst`), counted.has(step.key), o.decryptor));
    o.log(`${server}: ${evidence.manifests.length} manifest(s) decrypted`);
    for (const [i, step] of plan.data.entries()) {
      o.log(`${server}: reading ${step.key} (${(step.size / 1e6).toFixed(1)} MB)`);
      evidence.data.push(await checkData(target, step, evidence.manifests.find((m) => m.archive === step.key), join(work, `a${i}.tar.zst`), o.decryptor));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return { evidence, plan };
}

async function checkManifest(target: Target, step: Step, file: string, count: boolean, d: Decryptor): Promise<ManifestCheck> {
  const c: ManifestCheck = { key: step.manifestKey, archive: step.key };
  try {
    await fetchDecrypt(target, step.manifestKey, file, d);
    c.header = await readHeader(file);
    checkHeader(c.header, step);
    if (count) c.totals = await countEntries(file);
  } catch (e) {
    c.error = message(e);
  } finally {
    await rm(file, { force: true });
  }
  return c;
}

async function checkData(target: Target, step: Step, manifest: ManifestCheck | undefined, file: string, d: Decryptor): Promise<DataCheck> {
  const c: DataCheck = { key: step.key };
  try {
    const got = await fetchDecrypt(target, step.key, file, d);
    const want = manifest?.header?.archive;
    if (!want) c.error = 'its manifest did not decrypt: nothing to check the archive against';
    else if (got.sha256 !== want.sha256 || got.bytes !== want.bytes)
      c.error = `checksum mismatch (store has ${got.bytes} bytes sha256 ${got.sha256}, uploaded ${want.bytes} bytes sha256 ${want.sha256})`;
    else {
      const r = await start(['zstd', '-t', '-q', file], { stdio: ['ignore', 'ignore', 'pipe'], okCodes: [0, 1] }).done;
      if (r.code !== 0) c.error = `decrypted, but not a valid zstd stream: ${r.stderr.trim()}`;
    }
  } catch (e) {
    c.error = message(e);
  } finally {
    await rm(file, { force: true });
  }
  return c;
}
