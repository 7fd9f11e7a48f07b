// `pullvault watch` on real archives (GNU tar, zstd, OpenPGP through the Pi's own offsite phase),
// in a folder target and in moto S3 over HTTP: a healthy store is ok (and its own healthcheck is
// pinged "success"); the Pi stopping (time moved on), an incremental gone from the chain, a
// flipped byte in an archive, and a manifest that shrinks to nothing are each detected, named,
// and fail the exit code (and ping /fail).
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsClients } from '../../provision/exec/aws.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { dateOfSnapshotId } from '../../contract/disk-layout.ts';
import { offsitePhase } from '../../runtime/offsite/phase.ts';
import { openTarget } from '../../runtime/offsite/open-target.ts';
import { readUploads, uploadsFile, type UploadRecord } from '../../runtime/offsite/uploads.ts';
import { type WatchReport } from '../../runtime/owner/watch.ts';
import { main as pullvault } from '../../runtime/cli.ts';

const watchMain = (args: string[]) => pullvault(['watch', ...args]);
import { startMoto, MOTO_CREDENTIALS, type Moto } from '../lab/moto.ts';
import { dirTargetConfig, genKey, makeSnapshot, offsiteWorkspace, quietly, type TestKey } from './offsite-fixture.ts';

const root = process.getuid?.() === 0;
// a full, then three daily incrementals
const IDS = ['20240101T020000Z', '20240102T020000Z', '20240103T020000Z', '20240104T020000Z'];
const AFTER_LAST = '2024-01-04T12:00:00Z';

let work: string;
let src: string;
let owner: TestKey;
let hcServer: Server;
let hcUrl: string;
const pings: { path: string; body: string }[] = [];

/** A server tree that changes a little every day (and is emptied when asked). */
function changeSource(day: number) {
  writeFileSync(join(src, `day-${day}.txt`), `written on day ${day}\n`.repeat(200));
  writeFileSync(join(src, 'changing.bin'), Buffer.alloc(50_000, day));
}

async function uploadDays(config: RuntimeConfig, data: string, opts: { target?: ReturnType<typeof openTarget> } = {}): Promise<UploadRecord[]> {
  for (const [i, id] of IDS.entries()) {
    changeSource(i);
    const dir = makeSnapshot(data, 'web1', id, src);
    const r = await offsitePhase(config, [{ server: 'web1', snapshotDir: dir, id, ok: true }], { log: () => {}, now: new Date(dateOfSnapshotId(id).getTime() + 60_000), ...opts });
    expect(r[0].error).toBeUndefined();
    expect(r[0].kind).toBe(i === 0 ? 'full' : 'incremental');
  }
  return readUploads(uploadsFile(data));
}

/** The inventory the owner keeps: its servers and schedule are what watch judges by. */
function inventoryFile(name: string, offsite: RuntimeConfig['inventory']['offsite']): string {
  const f = join(work, `${name}-inventory.json`);
  writeFileSync(f, JSON.stringify({ servers: [{ name: 'web1' }], schedule: { pull: '0 2 * * *', offsite: { fullEveryDays: 30, incrementalEveryDays: 1 } }, offsite }));
  return f;
}

async function watch(args: string[]) {
  const r = await quietly(() => watchMain([...args, '--gpg-homedir', owner.homedir, '--healthcheck', hcUrl, '--json']));
  const report = JSON.parse(r.out) as WatchReport;
  return { code: r.value, report, err: r.err, errors: report.servers.flatMap((s) => s.findings.filter((f) => f.level === 'error').map((f) => `${s.server}: ${f.check}: ${f.message}`)) };
}

function flipByte(file: string) {
  const buf = readFileSync(file);
  buf[buf.length >> 1] ^= 0x55;
  writeFileSync(file, buf);
}

