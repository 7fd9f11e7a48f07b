// MariaDB: databases by name, listed by mysql-list, each dumped as plain SQL (zstd on the Pi).
import { namedDbEngine, selectedNames } from './named.ts';

/** MariaDB's longest database name. */
export const MARIADB_NAME_MAX = 64;

/** Schemas mysql-list never prints, and mysql-dump refuses unless the inventory names them. */
export const MARIADB_SYSTEM_SCHEMAS = ['information_schema', 'performance_schema', 'mysql', 'sys'] as const;

/**
 * mariadb-dump's options: one consistent snapshot (--single-transaction), routines, events and
 * triggers, and rows in primary-key order (--order-by-primary), so that a day's dump differs from
 * the day before only where rows changed: the offsite deltas (runtime/offsite/deltas.ts) then
 * send those regions, not the whole dump. pg_dump keeps each table's physical order by itself.
 */
export const MARIADB_DUMP_OPTIONS = ['--single-transaction', '--order-by-primary', '--routines', '--events', '--triggers'] as const;

export const mariadb = namedDbEngine({
  name: 'mariadb',
  label: 'MariaDB',
  max: MARIADB_NAME_MAX,
  verbs: [
    { verb: 'mysql-list', engine: 'mariadb', role: 'list', arg: 'none', does: 'MariaDB databases, one name per line (system schemas left out)' },
    {
      verb: 'mysql-dump',
      engine: 'mariadb',
      role: 'dump',
      arg: 'db',
      does: `plain SQL on stdout (mariadb-dump ${MARIADB_DUMP_OPTIONS.join(' ')} --databases DB)`,
    },
  ],
  dumps: (sel, listed) =>
    selectedNames(sel, listed).map((db) => ({ name: db, verb: 'mysql-dump', arg: db, file: `dumps/mariadb/${db}.sql.zst`, compress: true })),
  dumpFile: (db) => `dumps/mariadb/${db}.sql.zst`,
  restoreHint: 'zstd -dc dumps/mariadb/DB.sql.zst | mariadb',
});
