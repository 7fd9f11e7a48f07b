// tar → zstd → (caller: OpenPGP → target), streaming: GNU tar reads the path list on stdin and
// writes the archive into an OS pipe straight to zstd (the bytes never pass through Node), zstd
// compresses pipe to pipe. The members pullvault writes itself go first, as a zstd frame of their
// own (zstd -d outputs concatenated frames as one stream). Nothing is buffered whole and no
// plaintext touches the disk.
import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { DELETED_MEMBER, INFO_MEMBER, tarCreateArgv, ustarMember } from './tar-format.ts';
import { deathBoundArgv, type Proc } from '../../lib/proc/index.ts';
import { start } from '../proc.ts';

export interface ArchiveInput {
  /** snapshot root (cwd for tar) */
  snapshotDir: string;
  /** relative paths, in tree order (read once, as tar takes them) */
  include: Iterable<Buffer>;
  deletions: Buffer[];
  info: Record<string, unknown>;
  mtime: number;
  zstdLevel?: number;
  /** members from outside the snapshot (absolute paths), each list renamed by its tar --transform: the delta patches, the manifest diff */
  extra?: { members: Buffer[]; transform: string }[];
}

export interface Stream {
  stream: Readable;
  /** resolves when every process exited cleanly; rejects with the first failure */
  done: Promise<void>;
  /** kills what still runs (after a failed upload) */
  kill(): void;
}

const RECORD = 10240;

const join0 = (paths: Buffer[]): Buffer => Buffer.concat(paths.flatMap((p) => [p, Buffer.from([0])]));

const zstdArgv = (level: number) => ['zstd', '-q', '-c', `-${level}`, '-T0', '--no-progress'];

/** One zstd frame of a small in-memory buffer. */
function zstdFrame(data: Buffer, level: number): Buffer {
  // synchronous, so outside the child registry; still bound to die with the runtime
  const [cmd, ...args] = deathBoundArgv(zstdArgv(level));
  const r = spawnSync(cmd, args, { input: data, maxBuffer: 1 << 30, stdio: ['pipe', 'pipe', 'pipe'] });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`zstd exited ${r.status ?? r.signal}: ${r.stderr.toString('utf8').trim().slice(-500)}`);
  return r.stdout;
}

/**
 * The compressed `head` frame, then what `zstd` writes, with a consumer attached to zstd's stdout
 * now: Node resumes (and so drops the data of) an exited child's stdout that has no listener
 * yet, and encryption may start reading later.
 */
function withHead(head: Buffer, zstd: Proc): Readable {
  const p = new PassThrough({ highWaterMark: 1 << 20 });
  p.write(head);
  const out = zstd.child.stdout!;
  out.on('error', (e) => p.destroy(e));
  return out.pipe(p);
}

function* chain<T>(...lists: Iterable<T>[]): Generator<T> {
  for (const l of lists) yield* l;
}

/** The compressed archive (tar.zst) of `include`, with the deletion list and info as first members. */
export function tarZstStream(a: ArchiveInput): Stream {
  const level = a.zstdLevel ?? 3;
  const deleted = ustarMember(DELETED_MEMBER, join0(a.deletions), a.mtime);
  // GNU tar writes whole 10240-byte records and a reader stops at the end-of-archive blocks:
  // the members written here fill whole records too (JSON padded with spaces), so a reader
  // consumes the stream to its last byte (no EPIPE for `zstd -dc | tar -x` under pipefail)
  const json = JSON.stringify(a.info, null, 1) + '\n';
  const used = deleted.length + 512 + Math.ceil(Buffer.byteLength(json) / 512) * 512;
  const pad = (RECORD - (used % RECORD)) % RECORD;
  const head = Buffer.concat([deleted, ustarMember(INFO_MEMBER, Buffer.from(json + ' '.repeat(pad + (Math.ceil(Buffer.byteLength(json) / 512) * 512 - Buffer.byteLength(json)))), a.mtime)]);
  if (head.length % RECORD !== 0) throw new Error('archive head not record-aligned');
  const headFrame = zstdFrame(head, level);
  const tar = start([...tarCreateArgv(), ...(a.extra ?? []).map((x) => `--transform=${x.transform}`)], { cwd: a.snapshotDir, stdio: ['pipe', 'pipe', 'pipe'] });
  // tar's stdout becomes zstd's stdin; the parent closes its own end at once, so nothing in
  // Node can read (steal) from that pipe, and zstd sees EOF when tar exits
  const zstd = start(zstdArgv(level), { stdio: [tar.child.stdout!, 'pipe', 'pipe'] });
  tar.child.stdout!.destroy();
  const feeding = (async () => {
    const stdin = tar.child.stdin!;
    let batch: Buffer[] = [];
    let size = 0;
    const flush = async () => {
      if (!stdin.write(Buffer.concat(batch))) await new Promise<void>((r, j) => (stdin.once('drain', r), stdin.once('close', () => j(new Error('tar closed its input')))));
      batch = [];
      size = 0;
    };
    for (const p of chain(a.include, ...(a.extra ?? []).map((x) => x.members))) {
      batch.push(p, Buffer.from([0]));
      size += p.length + 1;
      if (size > 65536) await flush();
    }
    if (batch.length) await flush();
    stdin.end();
  })();
  const done = Promise.all([tar.done, zstd.done, feeding]).then(() => undefined);
  done.catch(() => {});
  return {
    stream: withHead(headFrame, zstd),
    done,
    kill() {
      tar.child.kill('SIGKILL');
      zstd.child.kill('SIGKILL');
    },
  };
}

/** A file's bytes (manifest.jsonl) after a header line, zstd-compressed: the header line as one frame, then zstd reading the file itself. */
export function jsonlZstStream(header: Record<string, unknown>, file: string): Stream {
  const headFrame = zstdFrame(Buffer.from(JSON.stringify(header) + '\n'), 3);
  const fd = openSync(file, 'r');
  let zstd: Proc;
  try {
    zstd = start(zstdArgv(3), { stdio: [fd, 'pipe', 'pipe'] });
  } finally {
    closeSync(fd);
  }
  const done = zstd.done.then(() => undefined);
  done.catch(() => {});
  return { stream: withHead(headFrame, zstd), done, kill: () => zstd.child.kill('SIGKILL') };
}
