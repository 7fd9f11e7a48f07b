// Files under <disk>/pullvault/state and the Prometheus textfile, written atomically
// (temp file in the same directory, fsync, rename).
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { emptyStatus, type StatusDoc } from './status.ts';

export async function writeFileAtomic(path: string, content: string, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${dirname(path)}/.${path.split('/').pop()}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  await rename(tmp, path);
}

export async function readStatus(path: string): Promise<StatusDoc> {
  try {
    const doc = JSON.parse(await readFile(path, 'utf8')) as StatusDoc;
    return doc && doc.version === 1 && doc.servers ? doc : emptyStatus();
  } catch {
    return emptyStatus();
  }
}
