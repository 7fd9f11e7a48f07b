// PostgreSQL's backup role as data. Pure: the desired role, parsing what the server reports,
// comparing, and the SQL that makes it so (the user name validated before it is put into SQL).
import { checkUser } from './sql-names.ts';


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
