// The few programs the runtime runs rather than reimplements: checked once at start-up, so a
// missing one is a clear line ("rsync not found: apt-get install rsync") before any work starts,
// not an ENOENT in the middle of a pull.
import { whichSync } from '../lib/proc/index.ts';

export interface NativeTool {
  /** the program name looked up in PATH */
  name: string;
  /** the Debian / Raspberry Pi OS package that provides it */
  pkg: string;
  /** what the runtime needs it for */
  why: string;
}

export const NATIVE_TOOLS: readonly NativeTool[] = [
  { name: 'rsync', pkg: 'rsync', why: 'pulls files from the servers' },
  { name: 'ssh', pkg: 'openssh-client', why: 'connects to the servers' },
  { name: 'zstd', pkg: 'zstd', why: 'compresses offsite archives' },
  { name: 'tar', pkg: 'tar', why: 'packs offsite archives' },
  { name: 'find', pkg: 'findutils', why: 'walks each new snapshot for its manifest' },
  { name: 'setpriv', pkg: 'util-linux', why: 'makes every child die with the runtime, even on SIGKILL' },
];

export interface NativeCheckResult {
  ok: boolean;
  /** name → absolute path of each tool found */
  found: Record<string, string>;
  missing: NativeTool[];
  /** one line per missing tool plus the apt-get command; '' when ok */
  message: string;
}

/**
 * Checks that rsync, ssh, zstd, tar, find and setpriv (or the given subset) are installed. Never throws; the
 * caller prints `message` to stderr and exits (2) when `ok` is false.
 */
export function checkNativeTools(tools: readonly NativeTool[] = NATIVE_TOOLS, envPath?: string): NativeCheckResult {
  const found: Record<string, string> = {};
  const missing: NativeTool[] = [];
  for (const t of tools) {
    const p = whichSync(t.name, envPath);
    if (p) found[t.name] = p;
    else missing.push(t);
  }
  const pkgs = [...new Set(missing.map((t) => t.pkg))];
  const message = missing.length
    ? [...missing.map((t) => `pullvault: ${t.name} not found in PATH (it ${t.why}; package ${t.pkg})`), `pullvault: install with: apt-get install ${pkgs.join(' ')}`].join('\n')
    : '';
  return { ok: missing.length === 0, found, missing, message };
}
