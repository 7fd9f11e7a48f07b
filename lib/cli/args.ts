// The one argument parser of both CLI frames (provision/cli-common.ts, runtime/cli.ts):
// node:util parseArgs, strict, no positional arguments; a bad command line is a UsageError,
// which each frame turns into exit 2.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type Options = NonNullable<ParseArgsConfig['options']>;

/** The parsed values of `options`, typed from the option table. */
export type OptionValues<O extends Options> = ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>>['values'];

/** A bad command line or config: exit 2, the message on one line. */
export class UsageError extends Error {}

export function parseOptions(argv: string[], options: Options): Record<string, unknown> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
