// provision-server's part of the SQLite engine: the inventory's files judged before anything
// changes, and a check-only step proving the backup user can open each one the way the
// dispatcher will (read-only, no symbolic link on the way). SQLite needs no account: access is
// the file's and its directories' permissions, given through the backup user's groups.
import type { ServerSpec } from '../../../contract/inventory-schema.ts';
import { SQLITE_PATH_CHARS, SQLITE_PATH_MAX, checkSqlitePath, sqlitePathProblem } from '../../../contract/db-engines/sqlite.ts';
import { shellQuote } from '../../exec/quote.ts';
import type { ExecCtx, Step } from '../../engine/types.ts';
import type { AdminDbEngine } from './types.ts';

/** One line per configured file the dispatcher could not serve exactly. */
export function sqliteProblems(server: ServerSpec, index: number): string[] {
  return (server.databases?.sqlite ?? []).flatMap((f, j) => {
    const why = sqlitePathProblem(f);
    return why ? [`servers[${index}].databases.sqlite[${j}]: ${JSON.stringify(f)} ${why}`] : [];
  });
}

// exit 3: no such user yet (a dry run); 4: no sqlite3; 5: missing; 6: a symlink on the way; 7: not a file
const OPEN_AS_USER = `id -u -- "$1" >/dev/null 2>&1 || exit 3
command -v sqlite3 >/dev/null 2>&1 || exit 4
r=$(realpath -e -- "$2" 2>/dev/null) || exit 5
[ "$r" = "$2" ] || { echo "$r"; exit 6; }
[ -f "$2" ] && [ ! -L "$2" ] || exit 7
exec runuser -u "$1" -- sqlite3 -batch -bail -readonly -nofollow "$2" 'PRAGMA schema_version'`;

/** Check-only: `user` opens `file` read-only as the dispatcher's sqlite-dump will (fails the run with what to do). */
function sqliteReadCheckStep(id: string, user: string, file: string, opts: { after?: string[] } = {}): Step<ExecCtx> {
  return {
    id,
    ...opts,
    verify: true,
    async check({ exec }) {
      const r = await exec.run(['sh', '-c', OPEN_AS_USER, 'sh', user, file], { okCodes: [0, 1, 2, 3, 4, 5, 6, 7] });
      const where = `${exec.where}: ${file}`;
      const said = r.stderr.trim().split('\n').pop() ?? '';
      switch (r.code) {
        case 0:
        case 3:
          return null;
        case 4:
          throw new Error(`${exec.where}: sqlite3 not found; install it (apt-get install sqlite3)`);
        case 5:
          throw new Error(`${where} does not exist; fix databases.sqlite in the inventory`);
        case 6:
          throw new Error(`${where} is reached through a symbolic link (it is ${r.stdout.trim()}); name the real path in the inventory`);
        case 7:
          throw new Error(`${where} is not a regular file`);
        default:
          if (/readonly/.test(said))
            throw new Error(
              `${where}: ${user} cannot read it (${said}): in WAL mode its -wal and -shm files must exist and be readable by ${user}, as they are while the application has it open; start the application, or switch the database to journal_mode=DELETE`,
            );
          throw new Error(`${where}: ${user} cannot open it read-only (${said}); give ${user} read access through servers[].groups or servers[].users`);
      }
    },
    async apply() {},
  };
}

/** 'a b' | '' for the dispatcher's SQLITE_FILES (paths hold no spaces: checkSqlitePath). */
export function sqliteListValue(files: string[] | undefined): string {
  for (const f of files ?? []) checkSqlitePath(f);
  return [...new Set(files ?? [])].join(' ');
}

export const sqliteAdmin: AdminDbEngine = {
  name: 'sqlite',
  programs: ['sqlite3'],
  package: 'sqlite3',
  problems: sqliteProblems,
  installSteps: ({ server, user, groupsStep }) =>
    (server.databases?.sqlite ?? []).map((file) => sqliteReadCheckStep(`${server.name}: sqlite ${file} readable by ${user}`, user, file, { after: [groupsStep] })),
  dispatcherVars: (server) => ({
    files: shellQuote(sqliteListValue(server.databases?.sqlite)),
    pathChars: SQLITE_PATH_CHARS,
    pathMax: String(SQLITE_PATH_MAX),
  }),
};
