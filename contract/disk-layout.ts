// The snapshot layout and manifest format shared by the pull side (snapshots) and the
// offsite side (archives, restore, verify). Changing it changes what old archives mean:
// bump MANIFEST_VERSION and keep reading the old one.
//
// <disk mountpoint>/pullvault/
//   snapshots/<server>/<id>/             a complete snapshot; id = UTC "YYYYMMDDTHHMMSSZ"
//       files/<path without leading />   the rsync tree of every configured path
//       dumps/<engine>/…                 database dumps, each named by its engine (contract/db-engines/)
//       manifest.jsonl                   one ManifestEntry per line, sorted by path bytes
//       snapshot.json                    SnapshotInfo
//   snapshots/<server>/<id>.partial/     a pull in progress (or killed): never read as a snapshot
//   snapshots/<server>/latest            symlink to the newest complete <id>
//   state/                               lock, offsite.lock, status.json, uploads.jsonl, pull-needs.json
//
// Everything that names a path in it asks vaultLayout (the runtime, and the demo that looks at
// a Pi's disk); dump file names inside a snapshot come from dumpFile.
import { dbEngine, type DbEngineName } from './db-engines.ts';

export const MANIFEST_VERSION = 1;

export type EntryType = 'f' | 'd' | 'l';

export interface ManifestEntry {
  /** path relative to the snapshot root ("files/home/alice/a.txt"), when it is valid UTF-8 */
  p?: string;
  /** the same path as base64 of its raw bytes, when it is not valid UTF-8 (then `p` is absent) */
  pb?: string;
  t: EntryType;
  /** bytes (files), 0 otherwise */
  s: number;
  /** mtime, whole seconds since the epoch (what rsync and tar keep) */
  m: number;
  /** permission bits incl. setuid/setgid/sticky (st_mode & 0o7777) */
  mode: number;
  u: number;
  g: number;
  /** sha256 hex of the content (files only) */
  h?: string;
  /** symlink target (UTF-8), or `lb` base64 of raw bytes */
  l?: string;
  lb?: string;
  /** files with more than one link inside the snapshot: the path (p or pb form) of the first of the group */
  hl?: string;
}

export interface SnapshotInfo {
  version: typeof MANIFEST_VERSION;
  server: string;
  id: string;
  startedAt: string;
  finishedAt: string;
  /** rsync exit 23/24: some files could not be read or vanished */
  partial: boolean;
  unreadable: string[];
  dumps: { engine: DbEngineName; name: string; file: string; bytes: number }[];
  stats: { files: number; bytes: number; hashedFiles: number; hashedBytes: number; prehashedFiles?: number; seconds: number };
  /** what went wrong while making a kept-but-partial snapshot (e.g. a failed dump); absent when none */
  errors?: string[];
}

/** Raw path bytes of an entry, whichever form it was stored in. */
export function entryPath(e: Pick<ManifestEntry, 'p' | 'pb'>): Buffer {
  return e.p !== undefined ? Buffer.from(e.p, 'utf8') : Buffer.from(e.pb ?? '', 'base64');
}

/** Stores raw path bytes in the readable form when they are valid UTF-8. */
export function pathFields(raw: Buffer): Pick<ManifestEntry, 'p' | 'pb'> {
  const s = raw.toString('utf8');
  return Buffer.from(s, 'utf8').equals(raw) ? { p: s } : { pb: raw.toString('base64') };
}

/** Where the layout above lives, given the configured data dir (the backup disk's mountpoint). */
export function vaultLayout(dataDir: string) {
  const root = `${dataDir.replace(/\/+$/, '')}/pullvault`;
  return {
    root,
    snapshots: `${root}/snapshots`,
    state: `${root}/state`,
    serverDir: (server: string) => `${root}/snapshots/${server}`,
    snapshotDir: (server: string, id: string) => `${root}/snapshots/${server}/${id}`,
    partialDir: (server: string, id: string) => `${root}/snapshots/${server}/${id}.partial`,
    latest: (server: string) => `${root}/snapshots/${server}/latest`,
    /** the pull lock (a run holds it while pulling) */
    lock: `${root}/state/lock`,
    /** held while an upload runs: a later run pulls, its snapshots go offsite later */
    offsiteLock: `${root}/state/offsite.lock`,
    status: `${root}/state/status.json`,
    /** what reached the offsite target (runtime/offsite/uploads.ts) */
    uploads: `${root}/state/uploads.jsonl`,
    /** what each server's last pull wrote (runtime/pull-needs.ts) */
    pullNeeds: `${root}/state/pull-needs.json`,
  };
}

export type DumpEngine = SnapshotInfo['dumps'][number]['engine'];

/** A dump's path inside a snapshot, as its engine names it. */
export function dumpFile(engine: DumpEngine, db: string, what: 'database' | 'globals' = 'database'): string {
  return dbEngine(engine).dumpFile(db, what);
}

export const SNAPSHOT_ID_RE = /^\d{8}T\d{6}Z$/;

export function snapshotIdFor(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

export function dateOfSnapshotId(id: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(id);
  if (!m) throw new Error(`not a snapshot id: ${id}`);
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}
