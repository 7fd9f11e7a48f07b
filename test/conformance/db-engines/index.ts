// One fixture per registered database engine (the type makes a missing one a compile error).
import type { DbEngineName } from '../../../contract/db-engines.ts';
import type { DbEngineFixture } from '../db-engine.ts';
import { mariadbFixture } from './mariadb.ts';
import { postgresFixture } from './postgres.ts';
import { sqliteFixture } from './sqlite.ts';

export const DB_ENGINE_FIXTURES: Record<DbEngineName, DbEngineFixture> = { mariadb: mariadbFixture, postgres: postgresFixture, sqlite: sqliteFixture };
