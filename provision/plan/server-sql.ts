// provision-server: the database accounts as data. Pure: desired grants, parsing what the
// server reports, comparing, and the SQL that makes it so. Names are validated before they
// are ever put into SQL (Unix names and [A-Za-z0-9_]+ database names only).
import { DB_NAME_RE } from '../../contract/dispatch-protocol.ts';

const MARIADB_PRIVILEGES = ['SELECT', 'SHOW VIEW', 'TRIGGER', 'LOCK TABLES', 'EVENT'] as const;

const UNIX_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

function checkUser(user: string): string {
  if (!UNIX_NAME.test(user)) throw new Error(`bad backup user name ${JSON.stringify(user)}`);
  return user;
}

// ---- MariaDB ----

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

// ---- PostgreSQL ----

export interface PgRole {
  login: boolean;
  superuser: boolean;
  createdb: boolean;
  createrole: boolean;
  replication: boolean;
  bypassrls: boolean;
  hasPassword: boolean;
  memberOf: string[];
}

/** LOGIN, nothing else but reading: pg_read_all_data, and BYPASSRLS so row-level security cannot hide rows from the dump. */
export const WANTED_PG_ROLE: PgRole = {
  login: true,
  superuser: false,
  createdb: false,
  createrole: false,
  replication: false,
  bypassrls: true,
  hasPassword: false,
  memberOf: ['pg_read_all_data'],
};

export function pgRoleQuery(user: string): string {
  const u = checkUser(user);
  return `SELECT r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
  (SELECT a.rolpassword IS NOT NULL FROM pg_authid a WHERE a.oid = r.oid),
  coalesce((SELECT string_agg(b.rolname, ',' ORDER BY b.rolname) FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid), '')
FROM pg_roles r WHERE r.rolname = '${u}';\n`;
}

/** psql -A -t output (| separated, t/f) → role, null when no row. */
export function parsePgRole(text: string): PgRole | null {
  const line = text.split('\n').map((l) => l.trim()).find(Boolean);
  if (!line) return null;
  const f = line.split('|');
  const b = (i: number) => f[i] === 't';
  return {
    login: b(0),
    superuser: b(1),
    createdb: b(2),
    createrole: b(3),
    replication: b(4),
    bypassrls: b(5),
    hasPassword: b(6),
    memberOf: (f[7] ?? '').split(',').filter(Boolean).sort(),
  };
}

export function describePgRole(r: PgRole | null): string {
  if (!r) return '';
  const attrs = [
    r.login ? 'LOGIN' : 'NOLOGIN',
    r.superuser ? 'SUPERUSER' : 'NOSUPERUSER',
    r.createdb ? 'CREATEDB' : 'NOCREATEDB',
    r.createrole ? 'CREATEROLE' : 'NOCREATEROLE',
    r.replication ? 'REPLICATION' : 'NOREPLICATION',
    r.bypassrls ? 'BYPASSRLS' : 'NOBYPASSRLS',
    r.hasPassword ? 'PASSWORD set' : 'no password (peer auth)',
  ];
  return `${attrs.join(' ')}\nmember of: ${r.memberOf.join(', ') || '(none)'}\n`;
}

export function pgRoleEqual(a: PgRole | null, b: PgRole): boolean {
  return a !== null && describePgRole(a) === describePgRole(b);
}

const ident = (n: string) => `"${n.replace(/"/g, '""')}"`;

export function pgRoleSql(user: string, current: PgRole | null): string {
  const u = ident(checkUser(user));
  const extra = (current?.memberOf ?? []).filter((m) => !WANTED_PG_ROLE.memberOf.includes(m));
  const lines = [
    ...(current ? [] : [`CREATE ROLE ${u};`]),
    `ALTER ROLE ${u} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS PASSWORD NULL;`,
    ...extra.map((m) => `REVOKE ${ident(m)} FROM ${u};`),
    ...WANTED_PG_ROLE.memberOf.map((m) => `GRANT ${ident(m)} TO ${u};`),
  ];
  return lines.join('\n') + '\n';
}

export function pgRoleExistsSql(user: string): string {
  return `SELECT 1 FROM pg_roles WHERE rolname = '${checkUser(user)}'`;
}

export function pgDropSql(user: string): string {
  return `DROP ROLE IF EXISTS ${ident(checkUser(user))};\n`;
}
