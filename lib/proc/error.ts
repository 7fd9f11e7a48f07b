// The one error for a command that failed: what ran (argv, and where), how it ended (exit code
// and what that code means, or the signal, or that it never started), and the tail of its stderr.
import { constants } from 'node:os';

/** Meanings every program shares (shell conventions); a caller adds its program's own. */
const COMMON_MEANINGS: Record<number, string> = {
  126: 'not executable',
  127: 'command not found',
};

export interface Ending {
  /** exit code; null when the process never started or was killed by a signal */
  code: number | null;
  signal?: NodeJS.Signals | null;
  /** why it never started (spawn error), e.g. ENOENT */
  startError?: Error;
  /** the run was stopped because it took longer than this */
  timedOutMs?: number;
}

/** What an exit code means, if anything is known about it. */
export function exitMeaning(code: number | null, meanings: Record<number, string> = {}): string | undefined {
  if (code === null) return undefined;
  if (meanings[code]) return meanings[code];
  if (COMMON_MEANINGS[code]) return COMMON_MEANINGS[code];
  if (code > 128 && code < 128 + 65) {
    const name = Object.entries(constants.signals).find(([, n]) => n === code - 128)?.[0];
    if (name) return `killed by ${name}`;
  }
  return undefined;
}

/** Quote an argument for display only (never executed through a shell). */
function showArg(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

export function stderrTail(stderr: string, lines = 8): string {
  return stderr.trim().split('\n').slice(-lines).join('\n');
}

function describeEnding(e: Ending, meanings?: Record<number, string>): string {
  if (e.startError) return `could not start: ${e.startError.message}`;
  if (e.timedOutMs !== undefined) return `timed out after ${e.timedOutMs / 1000} s${e.signal ? ` (killed by ${e.signal})` : ''}`;
  if (e.signal) return `killed by ${e.signal}`;
  const meaning = exitMeaning(e.code, meanings);
  return `exited with ${e.code}${meaning ? ` (${meaning})` : ''}`;
}

export interface CommandErrorDetails extends Ending {
  argv: string[];
  stderr: string;
  /** where it ran, for messages: "web1 (root@web1:22)", a lab host's name */
  where?: string;
  /** the argv holds a secret: messages show only argv[0] */
  sensitive?: boolean;
  /** the program's own exit code meanings (rsync 23, 24 …) */
  meanings?: Record<number, string>;
  tailLines?: number;
}

export class CommandError extends Error {
  readonly argv: string[];
  readonly where?: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  /** what the exit code means, when known */
  readonly meaning?: string;
  readonly timedOut: boolean;
  /** true when the program never ran (not installed, not executable) */
  readonly notStarted: boolean;

  constructor(d: CommandErrorDetails) {
    const shown = d.sensitive ? `${d.argv[0]} …` : d.argv.map(showArg).join(' ');
    const tail = stderrTail(d.stderr, d.tailLines ?? 8);
    super(`${d.where ? `${d.where}: ` : ''}\`${shown}\` ${describeEnding(d, d.meanings)}${tail ? `:\n    ${tail.replace(/\n/g, '\n    ')}` : ''}`, d.startError ? { cause: d.startError } : undefined);
    this.name = 'CommandError';
    this.argv = d.argv;
    this.where = d.where;
    this.code = d.code;
    this.signal = d.signal ?? null;
    this.stderr = d.stderr;
    this.meaning = exitMeaning(d.code, d.meanings);
    this.timedOut = d.timedOutMs !== undefined;
    this.notStarted = d.startError !== undefined;
  }
}
