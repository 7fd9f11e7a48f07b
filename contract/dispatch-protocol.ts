// The protocol between the Pi's runtime and /usr/local/sbin/pullvault-dispatch on a server:
// what the Pi's key may ask for (nothing else), and how a refusal looks. Pure constants, so the
// runtime (client) and provision-server (which renders the dispatcher) share one definition.

/** Installed by provision-server; the forced command of the Pi's key. */
export { DISPATCH_PATH } from './inventory-defaults.ts';

/** Exit code of the dispatcher for anything it does not allow (one line on stderr says why). */
export const DISPATCH_REFUSED_EXIT = 126;

/** Prefix of every refusal line on stderr: `pullvault-dispatch: refused: <reason>`. */
export const DISPATCH_REFUSED_PREFIX = 'pullvault-dispatch: refused:';

/** Database names the dump verbs accept. */
export const DB_NAME_RE = /^[A-Za-z0-9_]+$/;

/** The longest name each engine has (MariaDB: 64 characters; PostgreSQL: NAMEDATALEN-1 = 63 bytes). */
export const DB_NAME_MAX = { mariadb: 64, postgres: 63 } as const;
export type DbEngine = keyof typeof DB_NAME_MAX;

/** The named verbs. `rsync --server --sender …` (a pull of a configured root) is the only other thing allowed. */
export const DISPATCH_VERBS = {
  /** MariaDB databases, one name per line (system schemas left out) */
  mysqlList: 'mysql-list',
  /** `mysql-dump DB`: plain SQL on stdout (mariadb-dump --single-transaction --routines --events --triggers --databases DB) */
  mysqlDump: 'mysql-dump',
  /** PostgreSQL databases that accept connections, one per line (template0/1 left out) */
  pgList: 'pg-list',
  /** `pg-dump DB`: pg_dump -Fc (custom format) on stdout */
  pgDump: 'pg-dump',
  /** roles, tablespaces (pg_dumpall --globals-only --no-role-passwords) as SQL on stdout */
  pgGlobals: 'pg-globals',
} as const;

export type DispatchVerb = (typeof DISPATCH_VERBS)[keyof typeof DISPATCH_VERBS];

/** Verbs that take a database name. */
export const VERBS_WITH_DB: readonly DispatchVerb[] = [DISPATCH_VERBS.mysqlDump, DISPATCH_VERBS.pgDump];

/** Schemas mysql-list never prints, and mysql-dump refuses unless the inventory names them. */
export const MARIADB_SYSTEM_SCHEMAS = ['information_schema', 'performance_schema', 'mysql', 'sys'] as const;

/** Template databases pg-list never prints, and pg-dump refuses unless the inventory names them. */
export const PG_TEMPLATE_DATABASES = ['template0', 'template1'] as const;

/**
 * rsync options refused on a pull, by name and by any abbreviation: they read a file list from
 * the Pi or a path, write logs or batches, delete the sent files, or start a daemon.
 */
export const RSYNC_DENIED_OPTIONS = [
  'remove-source-files',
  'remove-sent-files',
  'files-from',
  'log-file',
  'daemon',
  'config',
  'write-batch',
  'only-write-batch',
  'read-batch',
] as const;

/**
 * The command line (SSH_ORIGINAL_COMMAND) for a verb; throws for a name the dispatcher would
 * refuse, so a client never sends one.
 */
export function dispatchCommand(verb: DispatchVerb, db?: string): string {
  const needsDb = VERBS_WITH_DB.includes(verb);
  if (needsDb !== (db !== undefined)) throw new Error(`${verb}: ${needsDb ? 'needs a database name' : 'takes no argument'}`);
  if (db !== undefined) checkDbName(verb === DISPATCH_VERBS.mysqlDump ? 'mariadb' : 'postgres', db, verb);
  return db === undefined ? verb : `${verb} ${db}`;
}

/** Throws unless `name` is one the dispatcher accepts for the engine (quoting at most its first 64 characters). */
export function checkDbName(engine: DbEngine, name: string, what: string = engine): void {
  const shown = name.length > 64 ? `${JSON.stringify(name.slice(0, 64))}…` : JSON.stringify(name);
  if (!DB_NAME_RE.test(name)) throw new Error(`${what}: database name ${shown} does not match [A-Za-z0-9_]+`);
  if (name.length > DB_NAME_MAX[engine]) throw new Error(`${what}: database name ${shown} is longer than ${engine}'s ${DB_NAME_MAX[engine]} bytes`);
}
