// What a `pullvault` action is: its name and help, its options (node:util parseArgs), whether it
// reads the Pi's config, and its body. The frame (runtime/cli.ts) parses, prints help, loads the
// config and turns errors into the documented exit codes; an action only returns its code.
import type { OptionValues, Options } from '../../lib/cli/args.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';

export { UsageError } from '../../lib/cli/args.ts';

export interface ActionContext<O extends Options> {
  values: OptionValues<O>;
  /** the Pi's config (--config, validated), for actions with `config: true` */
  config: RuntimeConfig;
  out(line: string): void;
  err(line: string): void;
}

export interface Action<O extends Options = Options> {
  name: string;
  /** lines under `commands:` in `pullvault --help` */
  summary: string;
  /** `pullvault <name> --help` */
  help: string;
  options: O;
  /** reads --config FILE (default /etc/pullvault/config.json) before `main`; --server NAME must name a server in it */
  config: boolean;
  /** an error thrown by `main` is the operation failing (exit 1, one line), not a bug (exit 70) */
  errorsAreFailures?: boolean;
  main(ctx: ActionContext<O>): Promise<number>;
}

export function defineAction<const O extends Options>(a: Action<O>): Action<O> {
  return a;
}
