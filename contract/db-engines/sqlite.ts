// SQLite: configured database files (no names, no account), each copied by sqlite-dump FILE;
// which files a server may name, and where a copy lands in a snapshot. Pure; both
// provision-server (the dispatcher's list, the inventory check) and the runtime use it.
import { defineDbEngine } from '../db-engine.ts';

/** The dispatcher verb: `sqlite-dump PATH` writes a consistent copy of the configured file (a database file itself) on stdout. */
export const SQLITE_DUMP_VERB = 'sqlite-dump';

/**
 * Characters of a configured database file's path: the plain ones rsync sends unescaped and the
 * dispatcher's word splitting leaves whole (no space, quote, glob or backslash).
 */
export const SQLITE_PATH_CHARS = 'A-Za-z0-9._/@%+=:,~-';

/** PATH_MAX - 1 of Linux. */
export const SQLITE_PATH_MAX = 4095;

/** Why `path` cannot be a configured SQLite file, or null when it can. */
export function sqlitePathProblem(path: string): string | null {
  if (!path.startsWith('/')) return 'must be an absolute path';
  if (path.length > SQLITE_PATH_MAX) return `is longer than ${SQLITE_PATH_MAX} bytes`;
  if (!new RegExp(`^[${SQLITE_PATH_CHARS}]+$`).test(path)) return `may hold only the characters ${SQLITE_PATH_CHARS} (no spaces, quotes or wildcards)`;
  if (path.endsWith('/') || path.includes('//')) return 'must name a file (no trailing or doubled slash)';
  if (path.split('/').some((c) => c === '.' || c === '..')) return 'must not contain . or .. components';
  if (/-(wal|shm|journal)$/.test(path)) return 'names a SQLite side file (-wal, -shm, -journal); name the database file itself';
  return null;
}

/** Throws unless `path` is one a server may configure (quoting at most its first 64 characters). */
export function checkSqlitePath(path: string, what = 'sqlite'): void {
  const why = sqlitePathProblem(path);
  if (why) throw new Error(`${what}: database file ${JSON.stringify(path.length > 64 ? `${path.slice(0, 64)}…` : path)} ${why}`);
}

/** A copy's path inside a snapshot: the server's path under dumps/sqlite/, zstd-compressed. */
export function sqliteDumpFile(path: string): string {
  checkSqlitePath(path);
  return `dumps/sqlite${path}.zst`;
}

const SqliteFile = {
  type: 'string',
  // the pattern keeps to the characters; provision-server's plan says the rest (sqlitePathProblem)
  pattern: `^/[${SQLITE_PATH_CHARS}]*$`,
  maxLength: SQLITE_PATH_MAX,
  description:
    'an SQLite database file: absolute, no . or .. components, no symbolic link on the way; the backup user needs read access to it and, in WAL mode, to its -wal and -shm files',
};

export const sqlite = defineDbEngine<string[]>()({
  name: 'sqlite',
  label: 'SQLite',
  selection: { type: 'array', items: SqliteFile, minItems: 1, uniqueItems: true },
  verbs: [
    {
      verb: SQLITE_DUMP_VERB,
      engine: 'sqlite',
      role: 'dump',
      arg: 'file',
      does: "a consistent copy of one configured SQLite file (sqlite3 -readonly -nofollow FILE 'VACUUM INTO …') on stdout",
    },
  ],
  checkArg: (verb, arg) => checkSqlitePath(arg, verb),
  needsList: () => false,
  dumps: (files) => files.map((f) => ({ name: f, verb: SQLITE_DUMP_VERB, arg: f, file: sqliteDumpFile(f), compress: true })),
  dumpFile: (path) => sqliteDumpFile(path),
  restoreHint: 'zstd -d dumps/sqlite/PATH.zst, then open it with sqlite3',
});
