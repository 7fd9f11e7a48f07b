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
  run(argv: string[], opts?: CommandOptions): Promise<CommandResult>;
  close(): Promise<void>;
}

export function checkResult(where: string, argv: string[], r: CommandResult, opts?: CommandOptions): CommandResult {
  if (!(opts?.okCodes ?? [0]).includes(r.code)) throw new CommandError({ where, argv, code: r.code, stderr: r.stderr, sensitive: opts?.sensitive, tailLines: 5 });
  return r;
}
