// Managed files on any executor: compare content, mode and owner; write atomically
// (temp file in the same folder → validate → rename), so a bad file never replaces a good one.
import type { Executor } from '../exec/types.ts';
import type { Change, Step } from './types.ts';

export interface ManagedFile {
  path: string;
  content: string;
  /** octal string as stat prints it, e.g. "644", "755", "600" */
  mode: string;
  owner: string;
  group: string;
  /** argv that checks the candidate file at the given temp path (e.g. ['sshd', '-t', '-f', tmp]) */
  validate?: (tmpPath: string) => string[];
}

export interface FileState {
  content: string;
  mode: string;
  owner: string;
  group: string;
}

async function readFileState(exec: Executor, path: string): Promise<FileState | null> {
  const st = await exec.run(['stat', '-c', '%a %U %G %F', '--', path], { okCodes: [0, 1] });
  if (st.code !== 0) return null;
  const [mode, owner, group, ...type] = st.stdout.trim().split(' ');
  if (type.join(' ') !== 'regular file' && type.join(' ') !== 'regular empty file')
    throw new Error(`${exec.where}: ${path} exists but is a ${type.join(' ')}, not a regular file; move it away first`);
  const content = (await exec.run(['cat', '--', path])).stdout;
  return { content, mode, owner, group };
}

function fileChange(current: FileState | null, want: ManagedFile): Change | null {
  if (!current) return { action: 'create', summary: `${want.path} (${want.owner}:${want.group} ${want.mode})`, before: '', after: want.content };
  const diffs: string[] = [];
  if (current.content !== want.content) diffs.push('content');
  if (current.mode !== want.mode) diffs.push(`mode ${current.mode}→${want.mode}`);
  if (current.owner !== want.owner || current.group !== want.group) diffs.push(`owner ${current.owner}:${current.group}→${want.owner}:${want.group}`);
  if (!diffs.length) return null;
  return { action: 'update', summary: `${want.path}: ${diffs.join(', ')}`, before: current.content, after: want.content };
}

export async function writeFileAtomic(exec: Executor, want: ManagedFile): Promise<void> {
  const dir = want.path.replace(/\/[^/]*$/, '') || '/';
  const tmp = (await exec.change(['mktemp', '-p', dir, '.pullvault.XXXXXXXX'])).stdout.trim();
  try {
    await exec.change(['sh', '-c', 'cat > "$1"', 'sh', tmp], { input: want.content });
    await exec.change(['chown', `${want.owner}:${want.group}`, '--', tmp]);
    await exec.change(['chmod', want.mode, '--', tmp]);
    if (want.validate) await exec.change(want.validate(tmp));
    await exec.change(['mv', '-f', '--', tmp, want.path]);
  } catch (e) {
    await exec.change(['rm', '-f', '--', tmp], { okCodes: [0, 1] }).catch(() => undefined);
    throw e;
  }
}

export function fileStep<Ctx>(
  id: string,
  exec: (ctx: Ctx) => Executor,
  want: ManagedFile,
  opts: { sensitive?: boolean; notify?: string[]; after?: string[] } = {},
): Step<Ctx> {
  return {
    id,
    ...opts,
    check: async (ctx) => fileChange(await readFileState(exec(ctx), want.path), want),
    apply: async (ctx) => writeFileAtomic(exec(ctx), want),
  };
}

export function absentFileStep<Ctx>(id: string, exec: (ctx: Ctx) => Executor, path: string, opts: { after?: string[] } = {}): Step<Ctx> {
  return {
    id,
    ...opts,
    check: async (ctx) => {
      const st = await exec(ctx).run(['test', '-e', path], { okCodes: [0, 1] });
      return st.code === 0 ? { action: 'delete', summary: path } : null;
    },
    apply: async (ctx) => {
      await exec(ctx).change(['rm', '-f', '--', path]);
    },
  };
}
