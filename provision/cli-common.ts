// The one frame of every provisioning command (provision/cli.ts runs them): the command line
// parsed with node:util parseArgs, --help, the inventory loaded (--inventory, $INVENTORY), the
// state folder decided (stateDirFor: --state, $PULLVAULT_STATE, else state/ next to the
// inventory), and the exit code of an error decided here: usage and inventory errors 2, any
// other failure 1 (one line; the stack with PULLVAULT_DEBUG=1).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseOptions, UsageError, type OptionValues, type Options } from '../lib/cli/args.ts';
import { InventoryError, loadInventory, type LoadedInventory } from './inventory/validate.ts';
import { Redactor } from './engine/redact.ts';
import { TextReporter } from './engine/report.ts';
import { planJson } from './engine/run.ts';
import type { Plan } from './engine/types.ts';
import { stateDirFor } from './state.ts';

const EXIT_USAGE = 2;
const EXIT_FAILED = 1;

export { UsageError };

export interface CommandContext<O extends Options> {
  /** the command's own options */
  values: OptionValues<O>;
  /** --dry-run (commands with `dryRun: true`) */
  dryRun: boolean;
  /** the loaded, validated inventory (commands with `inventory: true`) */
  loaded: LoadedInventory;
  /** the state folder (commands with `inventory: true`) */
  state: string;
  /** the name it was called by (write-sd, write-usbkey) */
  cmd: string;
  /** --plan-json FILE (commands with `plan: true`): where the plan goes before anything is applied */
  planJson?: string;
}

export interface Command<O extends Options = Options> {
  help: string;
  options: O;
  /** takes --inventory FILE and --state DIR; loaded before `run` */
  inventory: boolean;
  /** takes -n/--dry-run */
  dryRun?: boolean;
  /** takes --plan-json FILE */
  plan?: boolean;
  run(ctx: CommandContext<O>): Promise<number>;
}

export function defineCommand<const O extends Options>(c: Command<O>): Command<O> {
  return c;
}

const INVENTORY_OPTIONS = {
  inventory: { type: 'string', short: 'i' },
  state: { type: 'string' },
} as const satisfies Options;

/** Runs `command` on `argv` and returns its exit code; every error becomes one line and an exit code here. */
export async function runCommand<O extends Options>(command: Command<O>, argv: string[], cmd: string): Promise<number> {
  try {
    const options: Options = {
      ...command.options,
      help: { type: 'boolean', short: 'h' },
      ...(command.inventory ? INVENTORY_OPTIONS : {}),
      ...(command.dryRun ? { 'dry-run': { type: 'boolean', short: 'n' } } : {}),
      ...(command.plan ? { 'plan-json': { type: 'string' } } : {}),
    };
    const values = parseOptions(argv, options);
    if (values.help) return (console.log(command.help), 0);
    const loaded = command.inventory ? await loadInventory(path.resolve((values.inventory as string | undefined) || process.env.INVENTORY || 'inventory.json')) : undefined;
    const state = loaded ? stateDirFor(loaded.dir, values.state as string | undefined) : '';
    const planJson = values['plan-json'] as string | undefined;
    return await command.run({ values: values as OptionValues<O>, dryRun: values['dry-run'] === true, loaded: loaded as LoadedInventory, state, cmd, ...(planJson ? { planJson } : {}) });
  } catch (e) {
    if (e instanceof InventoryError) {
      console.error(e.message);
      return EXIT_USAGE;
    }
    if (e instanceof UsageError) {
      console.error(`${cmd}: usage error: ${e.message} (see --help)`);
      return EXIT_USAGE;
    }
    console.error(`${cmd}: ${(e as Error).message}`);
    if (process.env.PULLVAULT_DEBUG) console.error((e as Error).stack);
    return EXIT_FAILED;
  }
}

/**
 * The onPlan of a command with --plan-json FILE: writes the plan (0600, secrets masked) before
 * anything is applied. A command that plans several hosts names each (`key`): the file then
 * holds every plan made so far, by host.
 */
export function planFileWriter(file: string | undefined, redactor: Redactor): ((plan: Plan, key?: string) => void) | undefined {
  if (!file) return undefined;
  const plans: Record<string, unknown> = {};
  return (plan, key) => {
    const text = planJson(plan, (t) => redactor.mask(t));
    if (key === undefined) writeFileSync(file, text, { mode: 0o600 });
    else {
      plans[key] = JSON.parse(text);
      writeFileSync(file, `${JSON.stringify(plans, null, 2)}\n`, { mode: 0o600 });
    }
  };
}

export function makeOutput() {
  const redactor = new Redactor();
  const reporter = new TextReporter(redactor);
  return { redactor, reporter };
}
