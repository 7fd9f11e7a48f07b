// What goes into an archive, in which order, and the small members pullvault writes itself.
//
// An archive is one POSIX tar stream (GNU tar creates everything but the first members) whose
// first members are written here:
//   .pullvault/deleted       NUL-separated paths (relative to the snapshot root) to remove
//                            BEFORE extracting this archive; empty in a full archive
//   .pullvault/archive.json  {format, kind, server, snapshot, base, chainId}
// then the snapshot's entries (files/…, dumps/…) and its manifest.jsonl + snapshot.json.
// Restoring by hand: docs/restore-by-hand.md.

export const DELETED_MEMBER = '.pullvault/deleted';
export const INFO_MEMBER = '.pullvault/archive.json';
export const META_DIR = '.pullvault';
/** files at the snapshot root that travel with every archive (not listed in the manifest) */
export const ROOT_FILES = ['manifest.jsonl', 'snapshot.json'];

/**
 * Order for the tar file list: depth-first by path component, so that a directory's whole
 * subtree is contiguous ("a", "a/x", "a-b" rather than the byte order "a", "a-b", "a/x").
 * GNU tar sets a directory's mtime once it leaves the subtree; with byte order it would leave
 * "a" at "a-b", then extracting "a/x" would change a's mtime again.
 */
export function compareTreeOrder(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i] === 0x2f ? 0 : a[i] + 1;
    const y = b[i] === 0x2f ? 0 : b[i] + 1;
    if (x !== y) return x - y;
  }
  return a.length - b.length;
}

/** A relative path a deletion list or manifest may name: no empty, "." or ".." component, not absolute. */
export function isSafeRelative(p: Buffer): boolean {
  if (p.length === 0 || p[0] === 0x2f || p.includes(0)) return false;
  for (const c of p.toString('latin1').split('/')) if (c === '' || c === '.' || c === '..') return false;
  return true;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** One ustar member (regular file, 0644, root, the given mtime) with its content and padding. */
export function ustarMember(name: string, content: Buffer, mtime: number): Buffer {
  if (Buffer.byteLength(name) > 99) throw new Error(`ustar name too long: ${name}`);
  if (content.length > 0o77777777777) throw new Error('ustar member too large');
  const h = Buffer.alloc(512, 0);
  h.write(name, 0, 'utf8');
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(content.length, 12), 124, 'ascii');
  h.write(octal(Math.floor(mtime), 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  const pad = (512 - (content.length % 512)) % 512;
  return Buffer.concat([h, content, Buffer.alloc(pad, 0)]);
}

/** GNU tar reading the NUL-separated list on stdin, relative to cwd = snapshot root; no end-of-archive trick needed. */
export function tarCreateArgv(): string[] {
  return [
    // the extended attributes and POSIX ACLs rsync -X -A carried into the snapshot, as pax
    // SCHILY.xattr.* and SCHILY.acl.* records (plain `tar -x --xattrs --acls` restores them)
    'tar', '--create', '--file=-', '--format=posix', '--numeric-owner', '--no-recursion', '--xattrs', '--acls',
    '--null', '--verbatim-files-from', '--files-from=-',
    // pax headers that do not change from run to run (no atime/ctime, stable header names)
    '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
  ];
}

/** Extraction faithful to the archive: numeric owners, modes incl. setuid, extended attributes (user.*) and ACLs, into `dir`. */
export function tarExtractArgv(dir: string, members: string[] = []): string[] {
  return ['tar', '--extract', '--file=-', '--numeric-owner', '--same-owner', '--same-permissions', '--xattrs', '--acls', '--directory', dir, ...(members.length ? ['--', ...members] : [])];
}
