// install-runtime's inputs, read on the admin side before planning: the templates, the
// recipients' public keys, the inventory's secret files, and the S3 writer credentials that
// provision-aws saved in state/.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { resolveInventoryPath } from '../inventory/validate.ts';
import { REPO_ROOT } from '../state.ts';
import type { Inventory } from '../../contract/inventory-schema.ts';
import { INSTALL_TEMPLATE_NAMES, secretFields, type InstallTemplates } from './plan.ts';

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
