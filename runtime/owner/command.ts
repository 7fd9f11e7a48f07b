// What `pullvault watch` and `pullvault report` share: the options naming the store and the key
// (the same as restore's), and the error handling of an owner-side command.
import type { ParseArgsConfig } from 'node:util';
import type { Opts } from '../offsite/commands.ts';

export const SOURCE_KEYS = ['config', 'target', 'region', 'endpoint', 'credentials', 'gpg-homedir', 'key', 'passphrase-file'] as const;

/** parseArgs options for SOURCE_KEYS (all strings). */
export const SOURCE_OPTIONS = Object.fromEntries(SOURCE_KEYS.map((k) => [k, { type: 'string' }])) as Record<(typeof SOURCE_KEYS)[number], { type: 'string' }> & NonNullable<ParseArgsConfig['options']>;

/** The parsed values as restore's option bag (targetFrom, decryptorFrom). */
export function sourceOpts(values: Partial<Record<(typeof SOURCE_KEYS)[number], string | boolean | (string | boolean)[]>>): Opts {
  const o: Opts = {};
  for (const k of SOURCE_KEYS) if (typeof values[k] === 'string') o[k] = values[k] as string;
  return o;
}

export class UsageError extends Error {}

/** Runs a command body: a UsageError exits 2 with a pointer to --help, any other error exits 1. */
export async function ownerCommand(name: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`pullvault ${name}: ${e.message}\n(see pullvault ${name} --help)\n`);
      return 2;
    }
    process.stderr.write(`pullvault ${name}: error: ${(e as Error).message}\n`);
    return 1;
  }
}
