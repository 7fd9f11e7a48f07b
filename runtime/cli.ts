// `pullvault` — the Pi's program (and, for restore and verify, the owner's). main(argv) returns the
// exit code; runtime/main.ts runs it. The one frame of every action (runtime/actions/): the
// command line parsed (node:util parseArgs), --help and --version, the config loaded and checked,
// and errors turned into the documented exit codes.
import pkg from '../package.json' with { type: 'json' };
import { parseOptions, UsageError, type Options } from '../lib/cli/args.ts';
import { ACTIONS } from './actions/index.ts';
import type { Action } from './actions/action.ts';
import { ConfigError, DEFAULT_CONFIG_PATH, readRuntimeConfig, type RuntimeConfig } from '../contract/runtime-config.ts';
import { EXIT } from './exit-codes.ts';

export const VERSION: string = pkg.version;

const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
const err = (s: string) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`);

const EXIT_CODES = `exit codes:
  0  ok
  1  one or more servers failed or did not fit on the disk even after pruning by the retention rules
     (the others were snapshotted; status says which)
  2  usage or config error
  3  refused by pre-flight (backup disk not mounted/unlocked); nothing written
  4  all servers pulled, but a snapshot is flagged partial (files unreadable or vanished)
  70 internal error (a bug); the run record says so
  75 another run is pulling (holds the pull lock); nothing done
     (an upload still going in another run holds only the offsite lock: this run pulls, and its
     snapshots go offsite with a later run)`;

export async function help(): Promise<string> {
  const lines: string[] = [];
  for (const load of Object.values(ACTIONS)) {
    const a = await load();
    const [first, ...more] = a.summary.split('\n');
    lines.push(`  ${a.name.padEnd(8)} ${first}`, ...more.map((l) => `           ${l}`));
  }
  return `pullvault ${VERSION} — pull backups from servers into snapshots on the backup disk

usage: pullvault <command> [--config FILE] [options]

commands:
${lines.join('\n')}

options:
  --config FILE   default ${DEFAULT_CONFIG_PATH}
  --help, --version   (pullvault <command> --help: that command's options)

${EXIT_CODES}
`;
}

const FRAME_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const satisfies Options;

const CONFIG_OPTION = { config: { type: 'string' } } as const satisfies Options;

/** `--config FILE` before the command (`pullvault --config F run`) goes with the command's own arguments. */
function splitCommand(argv: string[]): { cmd?: string; rest: string[]; globals: string[] } {
  const globals: string[] = [];
  let i = 0;
  for (; i < argv.length && argv[i].startsWith('-'); i++) {
    globals.push(argv[i]);
    if (argv[i] === '--config' && i + 1 < argv.length) globals.push(argv[++i]);
  }
  return { cmd: argv[i], rest: argv.slice(i + 1), globals };
}

export async function main(argv: string[]): Promise<number> {
  const { cmd, rest, globals } = splitCommand(argv);
  let action: Action | undefined;
  try {
    if (!cmd) {
      const values = parseOptions(globals, { ...FRAME_OPTIONS, ...CONFIG_OPTION });
      if (values.version) return (out(`pullvault ${VERSION}`), EXIT.OK);
      (values.help ? out : err)(await help());
      return values.help ? EXIT.OK : EXIT.USAGE;
    }
    const load = Object.hasOwn(ACTIONS, cmd) ? ACTIONS[cmd] : undefined;
    if (!load) throw new UsageError(`unknown command ${JSON.stringify(cmd)}\n(see pullvault --help)`);
    action = await load();
    const options = { ...action.options, ...FRAME_OPTIONS, ...(action.config ? CONFIG_OPTION : {}) };
    let values: Record<string, unknown>;
    try {
      values = parseOptions([...globals, ...rest], options);
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n(see pullvault ${cmd} --help)`);
    }
    if (values.version) return (out(`pullvault ${VERSION}`), EXIT.OK);
    if (values.help) return (out(action.help), EXIT.OK);
    const config = action.config ? await loadConfig((values.config as string | undefined) ?? DEFAULT_CONFIG_PATH) : (undefined as unknown as RuntimeConfig);
    if (action.config) checkServers(config, values.server as string[] | string | undefined);
    return await action.main({ values: values as never, config, out, err });
  } catch (e) {
    if (e instanceof UsageError) {
      err(`pullvault${action ? ` ${action.name}` : ''}: ${e.message}`);
      return EXIT.USAGE;
    }
    if (action?.errorsAreFailures) {
      err(`error: ${(e as Error).message}`);
      return EXIT.SERVER_FAILED;
    }
    throw e;
  }
}

function checkServers(config: RuntimeConfig, wanted: string[] | string | undefined): void {
  const names = config.inventory.servers.map((s) => s.name);
  for (const s of [wanted ?? []].flat()) if (!names.includes(s)) throw new UsageError(`--server ${s}: not in the config (${names.join(', ')})`);
}

async function loadConfig(path: string): Promise<RuntimeConfig> {
  try {
    return await readRuntimeConfig(path);
  } catch (e) {
    throw e instanceof ConfigError ? new UsageError(e.message) : e;
  }
}
