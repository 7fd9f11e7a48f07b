// The offsite half of `pullvault run`: for each server's fresh snapshot, decide (schedule.ts),
// select (select.ts), stream tar → zstd → OpenPGP → target, then the manifest object, then
// record the upload. An attempt that fails in any way is never recorded; a retry always uses
// a fresh key. The whole phase runs under one deadline (deadline.ts): when it passes, what is in
// flight is abandoned and the servers not yet sent are reported failed.
import { chownSync, existsSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { vaultLayout, type SnapshotInfo } from '../../contract/disk-layout.ts';
import { manifestEntries } from '../archive/manifest-stream.ts';
import { writeManifestDiff, type ManifestForm } from '../archive/manifest-diff.ts';
import { jsonlZstStream, tarZstStream } from '../archive/create.ts';
import { encryptStream, encryptStreamFast, loadRecipient, type Recipient } from '../archive/pgp.ts';
import { ROOT_FILES } from '../archive/tar-format.ts';
import { formatDuration, OffsiteDeadlineError, offsiteDeadlineMs } from './deadline.ts';
import { archiveKey, manifestObjectKey, newChainId, newTag, type ArchiveName } from '../../contract/offsite-naming.ts';
import { decide } from './schedule.ts';
import { selectFull, selectIncremental, TooManyChanges, type Selection } from './select.ts';
import { ObjectExistsError, type Target } from './target.ts';
import { openConfiguredTarget } from './open-target.ts';
import { stageDeltas, deltaSettings, transformFor, type Staged } from './deltas.ts';
import type { DeltaSettings } from './delta-plan.ts';
import { offsiteStaging } from '../space.ts';
import { appendUpload, readUploads, uploadsFile, type UploadRecord } from './uploads.ts';

export interface OffsiteResult {
  server: string;
  kind: 'full' | 'incremental' | 'skipped';
  key?: string;
  bytes?: number;
  seconds?: number;
  error?: string;
}

export interface OffsiteOptions {
  log: (line: string) => void;
  now?: Date;
  /** tests and benchmarks: an already opened target */
  target?: Target;
  /** attempts per archive (default 3) and the first backoff in ms (doubles) */
  attempts?: number;
  backoffMs?: number;
  /** tests: the random part of object keys */
  newTag?: () => string;
  /** total time for the phase (default: offsiteDeadlineMs of the schedule) */
  deadlineMs?: number;
  /** delta incrementals (offsite/deltas.ts): false turns them off; fields override the defaults */
  deltas?: Partial<DeltaSettings> | false;
  /** tests: past this many changed paths an incremental goes as a full (default MAX_INCREMENTAL_CHANGES) */
  maxIncrementalChanges?: number;
}

/** Native AES/SHA-1 bulk encryption by default; PULLVAULT_ENCRYPTOR=openpgp uses openpgp.js's own stream. */
const encrypt = (input: Readable, r: Recipient[]) => (process.env.PULLVAULT_ENCRYPTOR === 'openpgp' ? encryptStream(input, r) : encryptStreamFast(input, r));

async function loadRecipients(config: RuntimeConfig): Promise<Recipient[]> {
  const out: Recipient[] = [];
  for (const r of config.inventory.recipients) {
    const candidates = [join(config.paths.recipientKeysDir, `${r.name}.asc`), isAbsolute(r.publicKeyFile) ? r.publicKeyFile : resolve(config.paths.recipientKeysDir, r.publicKeyFile)];
    const file = candidates.find((f) => existsSync(f));
    if (!file) throw new Error(`recipient ${r.name}: no public key at ${candidates.join(' or ')}`);
    out.push(await loadRecipient(r.name, file, r.fingerprint));
  }
  return out;
}

/** What the pull phase hands over: a snapshot per server, or a PullResult (runtime/pull/snapshot.ts). */
export type PulledSnapshot =
  | { server: string; snapshotDir: string; id: string; ok: boolean }
  | { server: string; ok: boolean; snapshot?: { id: string; dir: string }; error?: string };

export async function offsitePhase(config: RuntimeConfig, pulled: PulledSnapshot[], opts: OffsiteOptions): Promise<OffsiteResult[]> {
  const results = pulled.map((p) =>
    'snapshotDir' in p ? p : { server: p.server, ok: p.ok || p.snapshot !== undefined, snapshotDir: p.snapshot?.dir ?? '', id: p.snapshot?.id ?? '' },
  );
  const log = opts.log;
  const now = opts.now ?? new Date();
  const out: OffsiteResult[] = [];
  const deadlineMs = opts.deadlineMs ?? offsiteDeadlineMs(config.inventory.schedule.offsite);
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new OffsiteDeadlineError(deadlineMs)), deadlineMs);
  timer.unref();
  let recipients: Recipient[];
  let target: Target;
  try {
    recipients = await loadRecipients(config);
    target = opts.target ?? (await openConfiguredTarget(config));
  } catch (e) {
    const error = (e as Error).message;
    log(`offsite: ${error}`);
    clearTimeout(timer);
    return results.map((r) => ({ server: r.server, kind: 'skipped', error }));
  }
  const recordFile = uploadsFile(config.paths.dataDir);
  const sched = config.inventory.schedule.offsite;
  log(`offsite: to ${target.label}, deadline ${formatDuration(deadlineMs)}`);
  try {
    for (const r of results) {
      if (deadline.signal.aborted) {
        out.push({ server: r.server, kind: 'skipped', error: `not started: ${(deadline.signal.reason as Error).message}` });
        continue;
      }
      // a snapshot whose dump failed is still complete for its files: it goes offsite too
      if (!r.ok || !r.id || !existsSync(join(r.snapshotDir, 'manifest.jsonl'))) {
        out.push({ server: r.server, kind: 'skipped', error: 'pull failed; no new snapshot to send' });
        continue;
      }
      try {
        const records = (await readUploads(recordFile)).filter((x) => x.server === r.server);
        const d = decide({
          records,
          snapshot: r.id,
          now,
          fullEveryDays: sched.fullEveryDays,
          incrementalEveryDays: sched.incrementalEveryDays,
          haveSnapshot: (id) => existsSync(join(vaultLayout(config.paths.dataDir).snapshotDir(r.server, id), 'manifest.jsonl')),
        });
        if (d.kind === 'skipped') {
          log(`offsite ${r.server}: nothing to send (${d.reason})`);
          out.push({ server: r.server, kind: 'skipped' });
          continue;
        }
        log(`offsite ${r.server}: ${d.kind} of ${r.id} (${d.reason})`);
        const rec = await sendArchive({
          target,
          recipients,
          server: r.server,
          snapshotDir: r.snapshotDir,
          snapshot: r.id,
          base: d.kind === 'incremental' ? { dir: vaultLayout(config.paths.dataDir).snapshotDir(r.server, d.base.snapshot), record: d.base } : undefined,
          log,
          attempts: opts.attempts ?? 3,
          backoffMs: opts.backoffMs ?? 5000,
          now,
          newTag: opts.newTag,
          signal: deadline.signal,
          deltas: opts.deltas === false ? undefined : { settings: deltaSettings(opts.deltas), ...offsiteStaging(config, r.server) },
          maxIncrementalChanges: opts.maxIncrementalChanges,
        });
        await appendUpload(recordFile, rec).catch((e: Error) => {
          // the store holds it (restore and verify find it there); only this Pi's record is missing
          const base = rec.kind === 'incremental' ? rec.base : undefined;
          throw new Error(`stored ${rec.key} but could not record it in ${recordFile} (${e.message}); restore and verify find it in the store, the next upload ${base ? `builds on ${base} again` : 'is a full'}`);
        });
        out.push({ server: r.server, kind: rec.kind, key: rec.key, bytes: rec.bytes + rec.manifestBytes, seconds: rec.seconds });
      } catch (e) {
        const error = (e as Error).message;
        log(`offsite ${r.server}: FAILED: ${error}`);
        out.push({ server: r.server, kind: 'skipped', error });
      }
    }
  } finally {
    clearTimeout(timer);
    // requests still in flight after a deadline must not keep the run alive
    if (!opts.target) target.close();
  }
  return out;
}

