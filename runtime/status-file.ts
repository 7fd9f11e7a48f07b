// Reads status.json (written by the cycle through writeFileAtomic); a missing or foreign file reads as empty.
import { readFile } from 'node:fs/promises';
import { emptyStatus, type StatusDoc } from './status.ts';

export async function readStatus(path: string): Promise<StatusDoc> {
  try {
    const doc = JSON.parse(await readFile(path, 'utf8')) as StatusDoc;
    return doc && doc.version === 1 && doc.servers ? doc : emptyStatus();
  } catch {
    return emptyStatus();
  }
}
