// Delta incrementals, the Pi's side: for each changed big file whose previous version is in the
// incremental's base snapshot, `zstd --patch-from=<previous>` into a staging folder on the
// backup disk; the patch replaces the whole file in the archive when it pays (delta-plan.ts).
// Each staged patch carries the new file's mode, owner, mtime, extended attributes and ACLs
// (`cp --attributes-only --preserve=all`), so tar stores them on its member and a restore
// copies them back the same way. Every patch is applied once here and checked against the
// manifest's sha256 before it is used. The archive gets the patches under .pullvault/delta/ and
// the index .pullvault/deltas.json (tar renames the staging folder with --transform).
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { mkdir, open, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { entryPath, type ManifestEntry } from '../../contract/disk-layout.ts';
import { freeBytes } from '../preflight.ts';
import { start } from '../proc.ts';
import {
  DEFAULT_MARGIN, DEFAULT_MIN_BYTES, DELTA_INDEX, RECOMPRESS_ARGV, capCheck, memTotalOf, memoryCap, patchMember, pathRecord, patchPays, planDelta, windowLog,
  type DeltaIndex, type DeltaRecord, type DeltaSettings, type WholeReason,
} from './delta-plan.ts';

export interface StageInput {
  snapshotDir: string;
  /** the base snapshot on the backup disk, and its id */
  baseDir: string;
  baseSnapshot: string;
  /** a folder on the backup disk this archive may use (emptied first, removed by cleanup) */
  stagingDir: string;
  /** the two manifests, read once each (arrays or streams: only the few candidates are kept) */
  base: Iterable<ManifestEntry> | AsyncIterable<ManifestEntry>;
  cur: Iterable<ManifestEntry> | AsyncIterable<ManifestEntry>;
  /** what the incremental includes (latin1 keys of the paths) */
  included: (key: string) => boolean;
  settings: DeltaSettings;
  /** bytes the staging must leave free on the disk */
  keepFreeBytes: number;
  log: (line: string) => void;
}

export interface Staged {
  index: DeltaIndex;
  /** paths (latin1 keys) that leave the archive: their patch goes instead */
  replaced: Set<string>;
  /** absolute paths of the members to add (the index first), for tar */
  members: Buffer[];
  /** tar --transform that names them .pullvault/… in the archive */
  transform: string;
  cleanup(): Promise<void>;
}

/** The settings a Pi uses: 1 MiB threshold, the cap from its RAM (overridable), patches below half the file. */
export function deltaSettings(o: Partial<DeltaSettings> = {}): DeltaSettings {
  let cap = o.capBytes;
  if (cap === undefined) {
    let total: number | undefined;
    try {
      total = memTotalOf(readFileSync('/proc/meminfo', 'utf8'));
    } catch {
      total = undefined;
    }
    cap = memoryCap(total ?? 1e9);
  }
  return { minBytes: o.minBytes ?? DEFAULT_MIN_BYTES, capBytes: cap, margin: o.margin ?? DEFAULT_MARGIN };
}

const key = (e: ManifestEntry) => entryPath(e).toString('latin1');

export async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), h);
  return h.digest('hex');
}

/** Runs argv with stdin from `input` (a file) and stdout into `output` (a file), or both inherited as 'ignore'. */
export async function runFiles(argv: string[], input?: string, output?: string): Promise<void> {
  const inFh = input ? await open(input, 'r') : undefined;
  const outFh = output ? await open(output, 'w', 0o600) : undefined;
  try {
    const p = start(argv, { stdio: [inFh?.fd ?? 'ignore', outFh?.fd ?? 'ignore', 'pipe'] });
    await p.done;
  } finally {
    await inFh?.close();
    await outFh?.close();
  }
}

/** Where a patch is staged, relative to the staging folder (its member name without .pullvault/). */
const staged = (p: string, mode: 'raw' | 'unzst') => patchMember(Buffer.from(p), mode).toString('utf8').slice('.pullvault/'.length);

/** `tar --transform` expression: the staging folder (as tar stores it, without the leading /) becomes .pullvault/. */
export function transformFor(stagingDir: string): string {
  if (!/^\/[A-Za-z0-9/_.+-]+$/.test(stagingDir)) throw new Error(`staging folder ${stagingDir}: only letters, digits and /_.+- are allowed in its path`);
  const re = stagingDir.slice(1).replace(/[.+]/g, (c) => `\\${c}`);
  // S, H: never symlink or hard-link targets
  return `s|^${re}/|.pullvault/|SH`;
}

