// A file written synchronously in batches of about 1 MiB: the external sort's runs, manifests,
// manifest diffs. Synchronous, since these writers sit inside generator pipelines.
import { closeSync, openSync, writeSync } from 'node:fs';

const BATCH = 1 << 20;

/** Writes all of `b` to `fd` (writeSync may write less than asked). */
export function writeAllSync(fd: number, b: Buffer): void {
  for (let off = 0; off < b.length; ) off += writeSync(fd, b, off, b.length - off);
}

/** Buffers given to push() end up in the file in order; close() writes the rest. */
export class BatchedWriter {
  private readonly fd: number;
  private parts: Buffer[] = [];
  private size = 0;
  constructor(path: string) {
    this.fd = openSync(path, 'w', 0o600);
  }
  protected push(b: Buffer): void {
    this.parts.push(b);
    this.size += b.length;
    if (this.size >= BATCH) this.flush();
  }
  private flush(): void {
    if (!this.parts.length) return;
    writeAllSync(this.fd, Buffer.concat(this.parts));
    this.parts = [];
    this.size = 0;
  }
  close(): void {
    try {
      this.flush();
    } finally {
      closeSync(this.fd);
    }
  }
}
