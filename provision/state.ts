// Where provisioning keeps what it generates (keys, credentials, images) — one rule for every
// command: --state DIR, else $PULLVAULT_STATE, else `state/` in the inventory's folder (an
// inventory and the secrets made for it stay together). Secrets inside are 0600 in 0700 directories.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function stateDirFor(inventoryDir: string, override?: string): string {
  return path.resolve(override || process.env.PULLVAULT_STATE || path.join(inventoryDir, 'state'));
}
