// provision-server's half of the MariaDB engine: mariadb and mariadb-dump on the server, an
// account identified via unix_socket with read-only grants on the configured databases (SQL on
// stdin), a login check as the backup user, and the dispatcher's database list.
import type { ServerSpec } from '../../../contract/inventory-schema.ts';
import { MARIADB_DUMP_OPTIONS, MARIADB_NAME_MAX, MARIADB_SYSTEM_SCHEMAS } from '../../../contract/db-engines/mariadb.ts';
import type { Executor } from '../../exec/types.ts';
import { shellQuote } from '../../exec/quote.ts';
import type { ExecCtx, Step } from '../../engine/types.ts';
import { dbListValue } from './db-list.ts';
import {
  describeMariadb,
  mariadbAccountSql,
  mariadbDropSql,
  mariadbExistsSql,
  mariadbGrantsQuery,
  parseShowGrants,
  wantedMariadbAccount,
  type MariadbAccount,
} from './mariadb-sql.ts';
import type { AdminDbEngine } from './types.ts';

type Opts = { after?: string[] };


async function mariadbSql(exec: Executor, sql: string): Promise<string> {
  // SQL on stdin, never on the command line (only apply runs it: account changes)
  return (await exec.change(['mariadb', '--batch', '--skip-column-names'], { input: sql })).stdout;
}

async function readMariadbAccount(exec: Executor, user: string): Promise<MariadbAccount | null> {
  // one round trip: SHOW GRANTS only when the account exists (it errors otherwise)
  const r = await exec.run(
    ['sh', '-c', 'n=$(mariadb --batch --skip-column-names -e "$1") || exit 1; [ "$n" = 0 ] && exit 3; exec mariadb --batch --skip-column-names -e "$2"', 'sh', mariadbExistsSql(user), mariadbGrantsQuery(user)],
    { okCodes: [0, 3] },
  );
  return r.code === 3 ? null : parseShowGrants(r.stdout);
}

export function mariadbAccountStep(id: string, user: string, sel: 'all' | string[], opts: Opts = {}): Step<ExecCtx> {
  const want = wantedMariadbAccount(sel);
  return {
    id,
    ...opts,
    async check({ exec }) {
      const cur = await readMariadbAccount(exec, user);
      if (describeMariadb(cur) === describeMariadb(want)) return null;
      return {
        action: cur ? 'update' : 'create',
        summary: `'${user}'@'localhost' IDENTIFIED VIA unix_socket`,
        before: describeMariadb(cur),
        after: describeMariadb(want),
      };
    },
    async apply({ exec }) {
      await mariadbSql(exec, mariadbAccountSql(user, sel));
    },
  };
}

export function absentMariadbAccountStep(id: string, user: string, opts: Opts = {}): Step<ExecCtx> {
  return {
    id,
    ...opts,
    async check({ exec }) {
      const cur = await readMariadbAccount(exec, user);
      return cur ? { action: 'delete', summary: `'${user}'@'localhost'`, before: describeMariadb(cur), after: '' } : null;
    },
    async apply({ exec }) {
      await mariadbSql(exec, mariadbDropSql(user));
    },
  };
}

/** Check-only: the backup user really gets in over the socket (fails the run with a hint if not). */
export function mariadbLoginCheckStep(id: string, user: string, opts: Opts = {}): Step<ExecCtx> {
  return {
    id,
    ...opts,
    verify: true,
    async check({ exec }) {
      const r = await exec.run(
        ['sh', '-c', 'n=$(mariadb --batch --skip-column-names -e "$1") || exit 1; [ "$n" = 0 ] && exit 3; exec runuser -u "$2" -- mariadb --batch --skip-column-names -e "SELECT 1"', 'sh', mariadbExistsSql(user), user],
        { okCodes: [0, 1, 2, 3] },
      );
      if (r.code === 3) return null; // dry run before the account exists
      if (r.code !== 0)
        throw new Error(`${exec.where}: ${user} cannot log in to MariaDB via unix_socket (${r.stderr.trim().split('\n').pop()}); is the unix_socket plugin enabled?`);
      return null;
    },
    async apply() {},
  };
}

export const mariadbAdmin: AdminDbEngine = {
  name: 'mariadb',
  programs: ['mariadb', 'mariadb-dump'],
  ping: ['mariadb', '--batch', '--skip-column-names', '-e', 'SELECT 1'],
  package: 'mariadb-server',
  installSteps({ server, user, userStep }) {
    const sel = server.databases?.mariadb;
    if (sel === undefined) return [];
    const id = `${server.name}: mariadb account ${user}`;
    return [mariadbAccountStep(id, user, sel, { after: [userStep] }), mariadbLoginCheckStep(`${server.name}: mariadb login as ${user}`, user, { after: [id] })];
  },
  uninstallSteps: (server: ServerSpec, user: string) => [absentMariadbAccountStep(`${server.name}: mariadb account ${user}`, user)],
  dispatcherVars: (server) => ({
    dbs: shellQuote(dbListValue('mariadb', MARIADB_NAME_MAX, server.databases?.mariadb)),
    system: shellQuote(MARIADB_SYSTEM_SCHEMAS.join(' ')),
    nameMax: String(MARIADB_NAME_MAX),
    dumpOptions: MARIADB_DUMP_OPTIONS.join(' '),
  }),
};
