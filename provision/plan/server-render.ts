// provision-server, the pure part that renders files: the dispatcher script and the
// authorized_keys line. Templates come in as strings (templates/server/*.hbs); every value
// is computed and shell-quoted here, so the templates stay plain substitution.
import Handlebars from 'handlebars';
import type { PiSpec, ServerSpec } from '../../contract/inventory-schema.ts';
import { shellQuote } from '../exec/quote.ts';
import {
  DB_NAME_CHARS,
  DB_NAME_MAX,
  DISPATCH_PATH,
  DISPATCH_VERBS,
  DISPATCH_REFUSED_EXIT,
  DISPATCH_REFUSED_PREFIX,
  MARIADB_DUMP_OPTIONS,
  MARIADB_SYSTEM_SCHEMAS,
  PG_TEMPLATE_DATABASES,
  RSYNC_DENIED_OPTIONS,
  checkDbName,
  verbUsage,
  type NamedDbEngine,
} from '../../contract/dispatch-protocol.ts';
import { SQLITE_PATH_CHARS, SQLITE_PATH_MAX, checkSqlitePath } from '../../contract/sqlite.ts';

const SERVER_HEADER = 'managed by pullvault provision-server; edits here are overwritten';

export const SERVER_TEMPLATE_NAMES = ['pullvault-dispatch', 'authorized_keys'] as const;
export type ServerTemplates = Record<(typeof SERVER_TEMPLATE_NAMES)[number], string>;

export const RRSYNC_PATH = '/usr/bin/rrsync';

function render(templates: ServerTemplates, name: keyof ServerTemplates, vars: Record<string, unknown>): string {
  const src = templates[name];
  if (src === undefined) throw new Error(`template templates/server/${name}.hbs is missing`);
  return Handlebars.compile(src, { noEscape: true, strict: true })(vars);
}

/**
 * A path as an rsync (≥ 3.2.4) client puts it on the remote command line: a backslash before
 * each shell-special character (rsync's SHELL_CHARS for file-name arguments).
 */
export function rsyncWireForm(path: string): string {
  return path.replace(/[!#$&;|<>(){}"'` \t\\]/g, (ch) => `\\${ch}`);
}

/** Problems with the roots a dispatcher cannot serve exactly (one line each). */
export function rootProblems(server: ServerSpec, index: number): string[] {
  const out: string[] = [];
  server.paths.forEach((p, j) => {
    // rrsync expands wildcards in client arguments; a root containing them would match other paths.
    if (/[*?[\]]/.test(p.path)) out.push(`servers[${index}].paths[${j}].path: "${p.path}" contains a wildcard character (* ? [ ]); rename the folder or back up its parent`);
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(p.path)) out.push(`servers[${index}].paths[${j}].path: contains a control character`);
    // rrsync splits its command on any whitespace (Python's \s), not only on the spaces rsync escapes
    else if (/[^\S ]|\u0085/.test(p.path)) out.push(`servers[${index}].paths[${j}].path: contains whitespace other than plain spaces`);
    if (/\/\.\.?(\/|$)/.test(p.path)) out.push(`servers[${index}].paths[${j}].path: "${p.path}" must not contain . or .. components`);
  });
  return out;
}

/** A root as configured, without a trailing slash ("/var/www/" → "/var/www"). */
function normalRoot(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

/** '*' | 'a b c' | '' for the dispatcher's MYSQL_DBS / PG_DBS. */
export function dbListValue(engine: NamedDbEngine, sel: 'all' | string[] | undefined): string {
  if (sel === undefined) return '';
  if (sel === 'all') return '*';
  for (const n of sel) checkDbName(engine, n);
  return [...new Set(sel)].join(' ');
}

/** 'a b' | '' for the dispatcher's SQLITE_FILES (paths hold no spaces: checkSqlitePath). */
export function sqliteListValue(files: string[] | undefined): string {
  for (const f of files ?? []) checkSqlitePath(f);
  return [...new Set(files ?? [])].join(' ');
}

/** The shell function of the dispatcher template that answers a verb. */
export const verbFunction = (verb: string): string => `verb_${verb.replace(/-/g, '_')}`;

/** One case arm per verb of the protocol table: the pattern it matches, the function it calls. */
function verbArms(): { pattern: string; call: string }[] {
  return DISPATCH_VERBS.map((v) =>
    v.arg !== 'none'
      ? { pattern: `${shellQuote(`${v.verb} `)}*`, call: `${verbFunction(v.verb)} "\${c#${v.verb} }"` }
      : { pattern: shellQuote(v.verb), call: verbFunction(v.verb) },
  );
}

export function renderDispatcher(templates: ServerTemplates, server: ServerSpec): string {
  const roots = server.paths.map((p) => normalRoot(p.path));
  return render(templates, 'pullvault-dispatch', {
    header: SERVER_HEADER,
    verbArms: verbArms(),
    allowedVerbs: DISPATCH_VERBS.map(verbUsage).join(', '),
    dbNameChars: DB_NAME_CHARS,
    refusedExit: String(DISPATCH_REFUSED_EXIT),
    refusedPrefix: DISPATCH_REFUSED_PREFIX,
    rootsAndWire: roots.flatMap((r) => [shellQuote(r), shellQuote(rsyncWireForm(r))]).join(' '),
    mysqlDbs: shellQuote(dbListValue('mariadb', server.databases?.mariadb)),
    pgDbs: shellQuote(dbListValue('postgres', server.databases?.postgres)),
    sqliteFiles: shellQuote(sqliteListValue(server.databases?.sqlite)),
    sqlitePathChars: SQLITE_PATH_CHARS,
    sqlitePathMax: String(SQLITE_PATH_MAX),
    mysqlSystem: shellQuote(MARIADB_SYSTEM_SCHEMAS.join(' ')),
    pgTemplates: shellQuote(PG_TEMPLATE_DATABASES.join(' ')),
    mysqlNameMax: String(DB_NAME_MAX.mariadb),
    mariadbDumpOptions: MARIADB_DUMP_OPTIONS.join(' '),
    pgNameMax: String(DB_NAME_MAX.postgres),
    rsyncDenied: shellQuote(RSYNC_DENIED_OPTIONS.join(' ')),
    rrsync: shellQuote(RRSYNC_PATH),
  });
}

/** "ssh-ed25519 AAAA…" from a public key file's text (comment dropped); throws when it is not one key. */
export function parsePublicKey(text: string, source: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (lines.length !== 1) throw new Error(`${source}: expected exactly one SSH public key line, found ${lines.length}`);
  const m = /^(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa) ([A-Za-z0-9+/]+=*)(?:\s.*)?$/.exec(lines[0]!);
  if (!m) throw new Error(`${source}: not an SSH public key ("ssh-ed25519 AAAA…"); is it the private key?`);
  return `${m[1]} ${m[2]}`;
}

export function renderAuthorizedKeys(templates: ServerTemplates, pi: PiSpec, piPublicKey: string): string {
  if (!/^[0-9a-fA-F.:/]+$/.test(pi.sourceAddress)) throw new Error(`pi.sourceAddress: "${pi.sourceAddress}" is not an address or CIDR`);
  return render(templates, 'authorized_keys', {
    header: SERVER_HEADER,
    from: pi.sourceAddress,
    command: DISPATCH_PATH,
    key: parsePublicKey(piPublicKey, 'the Pi public key'),
    comment: `pullvault-${pi.name}`,
  });
}
