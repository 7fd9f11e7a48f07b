// install-runtime, the effects: the plan's directories and files as engine steps on any
// executor (SSH to a running Pi, or local under an image's root directory), and the reads
// that gather the plan's inputs (templates, recipients' keys, S3 credentials) on the admin side.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ManagedFile } from '../engine/files.ts';
import type { Change, Step } from '../engine/types.ts';
import type { Executor } from '../exec/types.ts';
import { resolveInventoryPath } from '../inventory/validate.ts';
import { REPO_ROOT } from '../state.ts';
import type { Inventory } from '../../contract/inventory-schema.ts';
import { INSTALL_TEMPLATE_NAMES, secretFields, type InstallPlan, type InstallTemplates, type ManagedDir, type PlannedFile } from './install-plan.ts';

const INSTALL_TEMPLATES_DIR = path.join(REPO_ROOT, 'templates', 'pi-runtime');

export async function loadInstallTemplates(dir = INSTALL_TEMPLATES_DIR): Promise<InstallTemplates> {
  const entries = await Promise.all(INSTALL_TEMPLATE_NAMES.map(async (n) => [n, await readFile(path.join(dir, `${n}.hbs`), 'utf8')] as const));
  return Object.fromEntries(entries) as InstallTemplates;
}

export async function readRecipientKeys(inv: Inventory, inventoryDir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const r of inv.recipients) out[r.name] = await readFile(resolveInventoryPath(inventoryDir, r.publicKeyFile), 'utf8');
  return out;
}

/** The inventory's secrets: the values to mask, and the secret files' contents by name. */
export async function readSecrets(inv: Inventory, inventoryDir: string): Promise<{ files: Record<string, string>; values: string[] }> {
  const files: Record<string, string> = {};
  const values: string[] = [];
  for (const f of secretFields(inv)) {
    if (!f.file) {
      values.push(f.value);
      continue;
    }
    const file = resolveInventoryPath(inventoryDir, f.value);
    try {
      files[f.file.name] = `${(await readFile(file, 'utf8')).trim()}\n`;
    } catch (e) {
      throw new Error(`${f.key}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    values.push(files[f.file.name].trim());
  }
  return { files, values };
}

/** state/aws/writer-credentials.json as the Pi needs it ({accessKeyId, secretAccessKey}), or undefined. */
export async function readWriterCredentials(stateDir: string): Promise<{ text: string; secrets: string[] } | undefined> {
  const file = path.join(stateDir, 'aws', 'writer-credentials.json');
  if (!existsSync(file)) return undefined;
  const raw = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  const accessKeyId = raw.accessKeyId ?? raw.AccessKeyId;
  const secretAccessKey = raw.secretAccessKey ?? raw.SecretAccessKey;
  if (typeof accessKeyId !== 'string' || typeof secretAccessKey !== 'string')
    throw new Error(`${file}: expected {"accessKeyId": …, "secretAccessKey": …}`);
  // keep whatever else provision-aws recorded (user name, creation date), minus nothing secret
  const text = JSON.stringify({ ...raw, accessKeyId, secretAccessKey }, null, 2) + '\n';
  return { text, secrets: [secretAccessKey] };
}

/** Prefix for paths under an image root ('' over SSH). */
function under(root: string, p: string): string {
  return root ? path.posix.join(root, p) : p;
}

export interface PathFacts {
  type: string;
  mode: string;
  owner: string;
  group: string;
  /** regular files only */
  sha256?: string;
}

// One round trip for the state of every managed path (type, mode, owner, sha256): over SSH each
// command costs a channel and a login shell, so per-file stat+cat would make a no-op run slow.
const FACTS_SCRIPT = `for p in "$@"; do
  if [ -e "$p" ] || [ -L "$p" ]; then
    st=$(stat -c '%a %U %G %F' -- "$p")
    if [ -f "$p" ]; then h=$(sha256sum -- "$p" | cut -d' ' -f1); else h=-; fi
    printf '%s\t%s\t%s\n' "$p" "$st" "$h"
  else
    printf '%s\tMISSING\t-\n' "$p"
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

// Writes one file in one round trip: temp file in the same folder (no clobbering), owner and
// mode, the optional validation, then rename over the old file; the temp file never survives.
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

type Facts<Ctx> = (ctx: Ctx) => Promise<Map<string, PathFacts | null>>;

export function dirStep<Ctx>(id: string, exec: (ctx: Ctx) => Executor, facts: Facts<Ctx>, d: ManagedDir, opts: { after?: string[] } = {}): Step<Ctx> {
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
      await exec(ctx).change(['install', '-d', '-m', d.mode, '-o', d.owner, '-g', d.group, '--', d.path]);
    },
  };
}

/**
 * A managed file, compared by sha256 against the facts read up front. A changed ordinary file
 * shows a diff (its current text is read only then); a large one (the bundle) shows hashes only.
 */
function managedFileStep<Ctx>(id: string, exec: (ctx: Ctx) => Executor, facts: Facts<Ctx>, f: PlannedFile, opts: { after?: string[] } = {}): Step<Ctx> {
  const want = sha256(f.content);
  return {
    id,
    ...opts,
    sensitive: f.sensitive,
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

/**
 * The plan as engine steps. `root` is '' on a running Pi, or the image's root directory (the
 * executor then is local and every path is taken under it). Files wait for their directory.
 * The state of all paths is read once, at the first check.
 */
export function installSteps<Ctx>(plan: InstallPlan, exec: (ctx: Ctx) => Executor, root = ''): Step<Ctx>[] {
  const dirs = plan.dirs.map((d) => ({ ...d, path: under(root, d.path) }));
  const files = plan.files.map((f) => ({ ...f, path: under(root, f.path) }));
  let memo: Promise<Map<string, PathFacts | null>> | undefined;
  const facts: Facts<Ctx> = (ctx) => (memo ??= readPathFacts(exec(ctx), [...dirs.map((d) => d.path), ...files.map((f) => f.path)]));
  const steps: Step<Ctx>[] = [];
  const dirIds = new Map<string, string>();
  plan.dirs.forEach((d, i) => {
    const id = `dir ${d.path}`;
    dirIds.set(d.path, id);
    steps.push(dirStep(id, exec, facts, dirs[i]!));
  });
  plan.files.forEach((f, i) => {
    const parent = path.posix.dirname(f.path);
    const after = dirIds.has(parent) ? [dirIds.get(parent)!] : [];
    steps.push(managedFileStep(f.id, exec, facts, files[i]!, { after }));
  });
  return steps;
}
