// A snapshot's whole manifest from the manifest objects of its chain (restore, watch): a full's
// object (and an incremental's from before v2) holds the whole manifest.jsonl, a newer
// incremental's its diff against the base's (archive/manifest-diff.ts). The newest whole one with
// every diff after it applied in turn is the snapshot's manifest, streamed through nested
// generators: memory is a read buffer per object, whatever the file count.
import { rm } from 'node:fs/promises';
import { applyManifestDiff, diffTotals, entryTotals, LineWriter, type ManifestForm, type Totals } from '../archive/manifest-diff.ts';
import { fileLines } from '../archive/manifest-stream.ts';
import { start } from '../proc.ts';

/** A manifest object decompressed to a plain file: its form (the header's `manifest`) and its body's lines. */
export interface ManifestObject {
  form: ManifestForm;
  /** the lines after the header (re-readable) */
  body: () => Iterable<string>;
  dispose(): Promise<void>;
}

/** Decompresses the (decrypted) manifest object `file` into `plain`. */
export async function openManifestObject(file: string, plain: string): Promise<ManifestObject> {
  await start(['zstd', '-d', '-q', '-f', '-o', plain, file], { stdio: ['ignore', 'ignore', 'pipe'] }).done;
  const first = fileLines(plain).next();
  const header = first.done ? undefined : (JSON.parse(first.value) as { pullvault?: string; manifest?: ManifestForm });
  if (header?.pullvault !== 'manifest') throw new Error(`${file}: not a pullvault manifest`);
  return {
    form: header.manifest === 'diff' ? 'diff' : 'whole',
    *body() {
      let skip = true;
      for (const l of fileLines(plain)) {
        if (skip) skip = false;
        else yield l;
      }
    },
    dispose: () => rm(plain, { force: true }),
  };
}

/** The whole manifest of the last of `objects` (a chain's, full first), written to `out`. */
export function composeManifest(objects: ManifestObject[], names: string[], out: string): void {
  let w = objects.length - 1;
  while (w >= 0 && objects[w].form !== 'whole') w--;
  if (w < 0) throw new Error(`${names[names.length - 1] ?? 'the chain'}: no whole manifest before it in its chain (the chain's full is missing)`);
  let lines: Iterable<string> = objects[w].body();
  for (let j = w + 1; j < objects.length; j++) lines = applyManifestDiff(lines, objects[j].body(), names[j]);
  const wr = new LineWriter(out);
  try {
    for (const l of lines) wr.line(l);
  } finally {
    wr.close();
  }
}

/** What an object says of the files and bytes: the totals (whole) or their change (diff). */
export function objectTotals(o: ManifestObject): { form: ManifestForm; totals: Totals } {
  return { form: o.form, totals: o.form === 'whole' ? entryTotals(o.body()) : diffTotals(o.body()) };
}
