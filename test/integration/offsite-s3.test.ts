// The S3 target against moto over real HTTP: multipart upload with If-None-Match, restore with
// ListObjectsV2, a refused overwrite (412) handled without loss, and faults injected by a
// small HTTP proxy in front of moto (5xx answers, connections cut mid-upload).
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { awsClients } from '../../provision/exec/aws.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { dateOfSnapshotId } from '../../contract/disk-layout.ts';
import { offsitePhase } from '../../runtime/offsite/phase.ts';
import { main as pullvault } from '../../runtime/cli.ts';
import { openTarget } from '../../runtime/offsite/open-target.ts';
import { ObjectExistsError } from '../../runtime/offsite/target.ts';
import { readUploads, uploadsFile } from '../../runtime/offsite/uploads.ts';
import { startMoto, MOTO_CREDENTIALS, type Moto } from '../lab/moto.ts';
import { genKey, makeSnapshot, treeSignature, type TestKey } from './offsite-fixture.ts';

const root = process.getuid?.() === 0;
const BUCKET = 'pv-offsite-test';
const PREFIX = 'pi01/';
const REGION = 'eu-central-1';

/** Fault injector in front of moto: answers 500 or cuts the connection for matching requests. */
class FaultProxy {
  server!: Server;
  port = 0;
  /** decides per request: 'pass' | 'fail' (HTTP 500) | 'cut' (socket destroyed mid-request) */
  rule: (method: string, url: string, n: number) => 'pass' | 'fail' | 'cut' = () => 'pass';
  counts = { pass: 0, fail: 0, cut: 0 };
  private n = 0;
  constructor(private readonly upstream: number) {}
  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const what = this.rule(req.method ?? '', req.url ?? '', this.n++);
      this.counts[what]++;
      if (what === 'cut') {
        // read a little of the body, then drop the connection: a store that stops mid-upload
        req.once('data', () => req.socket.destroy());
        req.once('end', () => req.socket.destroy());
        return;
      }
      if (what === 'fail') {
        req.resume();
        req.on('end', () => {
          res.writeHead(500, { 'content-type': 'application/xml' });
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected fault</Message></Error>');
        });
        return;
      }
      const up = request({ host: '127.0.0.1', port: this.upstream, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }
  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

let work: string;
let moto: Moto;
let proxy: FaultProxy;
let s3: S3Client;
let owner: TestKey;
let escrow: TestKey;
let data: string;
let src: string;
let config: RuntimeConfig;
const IDS = ['20240201T020000Z', '20240202T020000Z', '20240203T020000Z', '20240204T020000Z'];
const snaps: string[] = [];

function cfg(endpoint: string): RuntimeConfig {
  const credFile = join(work, `writer-${endpoint.split(':').pop()}.json`);
  writeFileSync(credFile, JSON.stringify({ ...MOTO_CREDENTIALS, userName: 'writer', region: REGION, bucket: BUCKET, prefix: PREFIX, endpoint }), { mode: 0o600 });
  return {
    ...config,
    paths: { ...config.paths, awsCredentialsFile: credFile },
    inventory: { ...config.inventory, offsite: { type: 's3', bucket: BUCKET, region: REGION, prefix: PREFIX, storageClass: 'STANDARD_IA', retentionDays: { full: 90, incremental: 60 }, endpoint } },
  } as RuntimeConfig;
}

async function keys(): Promise<string[]> {
  const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: PREFIX }));
  return (r.Contents ?? []).map((o) => o.Key!);
}

