// Walk a snapshot tree (arbitrary bytes in names: Buffers throughout) and write its manifest.
// Hashes of files hard-linked from the previous snapshot are reused (hash-reuse.ts); files
// hard-linked to each other inside the snapshot are hashed once and carry `hl`.
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, readdirSync, readFileSync, readlinkSync, type BigIntStats } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { pathFields, type ManifestEntry } from '../manifest-format.ts';
import { pathKey, reusableHash, type FileIdentity } from './hash-reuse.ts';

export const MANIFEST_FILE = 'manifest.jsonl';
export const INFO_FILE = 'snapshot.json';
const TOP_LEVEL_SKIP = new Set([MANIFEST_FILE, INFO_FILE]);
const SLASH = Buffer.from('/');
const SMALL = 4 << 20;

export interface ManifestStats {
  files: number;
  bytes: number;
  hashedFiles: number;
  hashedBytes: number;
}

interface Rec {
  rel: Buffer;
  st: BigIntStats;
}

const join = (a: Buffer, b: Buffer) => Buffer.concat([a, SLASH, b]);
const identity = (st: BigIntStats): FileIdentity => ({ dev: st.dev, ino: st.ino, size: Number(st.size), mtime: Number(st.mtimeNs / 1_000_000_000n) });

/** Every entry under root (not root itself), sorted by path bytes. */
export function walk(root: string): Rec[] {
  const out: Rec[] = [];
  const rootB = Buffer.from(root);
  const stack: Buffer[] = [Buffer.alloc(0)];
  while (stack.length) {
    const rel = stack.pop()!;
    const abs = rel.length ? join(rootB, rel) : rootB;
    for (const d of readdirSync(abs, { withFileTypes: true, encoding: 'buffer' })) {
      const name = d.name as unknown as Buffer;
      if (!rel.length && TOP_LEVEL_SKIP.has(name.toString('latin1'))) continue;
      const childRel = rel.length ? join(rel, name) : name;
      const st = lstatSync(join(rootB, childRel), { bigint: true });
      out.push({ rel: childRel, st });
      if (st.isDirectory()) stack.push(childRel);
    }
  }
  return out.sort((a, b) => Buffer.compare(a.rel, b.rel));
}

async function sha256File(path: Buffer, size: number): Promise<string> {
  if (size <= SMALL) return createHash('sha256').update(readFileSync(path)).digest('hex');
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Read a manifest into a map by raw path (latin1 key). Missing file → empty map. */
export async function readManifest(path: string): Promise<Map<string, ManifestEntry>> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const m = new Map<string, ManifestEntry>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as ManifestEntry;
    m.set(pathKey(e), e);
  }
  return m;
}

export interface BuildManifestOptions {
  /** the previous complete snapshot's directory, for hash reuse */
  prevDir?: string;
  onProgress?: (done: number, total: number) => void;
}

/** Build the manifest of the snapshot at `dir` and write `dir/manifest.jsonl` (fsynced). */
export async function buildManifest(dir: string, opts: BuildManifestOptions = {}): Promise<{ entries: ManifestEntry[]; stats: ManifestStats }> {
  const recs = walk(dir);
  const prev = opts.prevDir ? await readManifest(`${opts.prevDir}/${MANIFEST_FILE}`) : new Map<string, ManifestEntry>();
  const prevRoot = opts.prevDir ? Buffer.from(opts.prevDir) : undefined;
  const dirB = Buffer.from(dir);
  const stats: ManifestStats = { files: 0, bytes: 0, hashedFiles: 0, hashedBytes: 0 };
  // inode → first entry of a hard-link group inside this snapshot
  const firstOfInode = new Map<string, ManifestEntry>();
  const entries: ManifestEntry[] = [];
  let i = 0;
  for (const { rel, st } of recs) {
    const base = {
      ...pathFields(rel),
      m: Number(st.mtimeNs / 1_000_000_000n),
      mode: Number(st.mode & 0o7777n),
      u: Number(st.uid),
      g: Number(st.gid),
    };
    let e: ManifestEntry;
    if (st.isDirectory()) e = { ...base, t: 'd', s: 0 };
    else if (st.isSymbolicLink()) {
      const target = readlinkSync(join(dirB, rel), { encoding: 'buffer' });
      const f = pathFields(target);
      e = { ...base, t: 'l', s: 0, ...(f.p !== undefined ? { l: f.p } : { lb: f.pb }) };
    } else if (st.isFile()) {
      const size = Number(st.size);
      stats.files++;
      stats.bytes += size;
      e = { ...base, t: 'f', s: size };
      const inodeKey = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1n ? firstOfInode.get(inodeKey) : undefined;
      if (first) {
        e.h = first.h;
        e.hl = first.p ?? first.pb;
      } else {
        let h: string | undefined;
        const key = rel.toString('latin1');
        const prevEntry = prev.get(key);
        if (prevEntry && prevRoot) {
          let prevStat: FileIdentity | undefined;
          try {
            prevStat = identity(lstatSync(join(prevRoot, rel), { bigint: true }));
          } catch {
            /* gone from the previous snapshot */
          }
          h = reusableHash(identity(st), prevStat, prevEntry);
        }
        if (!h) {
          h = await sha256File(join(dirB, rel), size);
          stats.hashedFiles++;
          stats.hashedBytes += size;
        }
        e.h = h;
        if (st.nlink > 1n) firstOfInode.set(inodeKey, e);
      }
    } else {
      continue; // sockets, fifos, devices: the manifest format has no type for them (restore skips them)
    }
    entries.push(e);
    if (opts.onProgress && ++i % 2000 === 0) opts.onProgress(i, recs.length);
  }
  await writeJsonLines(`${dir}/${MANIFEST_FILE}`, entries);
  return { entries, stats };
}

async function writeJsonLines(path: string, entries: ManifestEntry[]): Promise<void> {
  const fh = await open(path, 'w', 0o644);
  try {
    let chunk: string[] = [];
    for (const e of entries) {
      chunk.push(JSON.stringify(e));
      if (chunk.length === 4096) {
        await fh.write(chunk.join('\n') + '\n');
        chunk = [];
      }
    }
    if (chunk.length) await fh.write(chunk.join('\n') + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
}