export interface SendInput {
  target: Target;
  recipients: Recipient[];
  server: string;
  snapshotDir: string;
  snapshot: string;
  base?: { dir: string; record: UploadRecord };
  log: (line: string) => void;
  attempts: number;
  backoffMs: number;
  now: Date;
  zstdLevel?: number;
  newTag?: () => string;
  /** aborts the attempt in flight; no retry after it */
  signal?: AbortSignal;
  /** an incremental's big changed files as zstd patches against the base (offsite/deltas.ts) */
  deltas?: { settings: DeltaSettings; stagingDir: string; keepFreeBytes: number };
  /** default MAX_INCREMENTAL_CHANGES */
  maxIncrementalChanges?: number;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}

/**
 * An incremental's selection is held in memory (~300 bytes a changed path at its peak); past this
 * many changed paths (a chown -R, a restored tree) a full goes instead, whose list streams from disk:
 * it stays within the wrapper's heap (NODE_HEAP_FLAGS) and costs about the same bytes.
 */
const MAX_INCREMENTAL_CHANGES = 200_000;

/** Where the full's sorted member list goes: next to the delta staging room on the backup disk, else the system's temp directory. */
const sortParent = (i: SendInput): string => (i.deltas ? dirname(i.deltas.stagingDir) : tmpdir());

