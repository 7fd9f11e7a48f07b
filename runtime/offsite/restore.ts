// Restore: plan the chain (chain.ts), then for each archive: download → decrypt into a
// temporary tar.zst (kept only when the OpenPGP integrity check passed, and the ciphertext
// matches the checksum recorded in its manifest object) → apply its deletion list → extract
// with GNU tar → apply its delta patches (delta-apply.ts); the next archive downloads meanwhile.
// Finally every entry is checked against the snapshot's manifest, composed from the chain's
// manifest objects (an incremental's is a diff: manifest-chain.ts). The same steps by hand:
// docs/restore-by-hand.md.
import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { ExternalSorter } from '../archive/external-sort.ts';
import { HASH_CHUNK } from '../pull/hash-pool.ts';
import { sha256FileSync } from '../pull/manifest.ts';
import { walkSorted } from '../pull/walk.ts';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { entryPath, type ManifestEntry, type SnapshotInfo } from '../../contract/disk-layout.ts';
import { readJsonLines } from '../archive/manifest-io.ts';
import type { ManifestForm } from '../archive/manifest-diff.ts';
import { manifestEntries as fileManifestEntries } from '../archive/manifest-stream.ts';
import { composeManifest, openManifestObject, type ManifestObject } from './manifest-chain.ts';
import { decryptToFile, type Decryptor } from '../archive/pgp.ts';
import { start } from '../proc.ts';
import { DELETED_MEMBER, META_DIR, ROOT_FILES, isSafeRelative, tarExtractArgv } from '../archive/tar-format.ts';
import { branchesOf, planRestore, readListing, type Listing, type Plan, type Step } from './chain.ts';
import { hashTap, type Target } from './target.ts';
import { applyDeltas, DeltaChains, flushDeltas } from './delta-apply.ts';

export interface RestoreOptions {
  target: Target;
  server: string;
  at?: Date;
  to: string;
  /** restore only this part: "/home/alice" (a path on the server) or "files/home/alice" */
  path?: string;
  force?: boolean;
  decryptor: Decryptor;
  log: (line: string) => void;
  tmpDir?: string;
}

export interface ManifestHeader {
  pullvault: 'manifest';
  v: number;
  kind: 'full' | 'incremental';
  server: string;
  snapshot: string;
  base: string | null;
  chainId: string;
  /** what follows the header: the snapshot's whole manifest.jsonl, or (incrementals since v2) its diff against the base's (archive/manifest-diff.ts); absent: whole */
  manifest?: ManifestForm;
  archive: { key: string; bytes: number; sha256: string };
  deletions: number;
  /** the snapshot's own record (snapshot.json), when it had one */
  info?: SnapshotInfo;
}

export interface RestoreReport {
  snapshot: string;
  steps: string[];
  entries: number;
  bytes: number;
  problems: string[];
}

export class RestoreError extends Error {}

export async function listServer(target: Target, server: string): Promise<Listing> {
  const objs = (await Promise.all(['full', 'incr', 'manifest'].map((k) => target.list(`${target.prefix}${k}/${server}/`)))).flat();
  return readListing(objs, target.prefix, server);
}

/** "/home/alice" → "files/home/alice"; "files/x" and "dumps/x" as they are. */
function normalizePart(p: string): Buffer {
  const s = p.startsWith('/') ? `files${p.replace(/\/+$/, '')}` : p.replace(/\/+$/, '');
  const b = Buffer.from(s);
  if (!isSafeRelative(b)) throw new RestoreError(`--path: not a usable path: ${p}`);
  return b;
}

function under(p: Buffer, part?: Buffer): boolean {
  if (!part) return true;
  return p.equals(part) || (p.length > part.length && p.subarray(0, part.length).equals(part) && p[part.length] === 0x2f);
}

async function isEmptyDir(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw e;
  }
}

/**
 * The manifest object, not the key's name, says what an archive is: a manifest that describes
 * another archive, kind, snapshot, base or chain is refused.
 */
