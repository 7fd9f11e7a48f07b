// provision-server: the step kinds (check reads, apply changes), over any Executor. Every
// command is an argv. Built by plan.ts; each database engine's steps are its own
// (engines/).
import type { Executor } from '../exec/types.ts';
import type { Change, ExecCtx, Step } from '../engine/types.ts';
import { BACKUP_USER_COMMENT, parsePasswd } from './facts.ts';

export type ServerCtx = ExecCtx;

export const BACKUP_SHELL = '/bin/sh';

type Opts = { after?: string[] };

// ---- the backup user ----

export interface UserState {
  exists: boolean;
  shell: string;
  home: string;
  gecos: string;
  locked: boolean;
}

async function readUser(exec: Executor, name: string): Promise<UserState | null> {
  // one round trip: the passwd line, a separator, the shadow line
  const r = await exec.run(['sh', '-c', 'getent passwd "$1" || exit 3; echo ---; getent shadow "$1"; exit 0', 'sh', name], { okCodes: [0, 3] });
  if (r.code === 3) return null;
  const [pwLine, shLine = ''] = r.stdout.split('---\n');
  const e = parsePasswd(pwLine!)!;
  const hash = shLine.split(':')[1] ?? '';
  // no usable password: '*' or a '!'-locked hash (an empty field would let anyone in)
  const locked = hash.startsWith('*') || hash.startsWith('!');
  return { exists: true, shell: e.shell, home: e.home, gecos: e.gecos, locked };
}

const describeUser = (u: UserState | null) => (u ? `shell ${u.shell}\nhome ${u.home}\ncomment ${u.gecos}\npassword ${u.locked ? 'locked' : 'USABLE'}\n` : '');

export function backupUserStep(id: string, name: string, home: string): Step<ServerCtx> {
  const want: UserState = { exists: true, shell: BACKUP_SHELL, home, gecos: BACKUP_USER_COMMENT, locked: true };
  return {
    id,
    async check({ exec }) {
      const cur = await readUser(exec, name);
      if (cur && cur.gecos !== BACKUP_USER_COMMENT)
        throw new Error(`${exec.where}: user "${name}" exists and was not created by pullvault; refusing to take it over`);
      if (cur && describeUser(cur) === describeUser(want)) return null;
      return {
        action: cur ? 'update' : 'create',
        summary: cur ? `user ${name}` : `system user ${name}, shell ${BACKUP_SHELL}, home ${home}, password locked`,
        before: describeUser(cur),
        after: describeUser(want),
      };
    },
    async apply({ exec }, change) {
      if (change.action === 'create')
        await exec.change(['useradd', '--system', '--user-group', '--no-create-home', '--home-dir', home, '--shell', BACKUP_SHELL, '--comment', BACKUP_USER_COMMENT, '--', name]);
      else await exec.change(['usermod', '--shell', BACKUP_SHELL, '--home', home, '--', name]);
      // '*': no password can match; unlike a '!'-locked hash, sshd with UsePAM=no still admits the key
      await exec.change(['usermod', '--password', '*', '--', name]);
    },
  };
}

export function absentUserStep(id: string, name: string, opts: Opts = {}): Step<ServerCtx> {
  return {
    id,
    ...opts,
    async check({ exec }) {
      const cur = await readUser(exec, name);
      if (!cur) return null;
      if (cur.gecos !== BACKUP_USER_COMMENT) throw new Error(`${exec.where}: user "${name}" was not created by pullvault; leaving it alone`);
      return { action: 'delete', summary: `user ${name} (and its private group)`, before: describeUser(cur), after: '' };
    },
    async apply({ exec }) {
      const r = await exec.change(['userdel', '--', name], { okCodes: [0, 8] });
      // 8: a process still runs as the user (a pull in progress); its key is already gone
      if (r.code === 8)
        throw new Error(`${exec.where}: ${name} still has a running process (${r.stderr.trim()}); let the running backup finish (or end it), then run --uninstall again`);
    },
  };
}

// ---- secondary groups ----

async function secondaryGroups(exec: Executor, name: string): Promise<string[] | null> {
  const r = await exec.run(['sh', '-c', 'id -gn -- "$1" && id -nG -- "$1"', 'sh', name], { okCodes: [0, 1] });
  if (r.code !== 0) return null;
  const [primary, all = ''] = r.stdout.split('\n');
  return all.trim().split(/\s+/).filter((g) => g && g !== primary).sort();
}

export function groupsStep(id: string, name: string, groups: string[], opts: Opts = {}): Step<ServerCtx> {
  const want = [...groups].sort();
  return {
    id,
    ...opts,
    async check({ exec }) {
      const cur = (await secondaryGroups(exec, name)) ?? [];
      if (cur.join(',') === want.join(',')) return null;
      const add = want.filter((g) => !cur.includes(g));
      const drop = cur.filter((g) => !want.includes(g));
      const summary = [add.length ? `add ${add.join(', ')}` : '', drop.length ? `remove ${drop.join(', ')}` : ''].filter(Boolean).join('; ');
      return { action: 'update', summary, before: cur.map((g) => `${g}\n`).join(''), after: want.map((g) => `${g}\n`).join('') };
    },
    async apply({ exec }) {
      await exec.change(['usermod', '--groups', want.join(','), '--', name]);
    },
  };
}

export type { Change };
