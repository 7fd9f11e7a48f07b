// The registry of database engines: each one's contract module, in the order a run dumps them.
// A new engine is its module here (contract/db-engines/), its admin half (provision/server/engines/
// and its dispatcher fragment templates/server/dispatch-<name>.hbs), and one line in each registry.
import type { DbEngineSpec } from './db-engine.ts';
import { mariadb } from './db-engines/mariadb.ts';
import { postgres } from './db-engines/postgres.ts';
import { sqlite } from './db-engines/sqlite.ts';

export const DB_ENGINES = [mariadb, postgres, sqlite] as const;

export type DbEngineName = (typeof DB_ENGINES)[number]['name'];

/** An engine by name; throws for one not registered. */
export function dbEngine(name: string): DbEngineSpec {
  const e = DB_ENGINES.find((x) => x.name === name);
  if (!e) throw new Error(`${name}: not a database engine (${DB_ENGINES.map((x) => x.name).join(', ')})`);
  return e as DbEngineSpec;
}