export function checkHeader(h: ManifestHeader, step: Step): void {
  if (h.archive.key !== step.key) throw new RestoreError(`${step.manifestKey} describes ${h.archive.key}, not ${step.key}`);
  const want = { kind: step.kind, server: step.server, snapshot: step.snapshot, base: step.base ?? null, chainId: step.chainId };
  for (const [k, v] of Object.entries(want))
    if (h[k as keyof ManifestHeader] !== v) throw new RestoreError(`${step.manifestKey}: its ${k} is ${JSON.stringify(h[k as keyof ManifestHeader])}, the key names ${JSON.stringify(v)}`);
}

/** Downloads and decrypts one object into `out`; returns the ciphertext's sha256 and size. */
export async function fetchDecrypt(target: Target, key: string, out: string, d: Decryptor): Promise<{ sha256: string; bytes: number }> {
  const body = await target.get(key);
  const h = hashTap();
  body.on('error', (e) => h.destroy(e));
  await decryptToFile(body.pipe(h), out, d, key);
  return { sha256: h.digest(), bytes: h.bytes() };
}

function zstdCat(file: string) {
  return start(['zstd', '-dc', '-q', file], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The manifest object: header + entries, decompressed lazily. */
export async function readHeader(file: string): Promise<ManifestHeader> {
  const z = zstdCat(file);
  for await (const h of readJsonLines<ManifestHeader>(z.child.stdout!)) {
    z.child.kill();
    if (h.pullvault !== 'manifest') throw new RestoreError(`${file}: not a pullvault manifest`);
    return h;
  }
  throw new RestoreError(`${file}: empty manifest object`);
}

async function readDeletions(archive: string): Promise<Buffer[]> {
  const z = zstdCat(archive);
  const t = start(['tar', '--extract', '--file=-', '--to-stdout', '--occurrence', '--', DELETED_MEMBER], { stdio: ['pipe', 'pipe', 'pipe'] });
  z.child.stdout!.pipe(t.child.stdin!);
  const chunks: Buffer[] = [];
  t.child.stdout!.on('data', (b: Buffer) => chunks.push(b));
  await t.done;
  z.child.kill(); // tar stops after the first member; zstd may still be writing
  await z.done.catch(() => {});
  const all = Buffer.concat(chunks);
  const out: Buffer[] = [];
  let s = 0;
  for (let i = 0; i < all.length; i++)
    if (all[i] === 0) {
      out.push(all.subarray(s, i));
      s = i + 1;
    }
  return out;
}

async function extract(archive: string, to: string, part: Buffer | undefined, replace: boolean): Promise<void> {
  const z = zstdCat(archive);
  // a partial restore takes the archive's .pullvault too: the patches of its delta files
  const argv0 = tarExtractArgv(to, part ? [part.toString('latin1'), META_DIR] : []);
  // --force over an existing tree: the full archive replaces whatever hierarchies it holds
  const argv = replace ? [argv0[0], '--recursive-unlink', ...argv0.slice(1)] : argv0;
  // a part that this incremental does not touch is "not found": fine
  const dd = argv.indexOf('--');
  const t = start(part ? [...argv.slice(0, dd), '--no-wildcards', ...argv.slice(dd)] : argv, { stdio: ['pipe', 'ignore', 'pipe'], okCodes: part ? [0, 2] : [0] });
  z.child.stdout!.pipe(t.child.stdin!);
  const r = await t.done;
  await z.done;
  if (r.code === 2 && !r.stderr.trim().split('\n').every((l) => /Not found in archive|Exiting with failure status/.test(l))) throw new RestoreError(`tar: ${r.stderr.trim()}`);
}

export async function restore(o: RestoreOptions): Promise<RestoreReport> {
  const listing = await listServer(o.target, o.server);
  let plan: Plan;
  try {
    plan = planRestore(listing, o.at);
  } catch (e) {
    throw new RestoreError(`${o.server} in ${o.target.label}: ${(e as Error).message}`);
  }
  for (const b of branchesOf(listing.archives, plan)) o.log(b);
  return restorePlan(o, plan);
}

/** Restores the point `plan` leads to (restore() picks it by --at; verify --all walks every one). */
export async function restorePlan(o: Omit<RestoreOptions, 'at'>, plan: Plan): Promise<RestoreReport> {
  const to = resolve(o.to);
  const part = o.path ? normalizePart(o.path) : undefined;
  if (!o.force && !(await isEmptyDir(to))) throw new RestoreError(`${to} is not empty; restore into an empty directory, or pass --force to write over it`);
  await mkdir(to, { recursive: true, mode: 0o700 });
  o.log(`restore ${o.server} as of ${plan.snapshot} from ${o.target.label}: ${plan.steps.length} archive(s), chain ${plan.chainId}`);
  const work = await mkdtemp(join(o.tmpDir ?? tmpdir(), 'pullvault-restore-'));
  try {
    const n = plan.steps.length;
    const chains = new DeltaChains();
    const fetchAt = (k: number) => fetchStep(o, plan.steps[k], k, n, work);
    let next: Promise<Fetched> | undefined = fetchAt(0);
    for (const [i, step] of plan.steps.entries()) {
      const fetched = await next!;
      // the next archive downloads and decrypts while this one is applied
      next = i + 1 < n ? fetchAt(i + 1) : undefined;
      next?.catch(() => {});
      try {
        await applyFetched(o, step, fetched, i, n, work, to, part, chains);
      } catch (e) {
        await next?.catch(() => {});
        await chains.abandon();
        throw e;
      }
    }
    await flushDeltas(chains, to);
    await rm(join(to, META_DIR), { recursive: true, force: true });
    const manifest = await chainManifest(plan.steps.map((s, i) => [join(work, `manifest-${i}.jsonl.zst`), s.manifestKey]), work, part ? undefined : to);
    o.log(`checking the restored tree against the manifest of ${plan.snapshot}`);
    const check = await checkTree(to, fileManifestEntries(manifest), part, work, o.log);
    return { snapshot: plan.snapshot, steps: plan.steps.map((s) => s.key), ...check };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The snapshot's whole manifest, composed from the chain's manifest objects (manifest-chain.ts)
 * into `work`; written to `to` as its manifest.jsonl too (an incremental's archive carries only its diff).
 */
async function chainManifest(objects: [file: string, key: string][], work: string, to: string | undefined): Promise<string> {
  const opened: ManifestObject[] = [];
  try {
    for (const [i, [f]] of objects.entries()) opened.push(await openManifestObject(f, join(work, `manifest-${i}.jsonl`)));
    const out = join(work, 'manifest.jsonl');
    composeManifest(opened, objects.map(([, k]) => k), out);
    if (to && opened[opened.length - 1].form === 'diff') {
      await copyFile(out, join(to, 'manifest.jsonl'));
      await chmod(join(to, 'manifest.jsonl'), 0o644);
    }
    return out;
  } finally {
    for (const m of opened) await m.dispose();
  }
}

interface Fetched {
  afile: string;
  bytes: number;
  t0: number;
}

/** Downloads and decrypts one step's manifest object and archive, checked against each other. */
async function fetchStep(o: Omit<RestoreOptions, 'at'>, step: Step, i: number, n: number, work: string): Promise<Fetched> {
  const mfile = join(work, `manifest-${i}.jsonl.zst`);
  await fetchDecrypt(o.target, step.manifestKey, mfile, o.decryptor);
  const header = await readHeader(mfile);
  checkHeader(header, step);
  const afile = join(work, `archive-${i}.tar.zst`);
  const t0 = Date.now();
  o.log(`[${i + 1}/${n}] ${step.kind} ${step.snapshot}: downloading ${step.key} (${(step.size / 1e6).toFixed(1)} MB)`);
  const got = await fetchDecrypt(o.target, step.key, afile, o.decryptor);
  if (got.sha256 !== header.archive.sha256 || got.bytes !== header.archive.bytes) {
    await rm(afile, { force: true });
    throw new RestoreError(`${step.key}: checksum mismatch (store has ${got.bytes} bytes sha256 ${got.sha256}, uploaded ${header.archive.bytes} bytes sha256 ${header.archive.sha256})`);
  }
  return { afile, bytes: got.bytes, t0 };
}

/** Applies a fetched archive: its deletions, its members, its delta patches. */
async function applyFetched(o: Omit<RestoreOptions, 'at'>, step: Step, f: Fetched, i: number, n: number, work: string, to: string, part: Buffer | undefined, chains: DeltaChains): Promise<void> {
  const { afile, t0 } = f;
  const dels = (await readDeletions(afile)).filter((p) => under(p, part) || (part !== undefined && under(part, p)));
  for (const p of dels) {
    if (!isSafeRelative(p)) throw new RestoreError(`${step.key}: unsafe path in the deletion list: ${JSON.stringify(p.toString('latin1'))}`);
    await rm(Buffer.concat([Buffer.from(to + '/'), p]), { recursive: true, force: true });
  }
  await extract(afile, to, part, i === 0 && o.force === true);
  await rm(afile, { force: true });
  const deltas = await applyDeltas({ root: to, work, what: step.key, wanted: (p) => under(p, part), chains });
  // this archive's patches and index must not meet the next archive's
  await rm(join(to, META_DIR), { recursive: true, force: true });
  o.log(`[${i + 1}/${n}] applied ${step.kind} ${step.snapshot}: ${dels.length} deletion(s), ${deltas ? `${deltas} delta(s), ` : ''}${(f.bytes / 1e6).toFixed(1)} MB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

const short = (p: Buffer) => JSON.stringify(p.toString('utf8'));

/** How often the final check says how far it is (millions of files take minutes). */
const PROGRESS_MS = 30_000;

/** lstat, or undefined when there is nothing to stat there (ENOENT, ENOTDIR: a parent is not a directory). */
function lstatOrNothing(p: Buffer): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

/**
 * Whole seconds of an mtime as the manifest has them (truncated toward zero, walk.ts). From the
 * number stat's mtimeMs, whose last bits can round a time just under a second up to it: when that
 * is off by one from the manifest, the nanoseconds decide (one bigint lstat, rare).
 */
function mtimeSeconds(p: Buffer, mtimeMs: number, want: number): number {
  const m = Math.trunc(mtimeMs / 1000);
  return Math.abs(m - want) === 1 ? Number(lstatSync(p, { bigint: true }).mtimeNs / 1_000_000_000n) : m;
}

/** Compares a restored tree with a manifest: content, type, mode, owner, mtime, link target, hard links, extras. */
export async function checkTree(root: string, entries: Iterable<ManifestEntry> | AsyncIterable<ManifestEntry>, part: Buffer | undefined, work: string, log?: (line: string) => void): Promise<{ entries: number; bytes: number; problems: string[] }> {
  const problems: string[] = [];
  // what the tree may hold: every manifest path and its ancestors, sorted on disk (external-sort.ts), never a set in memory
  const known = new ExternalSorter(work);
  for (const f of ROOT_FILES) known.add(f);
  try {
    return await checkAgainst(root, entries, part, work, known, problems, log);
  } finally {
    known.dispose();
  }
}

async function checkAgainst(root: string, entries: Iterable<ManifestEntry> | AsyncIterable<ManifestEntry>, part: Buffer | undefined, work: string, known: ExternalSorter, problems: string[], log: ((line: string) => void) | undefined): Promise<{ entries: number; bytes: number; problems: string[] }> {
  const rootB = Buffer.from(root + '/');
  let count = 0;
  let bytes = 0;
  const add = (msg: string) => {
    if (problems.length < 200) problems.push(msg);
  };
  // synchronous calls and one read buffer: a stream and a promise per entry cost more in GC than the reads (nothing else runs now)
  const buf = Buffer.allocUnsafe(HASH_CHUNK);
  // hard-link groups by their first path (as hl names it): the paths naming it, and the first path's links on disk; one record per group
  const links = new Map<string, { members: number; head?: { rel: Buffer; nlink: number } }>();
  let nextProgress = Date.now() + PROGRESS_MS;
  for await (const e of entries) {
    if (log && Date.now() >= nextProgress) {
      log(`checked ${count} entries…`);
      nextProgress = Date.now() + PROGRESS_MS;
    }
    const rel = entryPath(e);
    // every ancestor may exist as an implicit directory
    const relL = rel.toString('latin1');
    for (let i = relL.indexOf('/'); i > 0; i = relL.indexOf('/', i + 1)) known.add(relL.slice(0, i));
    known.add(relL);
    if (!under(rel, part)) continue;
    count++;
    const p = Buffer.concat([rootB, rel]);
    // number stats, not bigint: a BigInt per field per entry is most of the check's garbage at millions of files
    const st = lstatOrNothing(p);
    if (!st) {
      add(`missing: ${short(rel)}`);
      continue;
    }
    const type = st.isFile() ? 'f' : st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : '?';
    if (type !== e.t) {
      add(`${short(rel)}: type ${type}, manifest ${e.t}`);
      continue;
    }
    if (e.t !== 'l' && (st.mode & 0o7777) !== e.mode) add(`${short(rel)}: mode ${(st.mode & 0o7777).toString(8)}, manifest ${e.mode.toString(8)}`);
    if (st.uid !== e.u || st.gid !== e.g) add(`${short(rel)}: owner ${st.uid}:${st.gid}, manifest ${e.u}:${e.g}`);
    const m = mtimeSeconds(p, st.mtimeMs, e.m);
    if (m !== e.m) add(`${short(rel)}: mtime ${m}, manifest ${e.m}`);
    if (e.t === 'f') {
      bytes += e.s;
      if (st.size !== e.s) add(`${short(rel)}: size ${st.size}, manifest ${e.s}`);
      else if (e.h && sha256FileSync(p, buf, e.s) !== e.h) add(`${short(rel)}: content differs (sha256)`);
      if (e.hl !== undefined) {
        const headB = Buffer.from(e.hl, 'utf8');
        const head = lstatOrNothing(Buffer.concat([rootB, headB])) ?? lstatOrNothing(Buffer.concat([rootB, Buffer.from(e.hl, 'base64')]));
        if (!head || head.ino !== st.ino || head.dev !== st.dev) {
          if (!part || under(headB, part)) add(`${short(rel)}: not hard-linked to ${JSON.stringify(e.hl)}`);
        }
        const g = links.get(e.hl) ?? { members: 0 };
        g.members++;
        links.set(e.hl, g);
      } else if (st.nlink !== 1) {
        // the first path of a hard-link group carries no hl (buildManifest): its links are counted at the end
        const key = e.p ?? e.pb ?? '';
        links.set(key, { members: links.get(key)?.members ?? 0, head: { rel, nlink: st.nlink } });
      }
    }
    if (e.t === 'l') {
      const target = readlinkSync(p, { encoding: 'buffer' });
      const want = e.l !== undefined ? Buffer.from(e.l, 'utf8') : Buffer.from(e.lb ?? '', 'base64');
      if (!target.equals(want)) add(`${short(rel)}: symlink to ${short(target)}, manifest ${short(want)}`);
    }
  }
  // each group's first path has as many links as the manifest gives it (itself and the paths naming it)
  for (const { members, head } of links.values())
    if (head && head.nlink !== members + 1) add(`${short(head.rel)}: has ${head.nlink} links, manifest ${members ? `has ${members + 1} (itself and ${members} naming it)` : 'says none'}`);
  // anything in the tree that the manifest does not have: the sorted walk merged with the sorted known paths
  const tree = await walkSorted(root, work);
  try {
    const k = known.sorted(true);
    let cur = k.next();
    for (const r of tree.recs) {
      while (!cur.done && cur.value < r.rel) cur = k.next();
      if (!cur.done && cur.value === r.rel) continue;
      const rb = Buffer.from(r.rel, 'latin1');
      if (under(rb, part)) add(`not in the manifest: ${short(rb)}`);
    }
  } finally {
    tree.dispose();
  }
  return { entries: count, bytes, problems };
}

/** Decrypts every manifest object's header, checks it as restore does (checkHeader) and its archive's stored size (no archive download). */
export async function verifyObjects(target: Target, listing: Listing, d: Decryptor, log: (l: string) => void): Promise<string[]> {
  const problems: string[] = [];
  const work = await mkdtemp(join(tmpdir(), 'pullvault-verify-m-'));
  try {
    for (const [i, a] of listing.archives.entries()) {
      const f = join(work, `m${i}.zst`);
      try {
        await fetchDecrypt(target, a.manifestKey, f, d);
        const h = await readHeader(f);
        // the same check restore makes: key, kind, server, snapshot, base and chain as the key names them
        checkHeader(h, a);
        if (h.archive.bytes !== a.size) problems.push(`${a.key}: ${a.size} bytes in the store, ${h.archive.bytes} uploaded (corrupted or truncated)`);
      } catch (e) {
        const m = (e as Error).message;
        problems.push(m.startsWith(a.manifestKey) ? m : `${a.manifestKey}: ${m}`);
      } finally {
        await rm(f, { force: true });
      }
    }
    log(`checked ${listing.archives.length} manifest object(s)`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return problems;
}
