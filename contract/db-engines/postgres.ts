// PostgreSQL: the cluster's globals (roles, tablespaces) once, then databases by name, listed by
// pg-list, each dumped by pg_dump -Fc (compressed by pg_dump, stored as it is).
import { namedDbEngine, selectedNames } from './named.ts';

/** PostgreSQL's longest database name: NAMEDATALEN-1 bytes. */
export const PG_NAME_MAX = 63;

/** Template databases pg-list never prints, and pg-dump refuses unless the inventory names them. */
export const PG_TEMPLATE_DATABASES = ['template0', 'template1'] as const;

const GLOBALS_FILE = 'dumps/postgres/globals.sql.zst';
const databaseFile = (db: string) => `dumps/postgres/${db}.pgdump`;

export const postgres = namedDbEngine({
  name: 'postgres',
  label: 'PostgreSQL',
  max: PG_NAME_MAX,
  verbs: [
    { verb: 'pg-list', engine: 'postgres', role: 'list', arg: 'none', does: 'PostgreSQL databases that accept connections, one per line (template0/1 left out)' },
    { verb: 'pg-dump', engine: 'postgres', role: 'dump', arg: 'db', does: 'pg_dump -Fc (custom format) on stdout' },
    { verb: 'pg-globals', engine: 'postgres', role: 'globals', arg: 'none', does: 'roles, tablespaces (pg_dumpall --globals-only --no-role-passwords) as SQL on stdout' },
  ],
  dumps: (sel, listed) => [
    { name: 'globals', verb: 'pg-globals', file: GLOBALS_FILE, compress: true },
    ...selectedNames(sel, listed).map((db) => ({ name: db, verb: 'pg-dump', arg: db, file: databaseFile(db), compress: false })),
  ],
  dumpFile: (name, what = 'database') => (what === 'globals' ? GLOBALS_FILE : databaseFile(name)),
  restoreHint: 'createdb DB && pg_restore --no-owner -d DB dumps/postgres/DB.pgdump (roles: zstd -dc dumps/postgres/globals.sql.zst | psql)',
});
