// The watchdog's reads from the store, for the plan of watch-judge.ts: the listing, every
// manifest of the newest chain (and of the point before it, with the chain its totals are
// composed from: manifest-chain.ts) decrypted and checked against its key, and the planned archives downloaded, decrypted (OpenPGP integrity), compared with the checksum
// their manifest recorded, and their zstd frames tested. Every problem is evidence, never thrown.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Decryptor } from '../archive/pgp.ts';
import { start } from '../proc.ts';
import type { Step } from '../offsite/chain.ts';
import { checkHeader, fetchDecrypt, listServer, readHeader } from '../offsite/restore.ts';
import { objectTotals, openManifestObject } from '../offsite/manifest-chain.ts';
import type { ManifestForm } from '../archive/manifest-diff.ts';
import type { Target } from '../offsite/target.ts';
import { watchPlan, type DataCheck, type ManifestCheck, type PlanOptions, type ServerEvidence, type Totals, type WatchPlan } from './watch-judge.ts';

export interface GatherOptions extends PlanOptions {
  decryptor: Decryptor;
  log: (line: string) => void;
  tmpDir?: string;
}

const message = (e: unknown) => (e as Error).message ?? String(e);

/** Files and bytes at the end of `path` (full first): the last whole manifest's, plus each diff's change after it. */
function pathTotals(path: Step[] | undefined, counts: Map<string, { form: ManifestForm; totals: Totals }>): Totals | undefined {
  let t: Totals | undefined;
  for (const s of path ?? []) {
    const c = counts.get(s.key);
    if (!c) return undefined;
    if (c.form === 'whole') t = { ...c.totals };
    else if (t) t = { files: t.files + c.totals.files, bytes: t.bytes + c.totals.bytes };
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
    // the chain's manifests, and those the previous point's totals are composed from
    const headed = [...plan.chain];
    for (const s of [...(plan.previousPath ?? []), ...(plan.previous ? [plan.previous] : [])]) if (!headed.some((h) => h.key === s.key)) headed.push(s);
    const counted = new Set([...(plan.path ?? []), ...(plan.previousPath ?? [])].map((s) => s.key));
    const counts = new Map<string, { form: ManifestForm; totals: Totals }>();
    for (const [i, step] of headed.entries()) evidence.manifests.push(await checkManifest(target, step, join(work, `m${i}.jsonl.zst`), counted.has(step.key) ? counts : undefined, o.decryptor));
    for (const [end, path] of [[plan.newest, plan.path], [plan.previous, plan.previousPath]] as const) {
      const m = end && evidence.manifests.find((x) => x.archive === end.key);
      const t = pathTotals(path, counts);
      if (m && t) m.totals = t;
    }
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

/** Decrypts and checks one manifest object; with `counts`, records what it says of the totals there. */
async function checkManifest(target: Target, step: Step, file: string, counts: Map<string, { form: ManifestForm; totals: Totals }> | undefined, d: Decryptor): Promise<ManifestCheck> {
  const c: ManifestCheck = { key: step.manifestKey, archive: step.key };
  try {
    await fetchDecrypt(target, step.manifestKey, file, d);
    c.header = await readHeader(file);
    checkHeader(c.header, step);
    if (counts) {
      const o = await openManifestObject(file, `${file}.plain`);
      try {
        counts.set(step.key, objectTotals(o));
      } finally {
        await o.dispose();
      }
    }
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
