// What the engines whose databases have names (MariaDB, PostgreSQL) share: the inventory's
// selection ("all" or names), its check, and the choice of databases a run dumps.
import { Type } from '@sinclair/typebox';
import { DB_NAME_CHARS } from '../db-engine.ts';

export type NamedSelection = 'all' | string[];

/** servers[].databases.<engine>: "all", or the names to dump (at most `max` bytes each). */
export function namedSelection(label: string, max: number) {
  const name = Type.String({
    pattern: `^[${DB_NAME_CHARS}]+$`,
    maxLength: max,
    description: `a ${label} database name: letters, digits, underscore; at most ${max} bytes`,
  });
  return Type.Union([Type.Literal('all'), Type.Array(name, { minItems: 1 })], {
    description: '"all": the databases the server has at each run (system schemas and templates left out); or the names to dump',
  });
}

/** The databases a run dumps: the configured names, or (for "all") what the list verb answered. */
export const selectedNames = (sel: NamedSelection, listed: string[]): string[] => (sel === 'all' ? listed : sel);
