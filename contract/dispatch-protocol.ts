// The protocol between the Pi's runtime and /usr/local/sbin/pullvault-dispatch on a server:
// what the Pi's key may ask for (nothing else), and how a refusal looks. Pure constants, so the
// runtime (client) and provision-server (which renders the dispatcher) share one definition.
import { DB_ENGINES, dbEngine, type DbEngineName } from './db-engines.ts';
import type { VerbSpec } from './db-engine.ts';

/** Installed by provision-server; the forced command of the Pi's key. */
export const DISPATCH_PATH = '/usr/local/sbin/pullvault-dispatch';

/** Exit code of the dispatcher for anything it does not allow (one line on stderr says why). */
export const DISPATCH_REFUSED_EXIT = 126;

/** Prefix of every refusal line on stderr: `pullvault-dispatch: refused: <reason>`. */
export const DISPATCH_REFUSED_PREFIX = 'pullvault-dispatch: refused:';

export type { VerbSpec };
export type DbEngine = DbEngineName;

/**
 * The named verbs, every registered engine's (contract/db-engines.ts): the runtime builds its
 * commands from this table, and provision-server renders the dispatcher's case arms (one shell
 * function verb_<verb> each) from it.
 * `rsync --server --sender …` (a pull of a configured root) is the only other thing allowed.
 */
export const DISPATCH_VERBS: readonly VerbSpec[] = DB_ENGINES.flatMap((e) => e.verbs);

export type DispatchVerb = string;

/** The verb of an engine for a role; throws when the engine has none. */
export function engineVerb(engine: DbEngine, role: VerbSpec['role']): DispatchVerb {
  const v = DISPATCH_VERBS.find((x) => x.engine === engine && x.role === role);
  if (!v) throw new Error(`${engine} has no ${role} verb`);
  return v.verb;
}

/** How a verb is written in a command line: "mysql-dump DB" for one that takes a database. */
export const verbUsage = (v: VerbSpec): string => (v.arg === 'db' ? `${v.verb} DB` : v.arg === 'file' ? `${v.verb} FILE` : v.verb);

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
  dbEngine(spec.engine).checkArg(verb, arg);
  return `${verb} ${arg}`;
}
