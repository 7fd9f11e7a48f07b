import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** Finds an executable in PATH (no shell, no spawn). */
export function whichSync(name: string, envPath = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'): string | null {
  for (const dir of envPath.split(':')) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}