beforeAll(async () => {
  if (!root) return;
  ({ work, src } = offsiteWorkspace('pv-watch-'));
  owner = genKey(work, 'owner');
  hcServer = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      pings.push({ path: req.url ?? '', body });
      res.end('OK');
    });
  });
  await new Promise<void>((r) => hcServer.listen(0, '127.0.0.1', r));
  hcUrl = `http://127.0.0.1:${(hcServer.address() as { port: number }).port}/ping/owner-watch-token`;
});
afterAll(async () => {
  if (hcServer) await new Promise<void>((r) => hcServer.close(() => r()));
  if (work && !process.env.PV_KEEP) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!root)('pullvault watch: a folder target', () => {
  let store: string;
  let data: string;
  let config: RuntimeConfig;
  let inv: string;
  let uploads: UploadRecord[];
  /** a copy of the healthy store, to break one way */
  const copyStore = (name: string) => {
    const to = join(work, name);
    cpSync(store, to, { recursive: true });
    return to;
  };

  beforeAll(async () => {
    ({ store, data } = { store: join(work, 'store'), data: join(work, 'data') });
    config = dirTargetConfig(data, store, work, [owner]);
    uploads = await uploadDays(config, data);
    inv = inventoryFile('dir', { type: 'dir', path: store });
  }, 120_000);

  it('a healthy store: ok, every check passed, its own healthcheck pinged success', async () => {
    pings.length = 0;
    const r = await watch(['--config', inv, '--now', AFTER_LAST]);
    expect(r.errors).toEqual([]);
    expect(r.code, r.err).toBe(0);
    const s = r.report.servers[0];
    expect(s).toMatchObject({ server: 'web1', ok: true, newest: { snapshot: IDS[3], kind: 'incremental' }, full: { snapshot: IDS[0] }, chain: { archives: 4, complete: true } });
    expect(s.checked).toEqual({ manifests: 4, archives: 2 });
    expect(s.totals!.files).toBe(s.totals!.previous!.files + 1);
    expect(pings).toEqual([{ path: '/ping/owner-watch-token', body: `ok: web1 ${IDS[3]}` }]);
    // every archive read, and the table form
    const all = await watch(['--config', inv, '--now', AFTER_LAST, '--read-data']);
    expect([all.code, all.report.servers[0].checked.archives]).toEqual([0, 4]);
    const table = await quietly(() => watchMain(['--config', inv, '--now', AFTER_LAST, '--gpg-homedir', owner.homedir]));
    expect(table.out).toMatch(/^web1 +ok +20240104T020000Z incr +10\.0h +3\.4d +4 +/m);
  });

  it('the Pi stops uploading (time moved on two days): stale, exit 1 naming the server, /fail pinged with the reason', async () => {
    pings.length = 0;
    const r = await watch(['--config', inv, '--now', '2024-01-06T12:00:00Z']);
    expect(r.code).toBe(1);
    expect(r.errors).toEqual([expect.stringMatching(/^web1: age: stale: the newest archive \(20240104T020000Z\) is 2\.4 days old/)]);
    expect(r.err).toMatch(/^pullvault watch: web1: age: stale/m);
    expect(pings).toHaveLength(1);
    expect(pings[0].path).toBe('/ping/owner-watch-token/fail');
    expect(pings[0].body).toMatch(/^web1: age: stale/);
    // and mails, through sendmail -t (a stand-in on PATH that keeps the message; skipped where a real MTA is installed)
    if (!existsSync('/usr/sbin/sendmail') && !existsSync('/usr/lib/sendmail')) {
      const bin = join(work, 'bin');
      mkdirSync(bin, { recursive: true });
      writeFileSync(join(bin, 'sendmail'), `#!/bin/sh\ncat > "${join(work, 'mail.txt')}"\n`, { mode: 0o755 });
      const path = process.env.PATH;
      process.env.PATH = `${bin}:${path}`;
      try {
        expect((await watch(['--config', inv, '--now', '2024-01-06T12:00:00Z', '--mail-to', 'owner@example.test'])).code).toBe(1);
      } finally {
        process.env.PATH = path;
      }
      const mail = readFileSync(join(work, 'mail.txt'), 'utf8');
      expect(mail).toMatch(/^To: owner@example\.test$/m);
      expect(mail).toMatch(/^Subject: pullvault watch: web1 FAILED$/m);
      expect(mail).toMatch(/^web1: FAILED: age: stale: the newest archive \(20240104T020000Z\)/m);
    }
    // a month on, the full is overdue too
    const late = await watch(['--config', inv, '--now', '2024-02-01T12:00:00Z']);
    expect(late.errors).toEqual([expect.stringMatching(/^web1: age: stale/), expect.stringMatching(/^web1: full: the newest full archive \(20240101T020000Z\) is 31\.4 days old/)]);
  });

  it('an incremental missing from the chain: broken, the newest point named as not restorable', async () => {
    const broken = copyStore('store-missing');
    unlinkSync(join(broken, uploads[2].key));
    unlinkSync(join(broken, uploads[2].manifestKey));
    const r = await watch(['--config', inv, '--target', `dir:${broken}`, '--now', AFTER_LAST]);
    expect(r.code).toBe(1);
    expect(r.errors).toContain(`web1: chain: chain ${uploads[0].chainId} is broken: ${IDS[3]} builds on ${IDS[2]}, which is not in the store; the newest point (${IDS[3]}) cannot be restored`);
    expect(r.report.servers[0].chain).toMatchObject({ complete: false });
  });

  it('an archive corrupted: the newest is always read; one inside the chain is found with --read-data', async () => {
    const bad = copyStore('store-corrupt');
    flipByte(join(bad, uploads[3].key));
    const r = await watch(['--config', inv, '--target', `dir:${bad}`, '--now', AFTER_LAST]);
    expect(r.code).toBe(1);
    expect(r.errors).toEqual([expect.stringMatching(new RegExp(`^web1: data: ${uploads[3].key.replace(/\./g, '\\.')}: `))]);

    const mid = copyStore('store-corrupt-mid');
    flipByte(join(mid, uploads[1].key));
    const all = await watch(['--config', inv, '--target', `dir:${mid}`, '--now', AFTER_LAST, '--read-data']);
    expect(all.code).toBe(1);
    expect(all.errors).toEqual([expect.stringMatching(new RegExp(`^web1: data: ${uploads[1].key.replace(/\./g, '\\.')}: `))]);
    // a manifest object corrupted: it does not decrypt
    const m = copyStore('store-corrupt-manifest');
    flipByte(join(m, uploads[2].manifestKey));
    const mr = await watch(['--config', inv, '--target', `dir:${m}`, '--now', AFTER_LAST]);
    expect(mr.code).toBe(1);
    expect(mr.errors).toContainEqual(expect.stringMatching(new RegExp(`^web1: manifest: ${uploads[2].manifestKey.replace(/\./g, '\\.')}: .*manipulated`, 's')));
  });

  it('a manifest that shrinks to nothing (the server\'s data vanished, the Pi uploaded it anyway): flagged', async () => {
    rmSync(src, { recursive: true });
    mkdirSync(src);
    const id = '20240105T020000Z';
    const dir = makeSnapshot(data, 'web1', id, src);
    const sent = await offsitePhase(config, [{ server: 'web1', snapshotDir: dir, id, ok: true }], { log: () => {}, now: new Date(dateOfSnapshotId(id).getTime() + 60_000) });
    expect(sent[0].kind).toBe('incremental');
    const r = await watch(['--config', inv, '--now', '2024-01-05T12:00:00Z']);
    expect(r.code).toBe(1);
    expect(r.report.servers[0].totals).toMatchObject({ files: 0, bytes: 0 });
    expect(r.errors).toEqual([
      expect.stringMatching(/^web1: totals: the newest manifest \(20240105T020000Z\) lists 0 files, 20240104T020000Z listed 5 \(−100%\)/),
      expect.stringMatching(/^web1: totals: the newest manifest \(20240105T020000Z\) holds 0 bytes, 20240104T020000Z held \d+ \(−100%\)/),
    ]);
  });
});

describe.skipIf(!root)('pullvault watch: moto S3 over HTTP', () => {
  const BUCKET = 'pv-watch';
  const PREFIX = 'pi01/';
  const REGION = 'eu-central-1';
  let moto: Moto;
  let s3: S3Client;
  let uploads: UploadRecord[];
  let inv: string;
  let creds: string;
  let args: (...more: string[]) => string[];

  beforeAll(async () => {
    moto = await startMoto();
    s3 = awsClients({ region: REGION, endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS }).s3;
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET, CreateBucketConfiguration: { LocationConstraint: REGION } }));
    const data = join(work, 'data-s3');
    const offsite = { type: 's3' as const, bucket: BUCKET, region: REGION, prefix: PREFIX, retentionDays: { full: 90, incremental: 60 }, endpoint: moto.endpoint };
    const base = dirTargetConfig(data, join(work, 'unused'), work, [owner]);
    const config = { ...base, inventory: { ...base.inventory, offsite } } as RuntimeConfig;
    rmSync(src, { recursive: true, force: true });
    mkdirSync(src);
    uploads = await uploadDays(config, data, { target: openTarget(offsite, { ...MOTO_CREDENTIALS }) });
    inv = inventoryFile('s3', offsite);
    creds = join(work, 'reader.json');
    writeFileSync(creds, JSON.stringify(MOTO_CREDENTIALS), { mode: 0o600 });
    args = (...more) => ['--config', inv, '--credentials', creds, '--now', AFTER_LAST, ...more];
  }, 180_000);
  afterAll(async () => {
    await moto?.stop();
  });

  it('healthy: ok, with the store\'s LastModified no later than the snapshot names', async () => {
    const r = await watch(args('--read-data'));
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.report.store).toBe(`s3://${BUCKET}/${PREFIX}`);
    expect(r.report.servers[0]).toMatchObject({ ok: true, chain: { archives: 4, complete: true }, checked: { manifests: 4, archives: 4 } });
    // the store took the objects now (LastModified); the snapshot names are earlier, and count
    expect(r.report.servers[0].newest!.at).toBe(dateOfSnapshotId(IDS[3]).toISOString());
  });

  it('a corrupted archive and a deleted incremental are found', async () => {
    const key = uploads[3].key;
    const body = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToByteArray());
    body[body.length >> 1] ^= 0x55;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    const r = await watch(args());
    expect(r.code).toBe(1);
    expect(r.errors).toEqual([expect.stringMatching(/^web1: data: .*20240104T020000Z\.from-20240103T020000Z\.[0-9a-f]+\.tar\.zst\.gpg: /)]);

    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: uploads[1].key }));
    const r2 = await watch(args());
    expect(r2.errors).toContain(`web1: chain: chain ${uploads[0].chainId} is broken: ${IDS[2]} builds on ${IDS[1]}, which is not in the store; the newest point (${IDS[3]}) cannot be restored`);
  });
});