/** Uploads one archive + its manifest object, retrying under fresh keys; returns the record to append. */
export async function sendArchive(i: SendInput): Promise<UploadRecord> {
  // both manifests are read as streams (select.ts), never held whole
  const cur = manifestEntries(join(i.snapshotDir, 'manifest.jsonl'));
  if (!i.base) {
    const parent = sortParent(i);
    await mkdir(parent, { recursive: true });
    const full = selectFull(cur, parent);
    try {
      const toBuffers = function* () {
        for (const p of full.members) yield Buffer.from(p, 'latin1');
      };
      const whole = { form: 'whole' as const, file: join(i.snapshotDir, 'manifest.jsonl') };
      return await sendSelected(i, { include: { count: full.members.count, paths: toBuffers }, deletions: [], changedFiles: full.changedFiles, changedBytes: full.changedBytes }, undefined, whole, 'full');
    } finally {
      full.dispose();
    }
  }
  const baseEntries = manifestEntries(join(i.base.dir, 'manifest.jsonl'));
  let sel: Selection;
  try {
    sel = selectIncremental(baseEntries, cur, i.maxIncrementalChanges ?? MAX_INCREMENTAL_CHANGES);
  } catch (e) {
    if (!(e instanceof TooManyChanges)) throw e;
    i.log(`offsite ${i.server}: ${e.message}: a full instead`);
    return sendArchive({ ...i, base: undefined });
  }
  const kind = 'incremental';
  let staged: Staged | undefined;
  if (i.deltas) {
    const included = new Set(sel.include.map((p) => p.toString('latin1')));
    // patches only save bytes: when staging them fails, the files go whole
    staged = await stageDeltas({ snapshotDir: i.snapshotDir, baseDir: i.base.dir, baseSnapshot: i.base.record.snapshot, base: baseEntries, cur, included: (k) => included.has(k), log: i.log, ...i.deltas }).catch((e: Error) => {
      i.log(`offsite ${i.server}: no deltas this time (${e.message}); changed files go whole`);
      return undefined;
    });
    const d = staged?.index.deltas ?? [];
    if (staged && (d.length || staged.index.whole.length))
      i.log(`offsite ${i.server}: ${d.length} file(s) as deltas (${d.reduce((n, x) => n + x.patchBytes, 0)} bytes for ${d.reduce((n, x) => n + x.bytes, 0)}), ${staged.index.whole.length} big changed file(s) whole`);
  }
  const include = staged ? sel.include.filter((p) => !staged.replaced.has(p.toString('latin1'))) : sel.include;
  let diffDir: string | undefined;
  try {
    const parent = sortParent(i);
    await mkdir(parent, { recursive: true });
    diffDir = await mkdtemp(join(parent, '.manifest-'));
    const diff = await manifestDiff(i.snapshotDir, i.base.dir, diffDir);
    i.log(`offsite ${i.server}: manifest as a diff against ${i.base.record.snapshot}'s (${diff.stats.removed} line(s) out, ${diff.stats.added} in)`);
    return await sendSelected(i, { ...sel, include: { count: include.length, paths: () => include } }, staged, diff, kind);
  } finally {
    await staged?.cleanup();
    if (diffDir) await rm(diffDir, { recursive: true, force: true });
  }
}

/** What goes with an archive as its snapshot's manifest: the whole manifest.jsonl (a full), or its diff against the base's (manifest-diff.ts). */
interface ManifestToSend {
  form: ManifestForm;
  file: string;
  /** the diff as an archive member (.pullvault/manifest.diff) */
  member?: { members: Buffer[]; transform: string };
}

/** The incremental's manifest diff, in `dir`, as the archive member that carries manifest.jsonl's mode, owner and mtime (the by-hand route copies them). */
async function manifestDiff(snapshotDir: string, baseDir: string, dir: string): Promise<ManifestToSend & { stats: ReturnType<typeof writeManifestDiff> }> {
  const cur = join(snapshotDir, 'manifest.jsonl');
  const file = join(dir, 'manifest.diff');
  const stats = writeManifestDiff(join(baseDir, 'manifest.jsonl'), cur, file);
  const st = statSync(cur);
  await chmod(file, st.mode & 0o7777);
  try {
    chownSync(file, st.uid, st.gid);
  } catch {
    // not root (tests, a dev machine): the member keeps this process's owner
  }
  await utimes(file, st.atime, st.mtime);
  return { form: 'diff', file, stats, member: { members: [Buffer.from(file)], transform: transformFor(dir) } };
}

