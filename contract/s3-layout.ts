// The object key layout in the offsite bucket, shared by provision-aws (lifecycle rules by
// prefix) and the Pi's offsite uploader (where each archive goes). Pure: strings in, strings out.
//
//   <prefix>full/<server>/<chainId>/<snapshotId><ext>       full archive that starts a chain
//   <prefix>incr/<server>/<chainId>/<snapshotId><ext>       incrementals on top of that full
//   <prefix>manifest/<server>/<chainId>/<snapshotId><ext>   manifests (what each archive holds)
//
// Retention is by prefix (lifecycle "expire after N days" on full/, incr/, manifest/), never by
// tag: the Pi may not tag (a thief could retag objects into a short expiry). Lifecycle counts
// days from each object's creation, while a restore point needs its whole chain: how the days
// per prefix follow from the chain's span is in provision/aws/lifecycle.ts.

export const ARCHIVE_KINDS = ['full', 'incr', 'manifest'] as const;
export type ArchiveKind = (typeof ARCHIVE_KINDS)[number];

/** File endings: an OpenPGP-encrypted zstd tar, and an OpenPGP-encrypted zstd manifest (JSON lines). */
export const ARCHIVE_EXT = '.tar.zst.gpg';
export const MANIFEST_EXT = '.jsonl.zst.gpg';

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function segment(what: string, v: string): string {
  if (!SEGMENT.test(v) || v === '.' || v === '..' || v.length > 128)
    throw new Error(`s3 key: ${what} "${v}" must be 1–128 of A-Z a-z 0-9 . _ - (starting with a letter or digit)`);
  return v;
}

function checkPrefix(prefix: string): string {
  if (prefix !== '' && !/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*\/$/.test(prefix)) throw new Error(`s3 key: prefix "${prefix}" must be empty or end with /`);
  return prefix;
}

/** The prefix of one kind, e.g. kindPrefix('pi01/', 'full') = 'pi01/full/'. */
export function kindPrefix(prefix: string, kind: ArchiveKind): string {
  return `${checkPrefix(prefix)}${kind}/`;
}

/** The three prefixes lifecycle rules are keyed on. */
export function chainPrefixes(prefix: string): Record<ArchiveKind, string> {
  return { full: kindPrefix(prefix, 'full'), incr: kindPrefix(prefix, 'incr'), manifest: kindPrefix(prefix, 'manifest') };
}

/** Folder of one chain for one kind: '<prefix><kind>/<server>/<chainId>/'. */
export function chainPrefix(prefix: string, kind: ArchiveKind, server: string, chainId: string): string {
  return `${kindPrefix(prefix, kind)}${segment('server', server)}/${segment('chainId', chainId)}/`;
}

export function objectKey(prefix: string, kind: ArchiveKind, server: string, chainId: string, snapshotId: string, ext: string): string {
  if (!/^(\.[A-Za-z0-9]+)*$/.test(ext)) throw new Error(`s3 key: extension "${ext}" must look like .tar.zst.gpg`);
  return `${chainPrefix(prefix, kind, server, chainId)}${segment('snapshotId', snapshotId)}${ext}`;
}

export const fullKey = (prefix: string, server: string, chainId: string, snapshotId: string, ext = ARCHIVE_EXT): string =>
  objectKey(prefix, 'full', server, chainId, snapshotId, ext);
export const incrementalKey = (prefix: string, server: string, chainId: string, snapshotId: string, ext = ARCHIVE_EXT): string =>
  objectKey(prefix, 'incr', server, chainId, snapshotId, ext);
export const manifestKey = (prefix: string, server: string, chainId: string, snapshotId: string, ext = MANIFEST_EXT): string =>
  objectKey(prefix, 'manifest', server, chainId, snapshotId, ext);

export interface ParsedKey {
  kind: ArchiveKind;
  server: string;
  chainId: string;
  /** the file name after the chain folder, with its ending */
  name: string;
}

/** Inverse of objectKey for restore/verify listings; null for keys outside the layout. */
export function parseKey(prefix: string, key: string): ParsedKey | null {
  if (!key.startsWith(prefix)) return null;
  const parts = key.slice(prefix.length).split('/');
  if (parts.length !== 4) return null;
  const [kind, server, chainId, name] = parts;
  if (!(ARCHIVE_KINDS as readonly string[]).includes(kind) || !SEGMENT.test(server) || !SEGMENT.test(chainId) || !name) return null;
  return { kind: kind as ArchiveKind, server, chainId, name };
}
