// MariaDB's backup account as data. Pure: the desired grants, parsing what the server reports,
// comparing, and the SQL that makes it so. Names are validated before they are ever put into SQL
// (Unix names and [A-Za-z0-9_]+ database names only).
import { DB_NAME_RE } from '../../../contract/db-engine.ts';
import { checkUser } from './sql-names.ts';

const MARIADB_PRIVILEGES = ['SELECT', 'SHOW VIEW', 'TRIGGER', 'LOCK TABLES', 'EVENT'] as const;


/** object ("*.*" or "`db`.*") → privileges, sorted */
export type GrantMap = Record<string, string[]>;

export interface MariadbAccount {
  exists: boolean;
  /** authentication plugin named in SHOW GRANTS ("unix_socket"), '' if none */
  plugin: string;
  grants: GrantMap;
  grantOption: boolean;
}

function wantedMariadbGrants(sel: 'all' | string[]): GrantMap {
  const privs = [...MARIADB_PRIVILEGES].sort();
  if (sel === 'all') return { '*.*': privs };
  const out: GrantMap = {};
  for (const db of sel) {
    if (!DB_NAME_RE.test(db)) throw new Error(`bad database name ${JSON.stringify(db)}`);
    out[`\`${db}\`.*`] = privs;
  }
  return out;
}

/** Parses SHOW GRANTS FOR output (one GRANT statement per line). */
export function parseShowGrants(text: string): MariadbAccount {
  const grants: GrantMap = {};
  let plugin = '';
  let grantOption = false;
  for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const m = /^GRANT (.+?) ON (\S+) TO \S+(.*)$/.exec(line);
    if (!m) continue;
    const [, privText, object, rest] = m;
    const via = /IDENTIFIED VIA (\w+)/.exec(rest!);
    if (via) plugin = via[1]!;
    if (/WITH GRANT OPTION/.test(rest!)) grantOption = true;
    const privs = privText!.split(',').map((p) => p.trim().toUpperCase()).filter((p) => p && p !== 'USAGE');
    if (privs.length) grants[object!] = [...new Set([...(grants[object!] ?? []), ...privs])].sort();
  }
  return { exists: true, plugin, grants, grantOption };
}

export function describeMariadb(a: MariadbAccount | null): string {
  if (!a || !a.exists) return '';
  const lines = [`identified via ${a.plugin || '(password)'}${a.grantOption ? ', WITH GRANT OPTION' : ''}`];
  for (const obj of Object.keys(a.grants).sort()) lines.push(`${a.grants[obj]!.join(', ')} ON ${obj}`);
  return lines.join('\n') + '\n';
}

export function wantedMariadbAccount(sel: 'all' | string[]): MariadbAccount {
  return { exists: true, plugin: 'unix_socket', grants: wantedMariadbGrants(sel), grantOption: false };
}

export function mariadbAccountSql(user: string, sel: 'all' | string[]): string {
  const u = `'${checkUser(user)}'@'localhost'`;
  const grants = wantedMariadbGrants(sel);
  return [
    `CREATE USER IF NOT EXISTS ${u} IDENTIFIED VIA unix_socket;`,
    `ALTER USER ${u} IDENTIFIED VIA unix_socket;`,
    `REVOKE ALL PRIVILEGES, GRANT OPTION FROM ${u};`,
    ...Object.entries(grants).map(([obj, privs]) => `GRANT ${privs.join(', ')} ON ${obj} TO ${u};`),
    '',
  ].join('\n');
}

export function mariadbExistsSql(user: string): string {
  const u = checkUser(user);
  return `SELECT COUNT(*) FROM mysql.user WHERE User='${u}' AND Host='localhost';\n`;
}

export function mariadbGrantsQuery(user: string): string {
  return `SHOW GRANTS FOR '${checkUser(user)}'@'localhost';\n`;
}

export function mariadbDropSql(user: string): string {
  return `DROP USER IF EXISTS '${checkUser(user)}'@'localhost';\n`;
}