/** Stages the patches of one incremental; returns what the archive carries instead of the whole files. */
export async function stageDeltas(i: StageInput): Promise<Staged> {
  const s = i.settings;
  await rm(i.stagingDir, { recursive: true, force: true });
  await mkdir(i.stagingDir, { recursive: true, mode: 0o700 });
  const cleanup = () => rm(i.stagingDir, { recursive: true, force: true });
  try {
    // candidates first (few: big changed files), then their previous versions
    const want = new Map<string, ManifestEntry>();
    // paths that are not UTF-8 go whole: zstd and cp take them as argv strings
    for await (const e of i.cur) if (e.t === 'f' && e.p !== undefined && e.s >= s.minBytes && e.hl === undefined && i.included(key(e))) want.set(key(e), e);
    const old = new Map<string, ManifestEntry>();
    if (want.size) for await (const e of i.base) if (want.has(key(e))) old.set(key(e), e);

    const index: DeltaIndex = { v: 1, base: i.baseSnapshot, capBytes: s.capBytes, deltas: [], whole: [] };
    const replaced = new Set<string>();
    const members: Buffer[] = [];
    const whole = (p: Buffer, bytes: number, reason: WholeReason) => index.whole.push({ ...pathRecord(p), bytes, reason });
    for (const [k, cur] of want) {
      const plan = planDelta(old.get(k), cur, s);
      const p = entryPath(cur);
      if (plan.kind === 'none') continue;
      if (plan.kind === 'whole') {
        whole(p, cur.s, plan.reason);
        continue;
      }
      const r = await makePatch(i, p, old.get(k)!, cur, plan.mode);
      if ('reason' in r) {
        whole(p, cur.s, r.reason);
        if (r.detail) i.log(`offsite: delta of ${p.toString('utf8')}: ${r.detail}; sent whole`);
        continue;
      }
      index.deltas.push(r);
      replaced.add(k);
      members.push(Buffer.from(join(i.stagingDir, staged(cur.p!, plan.mode))));
    }
    const indexFile = join(i.stagingDir, DELTA_INDEX.slice('.pullvault/'.length));
    await writeFile(indexFile, JSON.stringify(index, null, 1) + '\n', { mode: 0o644 });
    return { index, replaced, members: [Buffer.from(indexFile), ...members], transform: transformFor(i.stagingDir), cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

type Made = DeltaRecord | { reason: WholeReason; detail?: string };

async function makePatch(i: StageInput, p: Buffer, old: ManifestEntry, cur: ManifestEntry, mode: 'raw' | 'unzst'): Promise<Made> {
  const s = i.settings;
  const out = join(i.stagingDir, staged(cur.p!, mode));
  const tmp = join(i.stagingDir, 'work');
  await mkdir(dirname(out), { recursive: true });
  await mkdir(tmp, { recursive: true });
  const refFile = join(i.baseDir, cur.p!);
  const newFile = join(i.snapshotDir, cur.p!);
  const room = async (need: number) => (await freeBytes(i.stagingDir)) - i.keepFreeBytes >= need;
  try {
    let ref = refFile;
    let target = newFile;
    let refBytes = old.s;
    let bytes = cur.s;
    let refSha = old.h ?? (await sha256Of(refFile));
    let sha = cur.h ?? (await sha256Of(newFile));
    if (mode === 'unzst') {
      // the decompressed sizes are known only once decompressed (a dump from a pipe has no size in
      // its frame): the room is checked before each step with what is known by then
      const unpack = async (from: string, to: string): Promise<Made | number> => {
        try {
          await runFiles(['zstd', '-dcq'], from, to);
          return (await stat(to)).size;
        } catch (e) {
          return { reason: /No space left|ENOSPC/.test((e as Error).message) ? 'no staging space' : 'not a zstd file' };
        }
      };
      if (!(await room(4 * cur.s))) return { reason: 'no staging space' };
      ref = join(tmp, 'ref');
      target = join(tmp, 'new');
      const r = await unpack(refFile, ref);
      if (typeof r !== 'number') return r;
      refBytes = r;
      if (refBytes > s.capBytes) return { reason: 'above the memory cap' };
      // the new content (about the old one's size), its recompressed copy and the patch
      if (!(await room(refBytes + 2 * cur.s))) return { reason: 'no staging space' };
      const n = await unpack(newFile, target);
      if (typeof n !== 'number') return n;
      bytes = n;
      if (!capCheck(refBytes, bytes, s)) return { reason: 'above the memory cap' };
      // a restore recompresses what the patch rebuilds: use it only if that gives these very bytes
      await runFiles(RECOMPRESS_ARGV, target, join(tmp, 'again'));
      if ((await sha256Of(join(tmp, 'again'))) !== cur.h) return { reason: 'recompression differs' };
      refSha = await sha256Of(ref);
      sha = await sha256Of(target);
    } else if (!(await room(cur.s))) return { reason: 'no staging space' };
    const long = windowLog(refBytes, bytes);
    try {
      await runFiles(['zstd', '-q', '-f', '-3', `--long=${long}`, `--patch-from=${ref}`, '-o', out, '--', target]);
    } catch (e) {
      return { reason: 'zstd failed', detail: (e as Error).message };
    }
    const patchBytes = (await stat(out)).size;
    if (!patchPays(patchBytes, cur.s, s)) {
      await rm(out, { force: true });
      return { reason: 'not smaller' };
    }
    // applied once here, as a restore will: a patch that does not rebuild the file is not used
    await runFiles(['zstd', '-dq', '-f', `--long=${long}`, `--patch-from=${ref}`, '-o', join(tmp, 'check'), '--', out]);
    if ((await sha256Of(join(tmp, 'check'))) !== sha) {
      await rm(out, { force: true });
      return { reason: 'zstd failed', detail: 'the patch does not rebuild the file' };
    }
    await runFiles(['cp', '--attributes-only', '--preserve=all', '--', newFile, out]);
    return { ...pathRecord(p), mode, patch: patchMember(p, mode).toString('utf8'), refBytes, refSha256: refSha, bytes, sha256: sha, patchBytes, long };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
