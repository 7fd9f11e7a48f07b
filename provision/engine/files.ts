// Managed files and directories on any executor (a server over SSH, the Pi, an image's root
// directory, the admin machine), for every role alike: the state of all of a plan's paths is read
// in one round trip at the first check (type, mode, owner, sha256; over SSH each command costs a
// channel), compared, and a file is written in one round trip through a temp file in the same
// folder (owner, mode, the optional validation, then rename), so a bad file never replaces a good one.
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Executor } from '../exec/types.ts';
import type { Change, Step } from './types.ts';

export interface ManagedDir {
  path: string;
  /** octal string as stat prints it, e.g. "755", "700" */
  mode: string;
  owner: string;
  group: string;
}

export interface ManagedFile extends ManagedDir {
  content: string;
  /** argv that checks the candidate file at the given temp path (e.g. ['sshd', '-t', '-f', tmp]) */
  validate?: (tmpPath: string) => string[];
  /** never show its content (keys, credentials) */
  sensitive?: boolean;
  /** shown by size and sha256 instead of a diff (the runtime bundle) */
  large?: boolean;
}

interface PathFacts {
  type: string;
  mode: string;
  owner: string;
  group: string;
  /** regular files only */
  sha256?: string;
}

/** The state of the managed paths, read once (at the first check that asks) for all of them. */
export type PathFactsOf<Ctx> = (ctx: Ctx) => Promise<Map<string, PathFacts | null>>;

const FACTS_SCRIPT = `for p in "$@"; do
  if [ -e "$p" ] || [ -L "$p" ]; then
    st=$(stat -c '%a %U %G %F' -- "$p")
    if [ -f "$p" ]; then h=$(sha256sum -- "$p" | cut -d' ' -f1); else h=-; fi
    printf '%s\\t%s\\t%s\\n' "$p" "$st" "$h"
  else
    printf '%s\\tMISSING\\t-\\n' "$p"
  fi
done`;

async function readPathFacts(exec: Executor, paths: string[]): Promise<Map<string, PathFacts | null>> {
  const out = (await exec.run(['sh', '-c', FACTS_SCRIPT, 'sh', ...paths])).stdout;
  const facts = new Map<string, PathFacts | null>();
  for (const line of out.split('\n')) {
    if (!line) continue;
    const [p, st, h] = line.split('\t');
    if (st === 'MISSING') {
      facts.set(p!, null);
      continue;
    }
    const [mode, owner, group, ...type] = st!.split(' ');
    facts.set(p!, { mode: mode!, owner: owner!, group: group!, type: type.join(' '), ...(h && h !== '-' ? { sha256: h } : {}) });
  }
  for (const p of paths) if (!facts.has(p)) throw new Error(`${exec.where}: could not read the state of ${p}`);
  return facts;
}

/** One read of these paths' state, shared by their steps (the plan reads every check before it applies one). */
export function pathFactsOf<Ctx>(exec: (ctx: Ctx) => Executor, paths: string[]): PathFactsOf<Ctx> {
  let memo: Promise<Map<string, PathFacts | null>> | undefined;
  return (ctx) => (memo ??= readPathFacts(exec(ctx), [...new Set(paths)]));
}

const WRITE_SCRIPT = `set -e
t="$1"; dst="$2"; own="$3"; mode="$4"; shift 4
trap 'rm -f -- "$t"' EXIT
(set -C; cat > "$t")
chown -- "$own" "$t"
chmod -- "$mode" "$t"
if [ $# -gt 0 ]; then "$@"; fi
mv -f -- "$t" "$dst"
trap - EXIT`;

