// One interface for running commands, wherever they run: locally (lib/proc), on a server (ssh2),
// or nowhere (dry-run wrapper). Arguments are always an argv array, never a shell string.
import { CommandError } from '../../lib/proc/index.ts';

export { CommandError };

export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface CommandOptions {
  /** bytes for the command's stdin */
  input?: string | Buffer;
  /** exit codes that are not errors (default [0]) */
  okCodes?: number[];
  /** the argv holds a secret: error messages show only argv[0] */
  sensitive?: boolean;
}

export interface Executor {
  /** where commands run, for messages: "web1 (root@web1.example.net:22)" */
  readonly where: string;
  /** a command that only reads (a check, a fact) */
  run(argv: string[], opts?: CommandOptions): Promise<CommandResult>;
  /** a command that changes the host (what a step's apply runs); a dry run's executor refuses it */
  change(argv: string[], opts?: CommandOptions): Promise<CommandResult>;
  close(): Promise<void>;
}

/** What a read-only executor throws for a change: a dry run (or a check) tried to change the host. */
export class ReadOnlyViolation extends Error {}

/**
 * The executor a dry run plans with: reads go through, a change is refused (so a check that
 * would change something fails loudly instead of changing the host).
 */
export function readOnly(exec: Executor): Executor {
  return {
    where: exec.where,
    run: (argv, opts) => exec.run(argv, opts),
    change: async (argv) => {
      throw new ReadOnlyViolation(`${exec.where}: dry run: refused to change anything (${argv[0] ?? ''})`);
    },
    close: () => exec.close(),
  };
}

export function checkResult(where: string, argv: string[], r: CommandResult, opts?: CommandOptions): CommandResult {
  if (!(opts?.okCodes ?? [0]).includes(r.code)) throw new CommandError({ where, argv, code: r.code, stderr: r.stderr, sensitive: opts?.sensitive, tailLines: 5 });
  return r;
}
