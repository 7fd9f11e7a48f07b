// Local commands through lib/proc: an argv array, never a shell string.
import { run } from '../../lib/proc/index.ts';
import { checkResult, type CommandOptions, type CommandResult, type Executor } from './types.ts';

export class LocalExecutor implements Executor {
  readonly where = 'local';

  async run(argv: string[], opts?: CommandOptions): Promise<CommandResult> {
    const r = await run(argv, { input: opts?.input, nothrow: true, where: this.where, sensitive: opts?.sensitive });
    return checkResult(this.where, argv, r, opts);
  }

  change(argv: string[], opts?: CommandOptions): Promise<CommandResult> {
    return this.run(argv, opts);
  }

  async close(): Promise<void> {}
}
