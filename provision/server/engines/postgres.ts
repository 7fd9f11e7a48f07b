// provision-server's half of the PostgreSQL engine: psql, pg_dump and pg_dumpall on the server, a
// LOGIN role in pg_read_all_data reached by peer auth (SQL on stdin, as the postgres user), a
// login check as the backup user, and the dispatcher's database list.
import type { ServerSpec } from '../../../contract/inventory-schema.ts';
import { PG_NAME_MAX, PG_TEMPLATE_DATABASES } from '../../../contract/db-engines/postgres.ts';
import type { Executor } from '../../exec/types.ts';
import { shellQuote } from '../../exec/quote.ts';
import type { ExecCtx, Step } from '../../engine/types.ts';
import { dbListValue } from './db-list.ts';
import { describePgRole, parsePgRole, pgDropSql, pgRoleEqual, pgRoleExistsSql, pgRoleQuery, pgRoleSql, WANTED_PG_ROLE } from './postgres-sql.ts';
import type { AdminDbEngine } from './types.ts';

type Opts = { after?: string[] };


const PSQL = ['runuser', '-u', 'postgres', '--', 'psql', '-X', '-w', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres'];

/** SQL on stdin as the postgres user: a query (`read`), or a change (an apply). */
async function psql(exec: Executor, sql: string, read = true): Promise<string> {
  return (await (read ? exec.run(PSQL, { input: sql }) : exec.change(PSQL, { input: sql }))).stdout;
}

export function pgRoleStep(id: string, user: string, opts: Opts = {}): Step<ExecCtx> {
  return {
    id,
    ...opts,
    async check({ exec }) {
      const cur = parsePgRole(await psql(exec, pgRoleQuery(user)));
      if (pgRoleEqual(cur, WANTED_PG_ROLE)) return null;
      return { action: cur ? 'update' : 'create', summary: `role ${user} (LOGIN, pg_read_all_data, peer auth)`, before: describePgRole(cur), after: describePgRole(WANTED_PG_ROLE) };
    },
    async apply({ exec }) {
      const cur = parsePgRole(await psql(exec, pgRoleQuery(user)));
      await psql(exec, pgRoleSql(user, cur), false);
    },
  };
}

export function absentPgRoleStep(id: string, user: string, opts: Opts = {}): Step<ExecCtx> {
  return {
    id,
    ...opts,
    async check({ exec }) {
      const cur = parsePgRole(await psql(exec, pgRoleQuery(user)));
      return cur ? { action: 'delete', summary: `role ${user}`, before: describePgRole(cur), after: '' } : null;
    },
    async apply({ exec }) {
      await psql(exec, pgDropSql(user), false);
    },
  };
}

export function pgLoginCheckStep(id: string, user: string, opts: Opts = {}): Step<ExecCtx> {
  return {
    id,
    ...opts,
    verify: true,
    async check({ exec }) {
      const psqlAsPostgres = 'runuser -u postgres -- psql -X -w -q -A -t -d postgres -c "$1"';
      const r = await exec.run(
        ['sh', '-c', `n=$(${psqlAsPostgres}) || exit 1; [ -z "$n" ] && exit 3; exec runuser -u "$2" -- psql -X -w -A -t -d postgres -c "SELECT 1"`, 'sh', pgRoleExistsSql(user), user],
        { okCodes: [0, 1, 2, 3] },
      );
      if (r.code === 3) return null; // dry run before the role exists
      if (r.code !== 0)
        throw new Error(`${exec.where}: ${user} cannot log in to PostgreSQL by peer auth (${r.stderr.trim().split('\n').pop()}); add "local all ${user} peer" to pg_hba.conf`);
      return null;
    },
    async apply() {},
  };
}

export const postgresAdmin: AdminDbEngine = {
  name: 'postgres',
  programs: ['psql', 'pg_dump', 'pg_dumpall'],
  ping: ['runuser', '-u', 'postgres', '--', 'psql', '-X', '-w', '-A', '-t', '-d', 'postgres', '-c', 'SELECT 1'],
  package: 'postgresql',
  installSteps({ server, user, userStep }) {
    if (server.databases?.postgres === undefined) return [];
    const id = `${server.name}: postgres role ${user}`;
    return [pgRoleStep(id, user, { after: [userStep] }), pgLoginCheckStep(`${server.name}: postgres login as ${user}`, user, { after: [id] })];
  },
  uninstallSteps: (server: ServerSpec, user: string) => [absentPgRoleStep(`${server.name}: postgres role ${user}`, user)],
  dispatcherVars: (server) => ({
    dbs: shellQuote(dbListValue('postgres', PG_NAME_MAX, server.databases?.postgres)),
    templates: shellQuote(PG_TEMPLATE_DATABASES.join(' ')),
    nameMax: String(PG_NAME_MAX),
  }),
};
