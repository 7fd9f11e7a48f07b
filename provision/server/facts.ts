// provision-server: what the plan needs to know about a server before deciding anything
// (read-only probes), and the pure judgement of those facts into one-line problems.
import type { Executor } from '../exec/types.ts';
import type { ServerSpec } from '../../contract/inventory-schema.ts';
import { backupUser } from '../../contract/inventory-defaults.ts';
import { dbEngine } from '../../contract/db-engines.ts';
import { RRSYNC_PATH } from './render.ts';
import { ADMIN_DB_ENGINES, type AdminDbEngine, type EngineFact } from './engines/index.ts';

/** GECOS of the backup user: how provision-server recognises an account it created. */
export const BACKUP_USER_COMMENT = 'pullvault backup (managed by pullvault provision-server)';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

export interface ServerFacts {
  backupUser: PasswdEntry | null;
  /** inventory users → their primary (private) group, null when the user does not exist */
  users: Record<string, string | null>;
  /** inventory groups → exists */
  groups: Record<string, boolean>;
  /** program → found */
  programs: Record<string, boolean>;
  /** rrsync understands -absolute (client paths are absolute paths under the restricted dir) */
  rrsyncAbsolute: boolean;
  /** each registered engine (engines/) by name */
  engines: Record<string, EngineFact>;
}

export function parsePasswd(line: string): PasswdEntry | null {
  const f = line.trim().split(':');
  if (f.length < 7) return null;
  return { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), gecos: f[4]!, home: f[5]!, shell: f[6]! };
}

const PROGRAMS = ['rsync', 'python3', 'runuser', 'useradd', 'usermod', 'userdel', 'logger'] as const;

async function probeEngine(exec: Executor, engine: AdminDbEngine, found: Record<string, boolean>): Promise<EngineFact> {
  const missing = engine.programs.filter((p) => !found[p]);
  if (missing.length) return { installed: false, running: false, detail: `${missing.join(', ')} not found` };
  if (!engine.ping) return { installed: true, running: true };
  const r = await exec.run([...engine.ping], { okCodes: [0, 1, 2, 127] });
  if (r.code !== 0) return { installed: true, running: false, detail: (r.stderr.trim().split('\n').pop() ?? '').trim() || `exit ${r.code}` };
  return { installed: true, running: true };
}

/** Read-only probes (runs in dry-run too). */
export async function gatherFacts(exec: Executor, server: ServerSpec): Promise<ServerFacts> {
  const user = backupUser(server);
  const names = [...PROGRAMS, ...ADMIN_DB_ENGINES.flatMap((e) => e.programs)];
  // independent probes, run at once over the one connection (each SSH exec costs a round trip)
  // (at most 5 channels at once: sshd's MaxSessions defaults to 10)
  const users_ = server.users ?? [];
  const groups_ = server.groups ?? [];
  const [pw, userGroups, groupFound, which, rr] = await Promise.all([
    exec.run(['getent', 'passwd', user], { okCodes: [0, 2] }),
    exec.run(['sh', '-c', 'for u in "$@"; do id -gn -- "$u" 2>/dev/null || echo -; done', 'sh', ...users_]),
    exec.run(['sh', '-c', 'for g in "$@"; do if getent group "$g" >/dev/null; then echo y; else echo n; fi; done', 'sh', ...groups_]),
    exec.run(['sh', '-c', 'for p in "$@"; do command -v "$p" >/dev/null 2>&1 && echo "$p"; done; exit 0', 'sh', ...names]),
    exec.run(['grep', '-q', '--', "'-absolute'", RRSYNC_PATH], { okCodes: [0, 1, 2] }),
  ]);
  const ug = userGroups.stdout.split('\n');
  const gf = groupFound.stdout.split('\n');
  const users: Record<string, string | null> = {};
  users_.forEach((u, i) => (users[u] = ug[i] && ug[i] !== '-' ? ug[i]! : null));
  const groups: Record<string, boolean> = {};
  groups_.forEach((g, i) => (groups[g] = gf[i] === 'y'));
  const have = new Set(which.stdout.split('\n').map((l) => l.trim()));
  const programs: Record<string, boolean> = Object.fromEntries(names.map((n) => [n, have.has(n)]));
  programs['rrsync'] = rr.code !== 2;
  const facts = await Promise.all(ADMIN_DB_ENGINES.map((e) => probeEngine(exec, e, programs)));
  const engines = Object.fromEntries(ADMIN_DB_ENGINES.map((e, i) => [e.name, facts[i]!]));
  return { backupUser: pw.code === 0 ? parsePasswd(pw.stdout) : null, users, groups, programs, rrsyncAbsolute: rr.code === 0, engines };
}

/**
 * Everything that stops provisioning before a change is made, one line each, naming the
 * server and what to do. `index` is the server's position in the inventory (for field paths).
 */
export function factProblems(server: ServerSpec, index: number, facts: ServerFacts, mode: 'install' | 'uninstall'): string[] {
  const s = server.name;
  const at = `servers[${index}]`;
  const out: string[] = [];
  const user = backupUser(server);
  const existing = facts.backupUser;
  if (existing && existing.gecos !== BACKUP_USER_COMMENT)
    out.push(
      `${s}: a user "${user}" already exists and was not created by pullvault (comment "${existing.gecos}"); set ${at}.backupUser to another name, or remove that user`,
    );
  if (mode === 'uninstall') return out;
  for (const [u, g] of Object.entries(facts.users))
    if (g === null) out.push(`${s}: ${at}.users names "${u}", but there is no such user on ${s}; create it there or remove it from the inventory`);
  for (const [g, ok] of Object.entries(facts.groups))
    if (!ok) out.push(`${s}: ${at}.groups names "${g}", but there is no such group on ${s}; create it there or remove it from the inventory`);
  const missing = PROGRAMS.filter((p) => !facts.programs[p]);
  if (missing.length) out.push(`${s}: ${missing.join(', ')} not found; install them (apt-get install rsync python3 passwd util-linux bsdutils)`);
  if (!facts.programs['rrsync']) out.push(`${s}: ${RRSYNC_PATH} not found; install rsync (Debian ships rrsync with it)`);
  else if (!facts.rrsyncAbsolute) out.push(`${s}: ${RRSYNC_PATH} has no -absolute option (older rsync); install a newer rsync package`);
  const dbs: Record<string, unknown> = server.databases ?? {};
  for (const e of ADMIN_DB_ENGINES) {
    if (dbs[e.name] === undefined) continue;
    const f = facts.engines[e.name] ?? { installed: false, running: false, detail: 'not probed' };
    const label = dbEngine(e.name).label;
    if (!f.installed) out.push(`${s}: ${at}.databases.${e.name} is set, but ${label} is not installed (${f.detail}); install ${e.package} or remove databases.${e.name}`);
    else if (!f.running) out.push(`${s}: ${label} does not answer (${f.detail}); start it, or remove ${at}.databases.${e.name}`);
  }
  return out;
}

/** Secondary groups the backup user must have: the inventory's groups + the users' private groups. */
export function wantedGroups(server: ServerSpec, facts: ServerFacts): string[] {
  const set = new Set<string>(server.groups ?? []);
  for (const u of server.users ?? []) {
    const g = facts.users[u];
    if (g) set.add(g);
  }
  return [...set].sort();
}
