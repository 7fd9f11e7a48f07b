// tar → zstd → (caller: OpenPGP → target), streaming: GNU tar reads the path list on stdin and
// writes the archive to a pipe, zstd compresses pipe to pipe. Nothing is buffered whole and no
// plaintext touches the disk.
import { createReadStream } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { DELETED_MEMBER, INFO_MEMBER, tarCreateArgv, ustarMember } from './tar-format.ts';
import { start, type Proc } from './proc.ts';

export interface ArchiveInput {
  /** snapshot root (cwd for tar) */
  snapshotDir: string;
  /** relative paths, in tree order */
  include: Buffer[];
  deletions: Buffer[];
  info: Record<string, unknown>;
  mtime: number;
  zstdLevel?: number;
}

export interface Stream {
  stream: Readable;
  /** resolves when every process exited cleanly; rejects with the first failure */
  done: Promise<void>;
  /** kills what still runs (after a failed upload) */
  kill(): void;
}

const RECORD = 10240;

/**
 * A child's stdout with a consumer attached now: Node resumes (and so drops the data of) an
 * exited child's stdout that has no listener yet, and encryption may start reading later.
 */
function held(out: Readable): Readable {
  const p = new PassThrough({ highWaterMark: 1 << 20 });
  out.on('error', (e) => p.destroy(e));
  return out.pipe(p);
}

const join0 = (paths: Buffer[]): Buffer => Buffer.concat(paths.flatMap((p) => [p, Buffer.from([0])]));

function zstdProc(level: number): Proc {
  return start(['zstd', '-q', '-c', `-${level}`, '-T0', '--no-progress'], { stdio: ['pipe', 'pipe', 'pipe'] });
}

/** The compressed archive (tar.zst) of `include`, with the deletion list and info as first members. */
export function tarZstStream(a: ArchiveInput): Stream {
  const tar = start(tarCreateArgv(), { cwd: a.snapshotDir, stdio: ['pipe', 'pipe', 'pipe'] });
  const zstd = zstdProc(a.zstdLevel ?? 3);
  const deleted = ustarMember(DELETED_MEMBER, join0(a.deletions), a.mtime);
  // GNU tar writes whole 10240-byte records and a reader stops at the end-of-archive blocks:
  // the members written here fill whole records too (JSON padded with spaces), so a reader
  // consumes the stream to its last byte (no EPIPE for `zstd -dc | tar -x` under pipefail)
  const json = JSON.stringify(a.info, null, 1) + '\n';
  const used = deleted.length + 512 + Math.ceil(Buffer.byteLength(json) / 512) * 512;
  const pad = (RECORD - (used % RECORD)) % RECORD;
  const head = Buffer.concat([deleted, ustarMember(INFO_MEMBER, Buffer.from(json + ' '.repeat(pad + (Math.ceil(Buffer.byteLength(json) / 512) * 512 - Buffer.byteLength(json)))), a.mtime)]);
  if (head.length % RECORD !== 0) throw new Error('archive head not record-aligned');
  zstd.child.stdin!.write(head);
  tar.child.stdout!.pipe(zstd.child.stdin!);
  const feeding = (async () => {
    const stdin = tar.child.stdin!;
    let batch: Buffer[] = [];
    let size = 0;
    const flush = async () => {
      if (!stdin.write(Buffer.concat(batch))) await new Promise<void>((r, j) => (stdin.once('drain', r), stdin.once('close', () => j(new Error('tar closed its input')))));
      batch = [];
      size = 0;
    };
    for (const p of a.include) {
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
    stream: held(zstd.child.stdout!),
    done,
    kill() {
      tar.child.kill('SIGKILL');
      zstd.child.kill('SIGKILL');
    },
  };
}

/** A file's bytes (manifest.jsonl) after a header line, zstd-compressed. */
export function jsonlZstStream(header: Record<string, unknown>, file: string): Stream {
  const zstd = zstdProc(3);
  const src = new PassThrough();
  src.write(JSON.stringify(header) + '\n');
  const body = createReadStream(file);
  body.pipe(src);
  body.on('error', (e) => src.destroy(e));
  src.pipe(zstd.child.stdin!);
  const done = Promise.all([zstd.done, new Promise<void>((r, j) => (body.on('end', () => r()), body.on('error', j)))]).then(() => undefined);
  done.catch(() => {});
  return { stream: held(zstd.child.stdout!), done, kill: () => zstd.child.kill('SIGKILL') };
}