async function quietly<T>(f: () => Promise<T>) {
  let out = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c) => ((out += String(c)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((out += String(c)), true));
  try {
    return { value: await f(), out };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

const now = (i: number) => new Date(dateOfSnapshotId(IDS[i]).getTime() + 60_000);

describe.skipIf(!root)('offsite: S3 target (moto) with faults', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'pv-offsite-s3-'));
    data = join(work, 'data');
    src = join(work, 'server');
    mkdirSync(join(src, 'home/alice'), { recursive: true });
    // 12 MB of incompressible data: a multipart upload with 5 MB parts
    writeFileSync(join(src, 'home/alice/big.bin'), randomBytes(12 << 20));
    writeFileSync(join(src, 'home/alice/notes.txt'), 'notes\n');
    [moto, owner, escrow] = await Promise.all([startMoto(), genKey(work, 'owner'), genKey(work, 'escrow')]);
    proxy = new FaultProxy(moto.port);
    await proxy.start();
    s3 = awsClients({ region: REGION, endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS }).s3;
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET, CreateBucketConfiguration: { LocationConstraint: REGION } }));
    config = {
      version: 1,
      paths: { dataDir: data, recipientKeysDir: work, sshKeyFile: '/nonexistent', knownHostsFile: '/nonexistent' },
      inventory: {
        recipients: [
          { name: 'owner', publicKeyFile: owner.publicFile, fingerprint: owner.fingerprint },
          { name: 'escrow', publicKeyFile: escrow.publicFile, fingerprint: escrow.fingerprint },
        ],
        schedule: { pull: '0 * * * *', offsite: { fullEveryDays: 30, incrementalEveryDays: 1 } },
      },
    } as unknown as RuntimeConfig;
  });
  afterAll(async () => {
    await proxy?.stop();
    await moto?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('uploads a full (multipart, write-once) and restores it through ListObjectsV2', async () => {
    snaps[0] = makeSnapshot(data, 'web1', IDS[0], src);
    const c = cfg(moto.endpoint);
    const target = openTarget(c.inventory.offsite, { ...MOTO_CREDENTIALS }, { partSize: 5 << 20 });
    const r = await offsitePhase(c, [{ server: 'web1', snapshotDir: snaps[0], id: IDS[0], ok: true }], { log: () => {}, now: now(0), target });
    expect(r[0]).toMatchObject({ kind: 'full' });
    const rec = (await readUploads(uploadsFile(data)))[0];
    expect(rec.bytes).toBeGreaterThan(12 << 20);
    expect(rec.etag).toMatch(/-3$/); // three parts
    expect(await keys()).toEqual(expect.arrayContaining([rec.key, rec.manifestKey]));

    const creds = join(work, 'reader.json');
    writeFileSync(creds, JSON.stringify(MOTO_CREDENTIALS));
    const to = join(work, 'restore-0');
    const res = await quietly(() =>
      pullvault(['restore', '--target', `s3://${BUCKET}/${PREFIX}`, '--region', REGION, '--endpoint', moto.endpoint, '--credentials', creds, '--server', 'web1', '--to', to, '--gpg-homedir', escrow.homedir]),
    );
    expect(res.value, res.out).toBe(0);
    expect(treeSignature(join(to, 'files'))).toEqual(treeSignature(join(snaps[0], 'files')));
  });

  it('a second upload to an existing key is refused (412), for single and multipart puts, and the object is kept', async () => {
    const rec = (await readUploads(uploadsFile(data)))[0];
    const target = openTarget(cfg(moto.endpoint).inventory.offsite, { ...MOTO_CREDENTIALS }, { partSize: 5 << 20 });
    await expect(target.put(rec.key, Readable.from([Buffer.from('overwrite attempt')]))).rejects.toBeInstanceOf(ObjectExistsError);
    await expect(target.put(rec.key, Readable.from([randomBytes(11 << 20)]))).rejects.toBeInstanceOf(ObjectExistsError);
    const body = await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: rec.key }))).Body!.transformToByteArray();
    expect(body.length).toBe(rec.bytes);
    const { createHash } = await import('node:crypto');
    expect(createHash('sha256').update(body).digest('hex')).toBe(rec.sha256);

    // the phase meets a taken key: it retries under a fresh one, the existing object is untouched
    writeFileSync(join(src, 'home/alice/notes.txt'), 'notes, day two\n');
    snaps[1] = makeSnapshot(data, 'web1', IDS[1], src);
    const taken = `${PREFIX}incr/web1/${rec.chainId}/${IDS[1]}.from-${IDS[0]}.aaaa0001.tar.zst.gpg`;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: taken, Body: 'precious' }));
    const tags = ['aaaa0001', 'bbbb0002'];
    const lines: string[] = [];
    const r = await offsitePhase(cfg(moto.endpoint), [{ server: 'web1', snapshotDir: snaps[1], id: IDS[1], ok: true }], { log: (l) => lines.push(l), now: now(1), newTag: () => tags.shift()!, backoffMs: 10 });
    expect(r[0], lines.join('\n')).toMatchObject({ kind: 'incremental' });
    expect(r[0].key).toContain('.bbbb0002.');
    expect(lines.join('\n')).toMatch(/already exists \(the store refused to overwrite it\); retrying under a new key/);
    expect(await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: taken }))).Body!.transformToString()).toBe('precious');
  });

  it('retries through injected 5xx errors; an upload that keeps failing is not recorded and is sent again next run', async () => {
    const c = cfg(`http://127.0.0.1:${proxy.port}`);
    const target = () => openTarget(c.inventory.offsite, { ...MOTO_CREDENTIALS }, { partSize: 5 << 20 });
    // every second part upload answers 500: the SDK's retries get through
    writeFileSync(join(src, 'home/alice/more.bin'), randomBytes(11 << 20));
    snaps[2] = makeSnapshot(data, 'web1', IDS[2], src);
    proxy.rule = (m, url, n) => (m === 'PUT' && url.includes('partNumber=') && n % 2 === 0 ? 'fail' : 'pass');
    const lines: string[] = [];
    const r = await offsitePhase(c, [{ server: 'web1', snapshotDir: snaps[2], id: IDS[2], ok: true }], { log: (l) => lines.push(l), now: now(2), target: target(), backoffMs: 10 });
    expect(r[0], lines.join('\n')).toMatchObject({ kind: 'incremental' });
    expect(proxy.counts.fail).toBeGreaterThan(0);
    const before = (await readUploads(uploadsFile(data))).length;

    // the store goes away mid-upload (connections cut after the first part): all attempts fail
    writeFileSync(join(src, 'home/alice/more.bin'), randomBytes(11 << 20));
    snaps[3] = makeSnapshot(data, 'web1', IDS[3], src);
    let parts = 0;
    proxy.rule = (m, url) => (m === 'PUT' && url.includes('partNumber=') && ++parts > 1 ? 'cut' : m === 'POST' && url.includes('uploadId=') ? 'cut' : 'pass');
    const keysBefore = await keys();
    const failed = await offsitePhase(c, [{ server: 'web1', snapshotDir: snaps[3], id: IDS[3], ok: true }], { log: (l) => lines.push(l), now: now(3), target: target(), attempts: 2, backoffMs: 10 });
    expect(failed[0].error, lines.join('\n')).toMatch(/not uploaded after 2 attempts/);
    expect(proxy.counts.cut).toBeGreaterThan(0);
    expect((await readUploads(uploadsFile(data))).length).toBe(before);
    expect((await keys()).filter((k) => !keysBefore.includes(k))).toEqual([]); // no half object

    // next run (the store is back): sent again, under a fresh key
    proxy.rule = () => 'pass';
    const again = await offsitePhase(c, [{ server: 'web1', snapshotDir: snaps[3], id: IDS[3], ok: true }], { log: (l) => lines.push(l), now: new Date(now(3).getTime() + 3_600_000), target: target(), backoffMs: 10 });
    expect(again[0], lines.join('\n')).toMatchObject({ kind: 'incremental' });
    const recs = await readUploads(uploadsFile(data));
    expect(recs.length).toBe(before + 1);
    expect(recs.at(-1)!.snapshot).toBe(IDS[3]);

    const creds = join(work, 'reader.json');
    const to = join(work, 'restore-3');
    const res = await quietly(() =>
      pullvault(['restore', '--target', `s3://${BUCKET}/${PREFIX}`, '--region', REGION, '--endpoint', moto.endpoint, '--credentials', creds, '--server', 'web1', '--to', to, '--key', owner.secretFile]),
    );
    expect(res.value, res.out).toBe(0);
    expect(treeSignature(join(to, 'files'))).toEqual(treeSignature(join(snaps[3], 'files')));
  });
});
