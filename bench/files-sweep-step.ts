// One step of bench/files-sweep.ts, run in its own process so its peak RSS is its own:
//   manifest-full A | manifest-inc A B | select-full B | select-inc A B   (SORT = the sort's directory)
import { join } from 'node:path';
import { manifestEntries } from '../runtime/archive/manifest-stream.ts';
import { selectFull, selectIncremental } from '../runtime/offsite/select.ts';
import { buildManifest } from '../runtime/pull/manifest.ts';

const [step, a, b, sort] = process.argv.slice(2) as [string, string, string, string];
if (step === 'manifest-full') await buildManifest(a);
else if (step === 'manifest-inc') await buildManifest(b, { prevDir: a });
else if (step === 'select-full') {
  const s = selectFull(manifestEntries(join(b, 'manifest.jsonl')), sort);
  let n = 0;
  for (const _ of s.members) n++;
  s.dispose();
  if (n === 0) throw new Error('empty selection');
} else if (step === 'select-inc') {
  const s = selectIncremental(manifestEntries(join(a, 'manifest.jsonl')), manifestEntries(join(b, 'manifest.jsonl')));
  console.log(`${s.include.length} entries, ${s.changedBytes} bytes changed`);
} else throw new Error(`unknown step ${step}`);
