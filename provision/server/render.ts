// provision-server, the pure part that renders files: the dispatcher script and the
// authorized_keys line. Templates come in as strings (templates/server/*.hbs); every value
// is computed and shell-quoted here, so the templates stay plain substitution.
import Handlebars from 'handlebars';
import type { PiSpec, ServerSpec } from '../../contract/inventory-schema.ts';
import { shellQuote } from '../exec/quote.ts';
import { DISPATCH_PATH, DISPATCH_VERBS, DISPATCH_REFUSED_EXIT, DISPATCH_REFUSED_PREFIX, RSYNC_DENIED_OPTIONS, verbUsage } from '../../contract/dispatch-protocol.ts';
import { DB_NAME_CHARS } from '../../contract/db-engine.ts';
import { ADMIN_DB_ENGINES } from './engines/index.ts';

const SERVER_HEADER = 'managed by pullvault provision-server; edits here are overwritten';

/** The dispatcher's section for one database engine. */
const engineTemplate = (engine: string): string => `dispatch-${engine}`;

export const SERVER_TEMPLATE_NAMES: readonly string[] = ['pullvault-dispatch', 'authorized_keys', ...ADMIN_DB_ENGINES.map((e) => engineTemplate(e.name))];
/** templates/server/<name>.hbs by name (SERVER_TEMPLATE_NAMES) */
export type ServerTemplates = Record<string, string>;

export const RRSYNC_PATH = '/usr/bin/rrsync';

function render(templates: ServerTemplates, name: string, vars: Record<string, unknown>): string {
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
    engineFragments: ADMIN_DB_ENGINES.map((e) => render(templates, engineTemplate(e.name), e.dispatcherVars(server)).trimEnd()),
    verbArms: verbArms(),
    allowedVerbs: DISPATCH_VERBS.map(verbUsage).join(', '),
    dbNameChars: DB_NAME_CHARS,
    refusedExit: String(DISPATCH_REFUSED_EXIT),
    refusedPrefix: DISPATCH_REFUSED_PREFIX,
    rootsAndWire: roots.flatMap((r) => [shellQuote(r), shellQuote(rsyncWireForm(r))]).join(' '),
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
