// Where provisioning keeps what it generates (keys, credentials): `state/` at the repo root,
// or --state DIR, or $PULLVAULT_STATE. Secrets inside are 0600 in 0700 directories.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function stateDir(override?: string): string {
  return path.resolve(override || process.env.PULLVAULT_STATE || path.join(REPO_ROOT, 'state'));
}
