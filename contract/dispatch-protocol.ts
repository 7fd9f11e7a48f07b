// The protocol between the Pi's runtime and /usr/local/sbin/pullvault-dispatch on a server:
// what the Pi's key may ask for (nothing else), and how a refusal looks. Pure constants, so the
// runtime (client) and provision-server (which renders the dispatcher) share one definition.
import { SQLITE_DUMP_VERB, checkSqlitePath } from './sqlite.ts';

/** Installed by provision-server; the forced command of the Pi's key. */
export const DISPATCH_PATH = '/usr/local/sbin/pullvault-dispatch';

/** Exit code of the dispatcher for anything it does not allow (one line on stderr says why). */
export const DISPATCH_REFUSED_EXIT = 126;

/** Prefix of every refusal line on stderr: `pullvault-dispatch: refused: <reason>`. */
export const DISPATCH_REFUSED_PREFIX = 'pullvault-dispatch: refused:';

/** The characters of a database name the dump verbs accept (a regex/shell bracket class). */
export const DB_NAME_CHARS = 'A-Za-z0-9_';
export const DB_NAME_RE = new RegExp(`^[${DB_NAME_CHARS}]+$`);

/** The longest name each engine has (MariaDB: 64 characters; PostgreSQL: NAMEDATALEN-1 = 63 bytes). */
export const DB_NAME_MAX = { mariadb: 64, postgres: 63 } as const;
/** The engines whose databases have names (SQLite's are configured files). */
export type NamedDbEngine = keyof typeof DB_NAME_MAX;
export type DbEngine = NamedDbEngine | 'sqlite';

export interface VerbSpec {
  verb: string;
  engine: DbEngine;
  /** what the runtime uses it for: the databases there are, one database's dump, the engine's globals */
  role: 'list' | 'dump' | 'globals';
  /** its one argument: none, a database name, or a configured database file's absolute path */
  arg: 'none' | 'db' | 'file';
  /** what the dispatcher answers */
  does: string;
}

/**
 * The named verbs: the runtime builds its commands from this table, and provision-server renders
 * the dispatcher's case arms (one shell function verb_<verb> each) and its name checks from it.
 * `rsync --server --sender …` (a pull of a configured root) is the only other thing allowed.
 */
/**
 * mariadb-dump's options: one consistent snapshot (--single-transaction), routines, events and
 * triggers, and rows in primary-key order (--order-by-primary), so that a day's dump differs from
 * the day before only where rows changed: the offsite deltas (runtime/offsite/deltas.ts) then
 * send those regions, not the whole dump. pg_dump keeps each table's physical order by itself.
 */
export const MARIADB_DUMP_OPTIONS = ['--single-transaction', '--order-by-primary', '--routines', '--events', '--triggers'] as const;

export const DISPATCH_VERBS = [
  { verb: 'mysql-list', engine: 'mariadb', role: 'list', arg: 'none', does: 'MariaDB databases, one name per line (system schemas left out)' },
  {
    verb: 'mysql-dump',
    engine: 'mariadb',
    role: 'dump',
    arg: 'db',
    does: `plain SQL on stdout (mariadb-dump ${MARIADB_DUMP_OPTIONS.join(' ')} --databases DB)`,
  },
  { verb: 'pg-list', engine: 'postgres', role: 'list', arg: 'none', does: 'PostgreSQL databases that accept connections, one per line (template0/1 left out)' },
  { verb: 'pg-dump', engine: 'postgres', role: 'dump', arg: 'db', does: 'pg_dump -Fc (custom format) on stdout' },
  { verb: 'pg-globals', engine: 'postgres', role: 'globals', arg: 'none', does: 'roles, tablespaces (pg_dumpall --globals-only --no-role-passwords) as SQL on stdout' },
  {
    verb: SQLITE_DUMP_VERB,
    engine: 'sqlite',
    role: 'dump',
    arg: 'file',
    does: "a consistent copy of one configured SQLite file (sqlite3 -readonly -nofollow FILE 'VACUUM INTO …') on stdout",
  },
] as const satisfies readonly VerbSpec[];

export type DispatchVerb = (typeof DISPATCH_VERBS)[number]['verb'];

/** The verb of an engine for a role; throws when the engine has none. */
export function engineVerb(engine: DbEngine, role: VerbSpec['role']): DispatchVerb {
  const v = DISPATCH_VERBS.find((x) => x.engine === engine && x.role === role);
  if (!v) throw new Error(`${engine} has no ${role} verb`);
  return v.verb;
}

/** How a verb is written in a command line: "mysql-dump DB" for one that takes a database. */
export const verbUsage = (v: VerbSpec): string => (v.arg === 'db' ? `${v.verb} DB` : v.arg === 'file' ? `${v.verb} FILE` : v.verb);

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
export function dispatchCommand(verb: DispatchVerb, arg?: string): string {
  const spec: VerbSpec | undefined = DISPATCH_VERBS.find((v) => v.verb === verb);
  if (!spec) throw new Error(`${verb}: not a dispatcher verb`);
  if ((spec.arg !== 'none') !== (arg !== undefined))
    throw new Error(`${verb}: ${spec.arg === 'db' ? 'needs a database name' : spec.arg === 'file' ? 'needs a database file' : 'takes no argument'}`);
  if (arg === undefined) return verb;
  if (spec.arg === 'file') checkSqlitePath(arg, verb);
  else checkDbName(spec.engine as NamedDbEngine, arg, verb);
  return `${verb} ${arg}`;
}

/** Throws unless `name` is one the dispatcher accepts for the engine (quoting at most its first 64 characters). */
export function checkDbName(engine: NamedDbEngine, name: string, what: string = engine): void {
  const shown = name.length > 64 ? `${JSON.stringify(name.slice(0, 64))}…` : JSON.stringify(name);
  if (!DB_NAME_RE.test(name)) throw new Error(`${what}: database name ${shown} does not match [${DB_NAME_CHARS}]+`);
  if (name.length > DB_NAME_MAX[engine]) throw new Error(`${what}: database name ${shown} is longer than ${engine}'s ${DB_NAME_MAX[engine]} bytes`);
}
