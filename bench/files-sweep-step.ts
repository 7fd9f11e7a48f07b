// One step of bench/files-sweep.ts, run in its own process so its peak RSS is its own; prints
// one JSON line {vmHwmKiB, ...} (this process's own peak, hashing threads included; not rsync's,
// tar's or zstd's):
//   pull SRC SNAP [PREV]       rsync SRC into SNAP/files (--link-dest PREV/files) with the pre-hasher fed from its output, then the manifest
//   offsite-full WORK SNAP      the full archive of SNAP into WORK/store (sendArchive: selection, tar, zstd, OpenPGP, manifest object)
//   offsite-inc WORK SNAP BASE  the incremental of SNAP on BASE (the full's record from WORK/full.json), deltas on as in a run
//   restore WORK TO             restore (chain: the full and the incremental) into TO, every entry checked against the manifest
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPrivateKey, loadRecipient } from '../runtime/archive/pgp.ts';
import { deltaSettings } from '../runtime/offsite/deltas.ts';
import { sendArchive } from '../runtime/offsite/phase.ts';
import { restore } from '../runtime/offsite/restore.ts';
import { DirTarget } from '../runtime/offsite/target-dir.ts';
import type { UploadRecord } from '../runtime/offsite/uploads.ts';
import { buildManifest } from '../runtime/pull/manifest.ts';
import { PreHasher } from '../runtime/pull/prehash.ts';
import { pull } from '../runtime/proc.ts';

const [step, ...args] = process.argv.slice(2) as [string, ...string[]];
const hwm = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
const log = (l: string) => process.env.PV_VERBOSE && process.stderr.write(l + '\n');
const key = (work: string) => JSON.parse(readFileSync(join(work, 'key.json'), 'utf8')) as { publicFile: string; secretFile: string; fingerprint: string };
const send = async (work: string, snap: string, base?: { dir: string; record: UploadRecord }) => {
  const k = key(work);
  return sendArchive({
    target: new DirTarget(join(work, 'store')),
    recipients: [await loadRecipient('owner', k.publicFile, k.fingerprint)],
    server: 'sweep',
    snapshotDir: snap,
    snapshot: base ? '20240102T020000Z' : '20240101T020000Z',
    base,
    log,
    attempts: 1,
    backoffMs: 0,
    now: new Date(base ? '2024-01-02T02:01:00Z' : '2024-01-01T02:01:00Z'),
    deltas: { settings: deltaSettings(), stagingDir: join(work, 'staging', 'sweep'), keepFreeBytes: 1 << 30 },
  });
};

let out: Record<string, unknown> = {};
if (step === 'pull') {
  const [src, snap, prev] = args as [string, string, string | undefined];
  // the runtime's rsync flags (runtime/pull/commands.ts), the source local instead of over ssh
  const pre = new PreHasher({ sortDir: join(snap, '..') });
  try {
    const r = pull.start(['rsync', '-aHAX', '--numeric-ids', '--delete', '--delete-excluded', '--out-format=%b %i %n', ...(prev ? [`--link-dest=${prev}/files`] : []), '--', `${src}/`, `${snap}/files/`]);
    const names = pre.feed(`${snap}/files`);
    r.child.stdout!.on('data', (b: Buffer) => names.write(b));
    r.child.stdout!.on('end', () => names.end());
    const done = await r.done;
    if (done.code !== 0) throw new Error(`rsync exited ${done.code}: ${done.stderr.slice(-500)}`);
    const { stats } = await buildManifest(snap, { prevDir: prev, known: pre.lookup, knownReady: pre.finish() });
    out = { files: stats.files, hashed: stats.hashedFiles, prehashed: stats.prehashedFiles };
  } finally {
    await pre.close();
  }
} else if (step === 'offsite-full') {
  const [work, snap] = args as [string, string];
  const rec = await send(work, snap);
  writeFileSync(join(work, 'full.json'), JSON.stringify(rec));
  out = { bytes: rec.bytes, manifestBytes: rec.manifestBytes };
} else if (step === 'offsite-inc') {
  const [work, snap, base] = args as [string, string, string];
  const rec = await send(work, snap, { dir: base, record: JSON.parse(readFileSync(join(work, 'full.json'), 'utf8')) as UploadRecord });
  out = { bytes: rec.bytes, manifestBytes: rec.manifestBytes };
} else if (step === 'restore') {
  const [work, to] = args as [string, string];
  const privateKey = await loadPrivateKey(readFileSync(key(work).secretFile, 'utf8'));
  const r = await restore({ target: new DirTarget(join(work, 'store')), server: 'sweep', to, decryptor: { kind: 'key', privateKey }, log, tmpDir: work });
  if (r.problems.length) throw new Error(`restore: ${r.problems.slice(0, 5).join('; ')}`);
  out = { entries: r.entries, steps: r.steps.length };
} else throw new Error(`unknown step ${step}`);
console.log(JSON.stringify({ ...out, vmHwmKiB: hwm() }));
