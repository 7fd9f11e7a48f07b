// Local commands through zx: arguments are passed as an array, so zx never builds a shell string.
import { $ } from 'zx';
import { checkResult, type CommandOptions, type CommandResult, type Executor } from './types.ts';

export class LocalExecutor implements Executor {
  readonly where = 'local';

  async run(argv: string[], opts?: CommandOptions): Promise<CommandResult> {
    const [cmd, ...args] = argv;
    const p = $({ nothrow: true, quiet: true, input: opts?.input, verbose: false })`${cmd} ${args}`;
    const out = await p;
    return checkResult(this.where, argv, { stdout: out.stdout, stderr: out.stderr, code: out.exitCode ?? 1 }, opts);
  }

  async close(): Promise<void> {}
}
