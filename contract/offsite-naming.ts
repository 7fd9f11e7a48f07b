// Object names inside the key layout of contract/s3-layout.ts (pure).
//
//   full/<server>/<chainId>/<snapshot>.<tag>.tar.zst.gpg
//   incr/<server>/<chainId>/<snapshot>.from-<base snapshot>.<tag>.tar.zst.gpg
//   manifest/<server>/<chainId>/<same stem>.jsonl.zst.gpg
//
// chainId = "<snapshot of the full>-<tag>". Every upload attempt gets a fresh random tag, so a
// retry never collides with an object that an earlier, failed-looking attempt did complete.
// The base in an incremental's name is what restore follows (not the listing order): an
// orphan from a failed run can never be applied on top of the wrong tree.
import { randomBytes } from 'node:crypto';
import { ARCHIVE_EXT, MANIFEST_EXT, fullKey, incrementalKey, manifestKey, parseKey } from './s3-layout.ts';

export type Kind = 'full' | 'incremental';

export interface ArchiveName {
  kind: Kind;
  server: string;
  chainId: string;
  snapshot: string;
  base?: string;
  tag: string;
}

export function newTag(): string {
  return randomBytes(4).toString('hex');
}

export function newChainId(fullSnapshot: string, tag = newTag()): string {
  return `${fullSnapshot}-${tag}`;
}

export function stem(n: Pick<ArchiveName, 'kind' | 'snapshot' | 'base' | 'tag'>): string {
  if (n.kind === 'incremental' && !n.base) throw new Error('an incremental needs its base snapshot');
  return n.kind === 'full' ? `${n.snapshot}.${n.tag}` : `${n.snapshot}.from-${n.base}.${n.tag}`;
}

export function archiveKey(prefix: string, n: ArchiveName): string {
  return (n.kind === 'full' ? fullKey : incrementalKey)(prefix, n.server, n.chainId, stem(n), ARCHIVE_EXT);
}

export function manifestObjectKey(prefix: string, n: ArchiveName): string {
  return manifestKey(prefix, n.server, n.chainId, stem(n), MANIFEST_EXT);
}

const STEM = /^(\d{8}T\d{6}Z)(?:\.from-(\d{8}T\d{6}Z))?\.([0-9a-f]+)$/;

/** Parses an archive or manifest key; null when it is not one of ours. */
export function parseObjectKey(prefix: string, key: string): (ArchiveName & { object: 'archive' | 'manifest' }) | null {
  const k = parseKey(prefix, key);
  if (!k) return null;
  const ext = k.kind === 'manifest' ? MANIFEST_EXT : ARCHIVE_EXT;
  if (!k.name.endsWith(ext)) return null;
  const m = STEM.exec(k.name.slice(0, -ext.length));
  if (!m) return null;
  const kind: Kind = k.kind === 'manifest' ? (m[2] ? 'incremental' : 'full') : k.kind === 'full' ? 'full' : 'incremental';
  if (k.kind === 'full' && m[2]) return null;
  if (k.kind === 'incr' && !m[2]) return null;
  return { object: k.kind === 'manifest' ? 'manifest' : 'archive', kind, server: k.server, chainId: k.chainId, snapshot: m[1], base: m[2], tag: m[3] };
}