async function writeFileOnce(exec: Executor, f: ManagedFile): Promise<void> {
  const tmp = `${path.posix.dirname(f.path)}/.pullvault.${randomBytes(6).toString('hex')}`;
  await exec.change(['sh', '-c', WRITE_SCRIPT, 'sh', tmp, f.path, `${f.owner}:${f.group}`, f.mode, ...(f.validate?.(tmp) ?? [])], { input: f.content });
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function attrDiffs(have: PathFacts, want: { mode: string; owner: string; group: string }): string[] {
  const d: string[] = [];
  if (have.mode !== want.mode) d.push(`mode ${have.mode}→${want.mode}`);
  if (have.owner !== want.owner || have.group !== want.group) d.push(`owner ${have.owner}:${have.group}→${want.owner}:${want.group}`);
  return d;
}

type Opts = { after?: string[]; notify?: string[] };

export function dirStep<Ctx>(id: string, exec: (ctx: Ctx) => Executor, facts: PathFactsOf<Ctx>, d: ManagedDir, opts: Opts = {}): Step<Ctx> {
  return {
    id,
    ...opts,
    check: async (ctx) => {
      const st = (await facts(ctx)).get(d.path);
      if (!st) return { action: 'create', summary: `${d.path}/ (${d.owner}:${d.group} ${d.mode})` };
      if (st.type !== 'directory') throw new Error(`${exec(ctx).where}: ${d.path} exists but is a ${st.type}, not a directory; move it away first`);
      const diffs = attrDiffs(st, d);
      return diffs.length ? { action: 'update', summary: `${d.path}/: ${diffs.join(', ')}` } : null;
    },
    apply: async (ctx) => {
      // install -d sets the mode and owner of a directory that exists too
      await exec(ctx).change(['install', '-d', '-m', d.mode, '-o', d.owner, '-g', d.group, '--', d.path]);
    },
  };
}

/**
 * A managed file, compared by sha256 against the facts read up front. A changed ordinary file
 * shows a diff (its current text is read only then); a large one shows hashes only.
 */
export function fileStep<Ctx>(id: string, exec: (ctx: Ctx) => Executor, facts: PathFactsOf<Ctx>, f: ManagedFile, opts: Opts = {}): Step<Ctx> {
  const want = sha256(f.content);
  return {
    id,
    ...opts,
    ...(f.sensitive ? { sensitive: true } : {}),
    check: async (ctx): Promise<Change | null> => {
      const e = exec(ctx);
      const st = (await facts(ctx)).get(f.path);
      const size = f.large ? `, ${Buffer.byteLength(f.content)} bytes, sha256 ${want.slice(0, 12)}` : '';
      if (!st) return { action: 'create', summary: `${f.path} (${f.owner}:${f.group} ${f.mode}${size})`, ...(f.large ? {} : { before: '', after: f.content }) };
      if (st.type !== 'regular file' && st.type !== 'regular empty file')
        throw new Error(`${e.where}: ${f.path} exists but is a ${st.type}, not a regular file; move it away first`);
      const diffs: string[] = [];
      const contentDiffers = st.sha256 !== want;
      if (contentDiffers) diffs.push(f.large ? `sha256 ${(st.sha256 ?? '').slice(0, 12)}→${want.slice(0, 12)}` : 'content');
      diffs.push(...attrDiffs(st, f));
      if (!diffs.length) return null;
      const change: Change = { action: 'update', summary: `${f.path}: ${diffs.join(', ')}` };
      if (contentDiffers && !f.large) {
        change.before = f.sensitive ? '' : (await e.run(['cat', '--', f.path])).stdout;
        change.after = f.content;
      }
      return change;
    },
    apply: async (ctx) => writeFileOnce(exec(ctx), f),
  };
}

export function absentFileStep<Ctx>(id: string, exec: (ctx: Ctx) => Executor, facts: PathFactsOf<Ctx>, p: string, opts: Opts = {}): Step<Ctx> {
  return {
    id,
    ...opts,
    check: async (ctx) => ((await facts(ctx)).get(p) ? { action: 'delete', summary: p } : null),
    apply: async (ctx) => {
      await exec(ctx).change(['rm', '-f', '--', p]);
    },
  };
}

/** Removes a directory only when it is empty (what was created, and nothing someone added since). */
export function absentDirStep<Ctx>(id: string, exec: (ctx: Ctx) => Executor, facts: PathFactsOf<Ctx>, p: string, opts: Opts = {}): Step<Ctx> {
  return {
    id,
    ...opts,
    check: async (ctx) => ((await facts(ctx)).get(p)?.type === 'directory' ? { action: 'delete', summary: p } : null),
    apply: async (ctx) => {
      const e = exec(ctx);
      const r = await e.change(['rmdir', '--', p], { okCodes: [0, 1] });
      if (r.code !== 0) throw new Error(`${e.where}: ${p} is not empty (files added by someone else?); look inside and remove it by hand`);
    },
  };
}
