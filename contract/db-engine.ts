// The DbEngine seam, the part both sides agree on: what an engine adds to the inventory
// (servers[].databases.<name>), which dispatcher verbs it answers and what their one argument may
// be, which dumps a run takes and where each lands in a snapshot. Each engine is one module in
// contract/db-engines/, listed in contract/db-engines.ts; its admin half (facts, account steps,
// the dispatcher's shell fragment) is in provision/server/engines/. Pure.

export interface VerbSpec {
  verb: string;
  /** the engine that answers it (DbEngineSpec.name) */
  engine: string;
  /** what the runtime uses it for: the databases there are, one database's dump, the engine's globals */
  role: 'list' | 'dump' | 'globals';
  /** its one argument: none, a database name, or a configured database file's absolute path */
  arg: 'none' | 'db' | 'file';
  /** what the dispatcher answers */
  does: string;
}

/** One dump a run takes: the verb (and its argument) whose stdout becomes `file` in the snapshot. */
export interface DumpJob {
  /** as snapshot.json records it: a database name, "globals", a file path */
  name: string;
  verb: string;
  arg?: string;
  /** path inside the snapshot (dumps/<engine>/…) */
  file: string;
  /** zstd the stream on the Pi (false: the engine's format is compressed already) */
  compress: boolean;
}

/** A JSON Schema (2020-12) as plain data: the runtime bundle carries no schema builder. */
export type JsonSchema = { readonly [k: string]: unknown };

export interface DbEngineSpec<Name extends string = string, Selection = unknown> {
  /** the key under servers[].databases and the engine snapshot.json names */
  name: Name;
  /** for people: "PostgreSQL" */
  label: string;
  /** the inventory schema of servers[].databases.<name> (a value of it is a Selection) */
  selection: JsonSchema;
  /** the dispatcher verbs it answers (the protocol table is every engine's verbs) */
  verbs: readonly VerbSpec[];
  /** throws unless the dispatcher accepts `arg` for `verb` (a database name, a configured file) */
  checkArg(verb: string, arg: string): void;
  /** the names of the selection's list verb answer when the selection asks for it (databases "all") */
  needsList(selection: Selection): boolean;
  /** the dumps of one run, in order; `listed`: the list verb's lines when needsList said so */
  dumps(selection: Selection, listed: string[]): DumpJob[];
  /** a dump's path inside a snapshot, from what snapshot.json records as its name */
  dumpFile(name: string, what?: 'database' | 'globals'): string;
  /** how the owner opens a restored dump file (README, restore output) */
  restoreHint: string;
}

/** The type of an engine's servers[].databases.<name>. */
export type SelectionOf<E> = E extends DbEngineSpec<string, infer S> ? S : never;

/** Typed once per engine: keeps its name literal and its selection's type for the inventory's types. */
export function defineDbEngine<Selection>() {
  return <const Name extends string>(spec: DbEngineSpec<Name, Selection>): DbEngineSpec<Name, Selection> => {
    for (const v of spec.verbs) if (v.engine !== spec.name) throw new Error(`${spec.name}: verb ${v.verb} names engine ${v.engine}`);
    return spec;
  };
}

/** The characters of a database name the dump verbs accept (a regex/shell bracket class). */
export const DB_NAME_CHARS = 'A-Za-z0-9_';
export const DB_NAME_RE = new RegExp(`^[${DB_NAME_CHARS}]+$`);

/** Throws unless `name` is one the dispatcher accepts for `engine`, whose names are at most `max` bytes (quoting at most its first 64 characters). */
export function checkDbName(engine: string, max: number, name: string, what: string = engine): void {
  const shown = name.length > 64 ? `${JSON.stringify(name.slice(0, 64))}…` : JSON.stringify(name);
  if (!DB_NAME_RE.test(name)) throw new Error(`${what}: database name ${shown} does not match [${DB_NAME_CHARS}]+`);
  if (name.length > max) throw new Error(`${what}: database name ${shown} is longer than ${engine}'s ${max} bytes`);
}
