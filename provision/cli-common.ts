// What every provisioning command shares: argument parsing with --help, loading the
// inventory (exit 2 with one line per problem), and the reporter that masks secrets.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import path from 'node:path';
import { InventoryError, loadInventory, type LoadedInventory } from './inventory/validate.ts';
import { Redactor } from './engine/redact.ts';
import { TextReporter } from './engine/report.ts';

export const EXIT_USAGE = 2;

export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig['options']>;

export const commonOptions = {
  inventory: { type: 'string', short: 'i', default: process.env.INVENTORY || 'inventory.json' },
  'dry-run': { type: 'boolean', short: 'n', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies Options;

export function parseCommandArgs<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export async function loadOrExplain(file: string): Promise<LoadedInventory> {
  return loadInventory(path.resolve(file));
}

export function makeOutput() {
  const redactor = new Redactor();
  const reporter = new TextReporter(redactor);
  return { redactor, reporter };
}

/** Runs a command body, turning the errors people should read into clean lines and exit codes. */
export async function runCommand(body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof InventoryError) {
      process.stderr.write(e.message + '\n');
      return EXIT_USAGE;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`usage error: ${e.message} (see --help)\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`error: ${(e as Error).message}\n`);
    if (process.env.PULLVAULT_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return 1;
  }
}