/** What sendSelected sends: the member paths (re-readable: each attempt reads them again) and the counts for the log. */
interface ToSend extends Omit<Selection, 'include'> {
  include: { count: number; paths: () => Iterable<Buffer> };
}

async function sendSelected(i: SendInput, sel: ToSend, staged: Staged | undefined, manifest: ManifestToSend, kind: 'full' | 'incremental'): Promise<UploadRecord> {
  // an incremental carries its manifest as the diff member instead of manifest.jsonl
  const rootFiles = ROOT_FILES.filter((f) => existsSync(join(i.snapshotDir, f)) && !(manifest.form === 'diff' && f === 'manifest.jsonl')).map((f) => Buffer.from(f));
  const include = function* () {
    yield* sel.include.paths();
    yield* rootFiles;
  };
  let info: SnapshotInfo | undefined;
  try {
    info = JSON.parse(await readFile(join(i.snapshotDir, 'snapshot.json'), 'utf8')) as SnapshotInfo;
  } catch {
    /* optional */
  }
  i.log(`offsite ${i.server}: ${sel.include.count} entries (${sel.changedFiles} files, ${sel.changedBytes} bytes), ${sel.deletions.length} deletions`);
  let lastError: unknown;
  for (let attempt = 1; attempt <= i.attempts; attempt++) {
    i.signal?.throwIfAborted();
    const name: ArchiveName = {
      kind,
      server: i.server,
      chainId: i.base ? i.base.record.chainId : newChainId(i.snapshot, (i.newTag ?? newTag)()),
      snapshot: i.snapshot,
      base: i.base?.record.snapshot,
      tag: (i.newTag ?? newTag)(),
    };
    const key = archiveKey(i.target.prefix, name);
    const mkey = manifestObjectKey(i.target.prefix, name);
    const started = Date.now();
    const archiveInfo = { format: 1, kind, server: i.server, snapshot: i.snapshot, base: name.base ?? null, chainId: name.chainId };
    const src = tarZstStream({ snapshotDir: i.snapshotDir, include: include(), deletions: sel.deletions, info: archiveInfo, mtime: Math.floor(i.now.getTime() / 1000), zstdLevel: i.zstdLevel, extra: [...(staged ? [staged] : []), ...(manifest.member ? [manifest.member] : [])] });
    try {
      const enc = await encrypt(src.stream, i.recipients);
      const put = await Promise.all([i.target.put(key, enc, undefined, i.signal), src.done]).then(([p]) => p);
      const header = { pullvault: 'manifest', v: 2, ...archiveInfo, manifest: manifest.form, archive: { key, bytes: put.bytes, sha256: put.sha256 }, deletions: sel.deletions.length, info };
      const ms = jsonlZstStream(header, manifest.file);
      let mput;
      try {
        mput = await Promise.all([i.target.put(mkey, await encrypt(ms.stream, i.recipients), undefined, i.signal), ms.done]).then(([p]) => p);
      } catch (e) {
        ms.kill();
        throw e;
      }
      const seconds = (Date.now() - started) / 1000;
      i.log(`offsite ${i.server}: stored ${key} (${put.bytes} bytes in ${seconds.toFixed(1)} s)`);
      return {
        v: 1,
        server: i.server,
        snapshot: i.snapshot,
        kind,
        chainId: name.chainId,
        ...(name.base ? { base: name.base } : {}),
        key,
        manifestKey: mkey,
        bytes: put.bytes,
        manifestBytes: mput.bytes,
        sha256: put.sha256,
        ...(put.etag ? { etag: put.etag } : {}),
        ...(put.checksum ? { checksum: put.checksum } : {}),
        // the run's clock (what the schedule compares with), not the wall clock at the end
        uploadedAt: i.now.toISOString(),
        seconds,
      };
    } catch (e) {
      src.kill();
      if (i.signal?.aborted) throw i.signal.reason;
      lastError = e;
      const why = e instanceof ObjectExistsError ? `${key} already exists (the store refused to overwrite it)` : (e as Error).message;
      i.log(`offsite ${i.server}: attempt ${attempt}/${i.attempts} failed: ${why}${attempt < i.attempts ? '; retrying under a new key' : ''}`);
      if (attempt < i.attempts && !(e instanceof ObjectExistsError)) await sleep(i.backoffMs * 2 ** (attempt - 1), i.signal);
    }
  }
  throw new Error(`not uploaded after ${i.attempts} attempts: ${(lastError as Error).message}`);
}
