// The dispatcher's list of the databases an engine with named databases may dump.
import { checkDbName } from '../../../contract/db-engine.ts';
import type { NamedSelection } from '../../../contract/db-engines/named.ts';

/** '*' | 'a b c' | '' (engine off) for a dispatcher fragment's database list; throws for a name it would refuse. */
export function dbListValue(engine: string, max: number, sel: NamedSelection | undefined): string {
  if (sel === undefined) return '';
  if (sel === 'all') return '*';
  for (const n of sel) checkDbName(engine, max, n);
  return [...new Set(sel)].join(' ');
}
