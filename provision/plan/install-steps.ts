// install-runtime, the effects: the plan's directories and files as the managed-dir and
// managed-file steps (engine/files.ts) on any executor (SSH to a running Pi, or local under an
// image's root directory), and the reads that gather the plan's inputs (templates, recipients'
// keys, S3 credentials) on the admin side.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { dirStep, fileStep, pathFactsOf } from '../engine/files.ts';
import type { Step } from '../engine/types.ts';
import type { Executor } from '../exec/types.ts';
import { resolveInventoryPath } from '../inventory/validate.ts';
import { REPO_ROOT } from '../state.ts';
import type { Inventory } from '../../contract/inventory-schema.ts';
import { INSTALL_TEMPLATE_NAMES, secretFields, type InstallPlan, type InstallTemplates } from './install-plan.ts';

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

/**
 * The plan as engine steps. `root` is '' on a running Pi, or the image's root directory (the
 * executor then is local and every path is taken under it). Files wait for their directory.
 * The state of all paths is read once, at the first check.
 */
export function installSteps<Ctx>(plan: InstallPlan, exec: (ctx: Ctx) => Executor, root = ''): Step<Ctx>[] {
  const dirs = plan.dirs.map((d) => ({ ...d, path: under(root, d.path) }));
  const files = plan.files.map((f) => ({ ...f, path: under(root, f.path) }));
  const facts = pathFactsOf(exec, [...dirs.map((d) => d.path), ...files.map((f) => f.path)]);
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
    steps.push(fileStep(f.id, exec, facts, files[i]!, { after }));
  });
  return steps;
}
