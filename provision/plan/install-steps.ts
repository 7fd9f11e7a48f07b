// install-runtime, the effects: the plan's directories and files as engine steps on any
// executor (SSH to a running Pi, or local under an image's root directory), and the reads
// that gather the plan's inputs (templates, recipients' keys, S3 credentials) on the admin side.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fileStep } from '../engine/files.ts';
import type { Change, Step } from '../engine/types.ts';
import type { Executor } from '../exec/types.ts';
import { resolveInventoryPath } from '../inventory/validate.ts';
import type { Inventory } from '../inventory/schema.ts';
import { INSTALL_TEMPLATE_NAMES, type InstallPlan, type InstallTemplates, type ManagedDir, type PlannedFile } from './install-plan.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const INSTALL_TEMPLATES_DIR = path.join(REPO_ROOT, 'templates', 'pi-runtime');

export async function loadInstallTemplates(dir = INSTALL_TEMPLATES_DIR): Promise<InstallTemplates> {
  const entries = await Promise.all(INSTALL_TEMPLATE_NAMES.map(async (n) => [n, await readFile(path.join(dir, `${n}.hbs`), 'utf8')] as const));
  return Object.fromEntries(entries) as InstallTemplates;
}

export async function readRecipientKeys(inv: Inventory, inventoryDir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const r of inv.recipients) out[r.name] = await readFile(resolveInventoryPath(inventoryDir, r.publicKeyFile), 'utf8');
  return out;
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

async function statOf(exec: Executor, p: string): Promise<{ mode: string; owner: string; group: string; type: string } | null> {
  const st = await exec.run(['stat', '-c', '%a %U %G %F', '--', p], { okCodes: [0, 1] });
  if (st.code !== 0) return null;
  const [mode, owner, group, ...type] = st.stdout.trim().split(' ');
  return { mode: mode!, owner: owner!, group: group!, type: type.join(' ') };
}

export function dirStep<Ctx>(id: string, exec: (ctx: Ctx) => Executor, d: ManagedDir, opts: { after?: string[] } = {}): Step<Ctx> {
  return {
    id,
    ...opts,
    check: async (ctx) => {
      const st = await statOf(exec(ctx), d.path);
      if (!st) return { action: 'create', summary: `${d.path}/ (${d.owner}:${d.group} ${d.mode})` };
      if (st.type !== 'directory') throw new Error(`${exec(ctx).where}: ${d.path} exists but is a ${st.type}, not a directory; move it away first`);
      const diffs: string[] = [];
      if (st.mode !== d.mode) diffs.push(`mode ${st.mode}→${d.mode}`);
      if (st.owner !== d.owner || st.group !== d.group) diffs.push(`owner ${st.owner}:${st.group}→${d.owner}:${d.group}`);
      return diffs.length ? { action: 'update', summary: `${d.path}/: ${diffs.join(', ')}` } : null;
    },
    apply: async (ctx) => {
      await exec(ctx).run(['install', '-d', '-m', d.mode, '-o', d.owner, '-g', d.group, '--', d.path]);
    },
  };
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** A large file (the bundle): compared by sha256 on the target, changed without printing a diff. */
export function blobStep<Ctx>(id: string, exec: (ctx: Ctx) => Executor, f: PlannedFile, opts: { after?: string[] } = {}): Step<Ctx> {
  const inner = fileStep(id, exec, f, opts);
  const want = sha256(f.content);
  return {
    ...inner,
    check: async (ctx): Promise<Change | null> => {
      const e = exec(ctx);
      const st = await statOf(e, f.path);
      if (!st) return { action: 'create', summary: `${f.path} (${f.owner}:${f.group} ${f.mode}, ${Buffer.byteLength(f.content)} bytes, sha256 ${want.slice(0, 12)})` };
      if (st.type !== 'regular file') throw new Error(`${e.where}: ${f.path} exists but is a ${st.type}, not a regular file; move it away first`);
      const have = (await e.run(['sha256sum', '--', f.path])).stdout.split(' ')[0] ?? '';
      const diffs: string[] = [];
      if (have !== want) diffs.push(`sha256 ${have.slice(0, 12)}→${want.slice(0, 12)}`);
      if (st.mode !== f.mode) diffs.push(`mode ${st.mode}→${f.mode}`);
      if (st.owner !== f.owner || st.group !== f.group) diffs.push(`owner ${st.owner}:${st.group}→${f.owner}:${f.group}`);
      return diffs.length ? { action: 'update', summary: `${f.path}: ${diffs.join(', ')}` } : null;
    },
  };
}

/**
 * The plan as engine steps. `root` is '' on a running Pi, or the image's root directory (the
 * executor then is local and every path is taken under it). Files wait for their directory.
 */
export function installSteps<Ctx>(plan: InstallPlan, exec: (ctx: Ctx) => Executor, root = ''): Step<Ctx>[] {
  const steps: Step<Ctx>[] = [];
  const dirIds = new Map<string, string>();
  for (const d of plan.dirs) {
    const id = `dir ${d.path}`;
    dirIds.set(d.path, id);
    steps.push(dirStep(id, exec, { ...d, path: under(root, d.path) }));
  }
  for (const f of plan.files) {
    const parent = path.posix.dirname(f.path);
    const after = dirIds.has(parent) ? [dirIds.get(parent)!] : [];
    const onTarget: PlannedFile = { ...f, path: under(root, f.path) };
    steps.push(f.large ? blobStep(f.id, exec, onTarget, { after }) : fileStep(f.id, exec, onTarget, { after, sensitive: f.sensitive }));
  }
  return steps;
}
