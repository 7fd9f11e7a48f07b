// A mass change (a chown -R, a restored tree) through the real pipeline (GNU tar, zstd, gpg) into
// a dir target: past the phase's limit of changed paths the incremental goes as a full instead,
// which starts a new chain; the next day builds on that full; both chains restore to every point.
// The limit is set low here (maxIncrementalChanges) so a small tree crosses it; the Pi's default is
// MAX_INCREMENTAL_CHANGES in offsite/phase.ts.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { dateOfSnapshotId } from '../../contract/disk-layout.ts';
import { offsitePhase } from '../../runtime/offsite/phase.ts';
import { main as pullvault } from '../../runtime/cli.ts';
import { readUploads, uploadsFile } from '../../runtime/offsite/uploads.ts';
import { dirTargetConfig, genKey, makeSnapshot, offsiteWorkspace, quietly, type TestKey, treeSignature } from './offsite-fixture.ts';

const root = process.getuid?.() === 0;
const IDS = ['20240101T020000Z', '20240102T020000Z', '20240103T020000Z', '20240104T020000Z'];
const LIMIT = 5;
const FILES = 20;

// the suite's folders (offsiteWorkspace), its key and config, made in beforeAll
let ws: ReturnType<typeof offsiteWorkspace> & { owner: TestKey; config: RuntimeConfig };
const snapDirs: string[] = [];

/** rewrites `changed` of the source's files, snapshots it as day `i` and runs the offsite phase on it */
async function day(i: number, changed: number) {
  for (let f = 0; f < changed; f++) writeFileSync(join(ws.src, `f${f}.txt`), `file ${f} as of day ${i}\n`);
  snapDirs[i] = makeSnapshot(ws.data, 'web1', IDS[i], ws.src);
  const lines: string[] = [];
  const r = await offsitePhase(ws.config, [{ server: 'web1', snapshotDir: snapDirs[i], id: IDS[i], ok: true }], {
    log: (l) => lines.push(l),
    now: new Date(dateOfSnapshotId(IDS[i]).getTime() + 60_000),
    maxIncrementalChanges: LIMIT,
  });
  return { r: r[0], log: lines.join('\n') };
}

describe.skipIf(!root)('offsite: a mass change goes as a full', () => {
  beforeAll(() => {
    const w = offsiteWorkspace('pv-offsite-mass-');
    const owner = genKey(w.work, 'owner');
    ws = { ...w, owner, config: dirTargetConfig(w.data, w.store, w.work, [owner]) };
  });
  afterAll(() => {
    if (ws && !process.env.PV_KEEP) rmSync(ws.work, { recursive: true, force: true });
  });

  it(`up to ${LIMIT} changed paths an incremental, past it a full in a new chain, then incrementals on that full`, async () => {
    expect((await day(0, FILES)).r.kind).toBe('full');
    const small = await day(1, 2);
    expect(small.r.kind, small.log).toBe('incremental');
    expect(small.log).not.toMatch(/a full instead/);

    const mass = await day(2, FILES);
    expect(mass.r.kind, mass.log).toBe('full');
    expect(mass.log).toContain(`offsite web1: more than ${LIMIT} paths changed since the base: a full instead`);
    expect(mass.r.key).toMatch(/^full\/web1\//);

    const after = await day(3, 1);
    expect(after.r.kind, after.log).toBe('incremental');
    const recs = await readUploads(uploadsFile(ws.data));
    expect(recs.map((r) => [r.snapshot, r.kind, r.base ?? null])).toEqual([
      [IDS[0], 'full', null],
      [IDS[1], 'incremental', IDS[0]],
      [IDS[2], 'full', null],
      [IDS[3], 'incremental', IDS[2]],
    ]);
    expect(recs[2].chainId).not.toBe(recs[0].chainId);
    expect(recs[3].chainId).toBe(recs[2].chainId);
  });

  it('every point restores: the newest from the new chain, the older chain with --at', async () => {
    for (const [i, at] of [[3, []], [2, ['--at', IDS[2]]], [1, ['--at', IDS[1]]]] as const) {
      const to = join(ws.work, `r-${i}`);
      const r = await quietly(() => pullvault(['restore', '--target', `dir:${ws.store}`, '--server', 'web1', '--to', to, '--gpg-homedir', ws.owner.homedir, ...at]));
      expect(r.value, r.out + r.err).toBe(0);
      expect(r.out).toContain(`as of ${IDS[i]}`);
      expect(treeSignature(join(to, 'files'))).toEqual(treeSignature(join(snapDirs[i], 'files')));
    }
  });
});
