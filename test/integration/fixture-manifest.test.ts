// The offsite suites build their snapshots' manifests with the fixture's own code (computeManifest,
// an oracle independent of the runtime); this pins it to what the Pi writes (buildManifest) on a
// tree with what differs most easily: hard-link groups, symlinks, a non-UTF-8 name, a pre-1970
// mtime, an empty directory. A mismatch here once hid a restore that failed on every hard link.
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { ManifestEntry } from '../../contract/disk-layout.ts';
import { buildManifest } from '../../runtime/pull/manifest.ts';
import { computeManifest } from './offsite-fixture.ts';

const work = mkdtempSync(join(tmpdir(), 'pv-fixture-manifest-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

it('computeManifest writes what buildManifest writes', async () => {
  const f = join(work, 'snap', 'files');
  mkdirSync(join(f, 'a', 'empty'), { recursive: true });
  writeFileSync(join(f, 'a', 'one'), 'one\n');
  linkSync(join(f, 'a', 'one'), join(f, 'a', 'one-link'));
  linkSync(join(f, 'a', 'one'), join(f, 'b-link'));
  writeFileSync(join(f, 'a', 'two'), 'two\n');
  linkSync(join(f, 'a', 'two'), join(f, 'a', 'two.hard'));
  symlinkSync('one', join(f, 'a', 'sym'));
  writeFileSync(join(f, 'café'), 'UTF-8 name\n');
  writeFileSync(Buffer.concat([Buffer.from(f + '/'), Buffer.from([0x72, 0xff])]), 'not UTF-8\n');
  writeFileSync(join(f, 'old'), 'old\n');
  execFileSync('touch', ['-d', '1965-06-01 12:00:00.5 UTC', join(f, 'old')]);
  await buildManifest(join(work, 'snap'));
  const pi = readFileSync(join(work, 'snap', 'manifest.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ManifestEntry);
  const fixture = computeManifest(join(work, 'snap'));
  expect(pi.filter((e) => e.hl !== undefined).length).toBe(3);
  expect(fixture).toEqual(pi);
});
