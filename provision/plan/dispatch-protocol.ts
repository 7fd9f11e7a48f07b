// The protocol between the Pi's runtime and /usr/local/sbin/pullvault-dispatch on a server:
// what the Pi's key may ask for (nothing else), and how a refusal looks. Pure constants, so the
// runtime (client) and provision-server (which renders the dispatcher) share one definition.

/** Installed by provision-server; the forced command of the Pi's key. */
export { DISPATCH_PATH } from '../inventory/defaults.ts';

/** Exit code of the dispatcher for anything it does not allow (one line on stderr says why). */
export const DISPATCH_REFUSED_EXIT = 126;

/** Prefix of every refusal line on stderr: `pullvault-dispatch: refused: <reason>`. */
export const DISPATCH_REFUSED_PREFIX = 'pullvault-dispatch: refused:';

/** Database names the dump verbs accept. */
export const DB_NAME_RE = /^[A-Za-z0-9_]+$/;

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

/** Schemas mysql-list never prints. */
export const MARIADB_SYSTEM_SCHEMAS = ['information_schema', 'performance_schema', 'mysql', 'sys'] as const;

/**
 * The command line (SSH_ORIGINAL_COMMAND) for a verb; throws for a name the dispatcher would
 * refuse, so a client never sends one.
 */
export function dispatchCommand(verb: DispatchVerb, db?: string): string {
  const needsDb = VERBS_WITH_DB.includes(verb);
  if (needsDb !== (db !== undefined)) throw new Error(`${verb}: ${needsDb ? 'needs a database name' : 'takes no argument'}`);
  if (db !== undefined && !DB_NAME_RE.test(db)) throw new Error(`${verb}: database name ${JSON.stringify(db)} does not match [A-Za-z0-9_]+`);
  return db === undefined ? verb : `${verb} ${db}`;
}
