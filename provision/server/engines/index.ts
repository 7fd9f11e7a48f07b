// provision-server's registry of database engines: one admin half per engine of
// contract/db-engines.ts (the type makes a missing one a compile error).
import { DB_ENGINES, type DbEngineName } from '../../../contract/db-engines.ts';
import { mariadbAdmin } from './mariadb.ts';
import { postgresAdmin } from './postgres.ts';
import { sqliteAdmin } from './sqlite.ts';
import type { AdminDbEngine } from './types.ts';

const ADMIN: Record<DbEngineName, AdminDbEngine> = { mariadb: mariadbAdmin, postgres: postgresAdmin, sqlite: sqliteAdmin };

/** Every engine's admin half, in the registry's order. */
export const ADMIN_DB_ENGINES: readonly AdminDbEngine[] = DB_ENGINES.map((e) => ADMIN[e.name]);

export type { AdminDbEngine, EngineFact } from './types.ts';
