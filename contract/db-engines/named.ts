// What the engines whose databases have names (MariaDB, PostgreSQL) share: the inventory's
// selection ("all" or names), its check, and the choice of databases a run dumps.
import { DB_NAME_CHARS, checkDbName, defineDbEngine, type DbEngineSpec, type JsonSchema } from '../db-engine.ts';

export type NamedSelection = 'all' | string[];

/** servers[].databases.<engine>: "all", or the names to dump (at most `max` bytes each). */
export function namedSelection(label: string, max: number): JsonSchema {
  const name = { type: 'string', pattern: `^[${DB_NAME_CHARS}]+$`, maxLength: max, description: `a database name: letters, digits, underscore; at most ${max} bytes (${label})` };
  return {
    anyOf: [{ const: 'all', type: 'string' }, { type: 'array', items: name, minItems: 1 }],
    description: '"all": the databases the server has at each run (system schemas and templates left out); or the names to dump',
  };
}

/** The databases a run dumps: the configured names, or (for "all") what the list verb answered. */
export const selectedNames = (sel: NamedSelection, listed: string[]): string[] => (sel === 'all' ? listed : sel);

/**
 * An engine whose databases have names, at most `max` bytes: its inventory selection ("all" or
 * names), the argument check of its verbs and when a run lists first follow from that.
 */
export function namedDbEngine<const Name extends string>(
  e: Pick<DbEngineSpec<Name, NamedSelection>, 'name' | 'label' | 'verbs' | 'dumps' | 'dumpFile' | 'restoreHint'> & { max: number },
): DbEngineSpec<Name, NamedSelection> {
  const { max, ...rest } = e;
  return defineDbEngine<NamedSelection>()({
    ...rest,
    selection: namedSelection(e.label, max),
    checkArg: (verb, arg) => checkDbName(e.name, max, arg, verb),
    needsList: (sel) => sel === 'all',
  });
}
