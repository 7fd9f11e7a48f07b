// The S3 client against a store that goes silent: real SDK requests over real HTTP to a local
// server that accepts connections and then says nothing (what a stopped or wedged endpoint
// looks like: the kernel still completes the TCP handshake), or stops in the middle of a
// response body. Every call must fail after the idle timeout and its bounded retries — never hang.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { offsitePhase } from '../../runtime/offsite/phase.ts';
import { openTarget } from '../../runtime/offsite/open-target.ts';
import type { Target } from '../../runtime/offsite/target.ts';
import { uploadsFile } from '../../runtime/offsite/uploads.ts';
import { genKey, makeSnapshot } from './offsite-fixture.ts';

/** A TCP server with a per-connection behaviour; counts the requests it saw. */
class SilentStore {
  server!: Server;
  port = 0;
  requests: string[] = [];
  private sockets = new Set<Socket>();
  /**
   * 'silent': read everything, answer nothing; 'stall-body': headers and part of a body, then
   * nothing; 'start-multipart': answer CreateMultipartUpload, then nothing (a store that stops mid-upload)
   */
  mode: 'silent' | 'stall-body' | 'start-multipart' = 'silent';
  async start(): Promise<void> {
    this.server = createServer((sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => undefined);
      let head = '';
      sock.on('data', (d: Buffer) => {
        if (head.includes('\r\n\r\n')) return;
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        this.requests.push(head.split('\r\n')[0]);
        const line = head.split('\r\n')[0];
        if (this.mode === 'start-multipart' && /^POST \S+\?uploads/.test(line)) {
          const [bucket, ...key] = line.split(' ')[1].split('?')[0].slice(1).split('/');
          const xml = `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>${bucket}</Bucket><Key>${key.join('/')}</Key><UploadId>upload-1</UploadId></InitiateMultipartUploadResult>`;
          sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ncontent-length: ${Buffer.byteLength(xml)}\r\n\r\n${xml}`);
          head = '';
        }
        if (this.mode === 'stall-body') sock.write('HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n' + 'x'.repeat(1000));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }
  get openSockets(): number {
    return this.sockets.size;
  }
  get openPorts(): number[] {
    return [...this.sockets].map((s) => s.remotePort ?? 0);
  }
  stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const spec = (port: number) =>
  ({ type: 's3', bucket: 'silent-bucket', prefix: 'pi/', region: 'eu-central-1', retentionDays: { full: 1, incremental: 1 }, endpoint: `http://127.0.0.1:${port}` }) as const;
const creds = { accessKeyId: 'AKIDSILENTSTORE00000', secretAccessKey: 'not-a-secret' };

let store: SilentStore;
let target: Target;

beforeAll(async () => {
  store = new SilentStore();
  await store.start();
  target = openTarget(spec(store.port), creds, { timeouts: { connectMs: 1000, idleMs: 1500, maxAttempts: 2 } });
});
afterAll(async () => {
  target?.close();
  await store?.stop();
});

describe('offsite: S3 calls against a silent store end', () => {
  it('a small put (one PutObject) fails with a socket timeout after its attempts', async () => {
    store.mode = 'silent';
    store.requests = [];
    await expect(target.put('pi/full/a/obj', Readable.from([Buffer.from('hello')]))).rejects.toThrow(/timed out|TimeoutError/i);
    expect(store.requests.filter((r) => r.startsWith('PUT /silent-bucket/pi/full/a/obj'))).toHaveLength(2);
  });

  it('a multipart put fails too (CreateMultipartUpload never answered); nothing is reported stored', async () => {
    store.mode = 'silent';
    store.requests = [];
    const big = Readable.from([Buffer.alloc(6 << 20, 1), Buffer.alloc(6 << 20, 2)]);
    const t = openTarget(spec(store.port), creds, { partSize: 5 << 20, timeouts: { idleMs: 1500, maxAttempts: 2 } });
    try {
      await expect(t.put('pi/full/a/big', big)).rejects.toThrow(/timed out|TimeoutError/i);
    } finally {
      t.close();
    }
    expect(store.requests.some((r) => r.startsWith('POST /silent-bucket/pi/full/a/big?uploads'))).toBe(true);
  });

  it('list fails after its attempts', async () => {
    store.mode = 'silent';
    store.requests = [];
    await expect(target.list('pi/full/')).rejects.toThrow(/timed out|TimeoutError/i);
    expect(store.requests.filter((r) => r.startsWith('GET /silent-bucket'))).toHaveLength(2);
  });

  it('a download whose body stops mid-way errors the stream (restore and verify do not hang)', async () => {
    store.mode = 'stall-body';
    store.requests = [];
    const body = await target.get('pi/full/a/obj');
    let got = 0;
    const read = (async () => {
      for await (const c of body) got += (c as Buffer).length;
    })();
    await expect(read).rejects.toThrow(/timed out|aborted|TimeoutError/i);
    expect(got).toBe(1000);
  });

  it('an aborted put rejects with the abort reason at once, even with a long idle timeout', async () => {
    store.mode = 'silent';
    store.requests = [];
    const t = openTarget(spec(store.port), creds, { timeouts: { idleMs: 600_000, maxAttempts: 4 } });
    const ac = new AbortController();
    try {
      const put = t.put('pi/full/a/deadline', Readable.from([Buffer.from('x'.repeat(1000))]), undefined, ac.signal);
      while (!store.requests.length) await new Promise((r) => setTimeout(r, 20));
      ac.abort(new Error('offsite deadline passed'));
      await expect(put).rejects.toThrow('offsite deadline passed');
    } finally {
      t.close();
    }
    // closed: nothing more is sent
    await expect(t.list('pi/')).rejects.toThrow(/closed; request not sent/);
  });
});

describe('offsite phase: the total deadline', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'pv-offsite-deadline-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('against a store that stops mid-upload the phase ends at its deadline: every server failed with the reason, nothing recorded, no connection left', async () => {
    store.mode = 'start-multipart';
    store.requests = [];
    const data = join(work, 'data');
    const src = join(work, 'src');
    mkdirSync(src);
    // more than one 16 MiB part: a multipart upload, which lib-storage tries to abort on the silent store
    writeFileSync(join(src, 'f.bin'), randomBytes(17 << 20));
    const [owner, escrow] = [genKey(work, 'owner'), genKey(work, 'escrow')];
    const id = '20240301T020000Z';
    const dirs = ['alpha', 'beta'].map((s) => makeSnapshot(data, s, id, src));
    const credFile = join(work, 'writer.json');
    writeFileSync(credFile, JSON.stringify(creds), { mode: 0o600 });
    const config = {
      version: 1,
      paths: { dataDir: data, recipientKeysDir: work, sshKeyFile: '/nonexistent', knownHostsFile: '/nonexistent', awsCredentialsFile: credFile },
      inventory: {
        offsite: spec(store.port),
        recipients: [
          { name: 'owner', publicKeyFile: owner.publicFile, fingerprint: owner.fingerprint },
          { name: 'escrow', publicKeyFile: escrow.publicFile, fingerprint: escrow.fingerprint },
        ],
        // socket idle timeout 60 s by default: the deadline comes first
        schedule: { pull: '0 * * * *', offsite: { fullEveryDays: 30, deadlineMinutes: 0.05 } },
      },
    } as unknown as RuntimeConfig;
    const lines: string[] = [];
    const r = await offsitePhase(config, dirs.map((d, i) => ({ server: ['alpha', 'beta'][i], snapshotDir: d, id, ok: true })), { log: (l) => lines.push(l), attempts: 3, backoffMs: 10 });
    expect(store.requests.some((q) => /^POST \/silent-bucket\/pi\/full\/alpha\/\S+\?uploads/.test(q))).toBe(true);
    expect(store.requests.some((q) => /^PUT \/silent-bucket\/pi\/full\/alpha\/\S+partNumber=1/.test(q))).toBe(true);
    expect(r.map((x) => [x.server, x.kind])).toEqual([['alpha', 'skipped'], ['beta', 'skipped']]);
    expect(r[0].error).toMatch(/^the offsite deadline \(3 s, schedule\.offsite\.deadlineMinutes\) passed/);
    expect(r[1].error).toMatch(/^not started: the offsite deadline/);
    // one attempt only: no retry after the deadline
    expect(lines.filter((l) => l.includes('attempt'))).toEqual([]);
    expect(existsSync(uploadsFile(data))).toBe(false);
    // nothing of the phase is left talking to the store (it would keep the run alive)
    for (let i = 0; store.openSockets > 0; i++) {
      if (i > 100) throw new Error(`${store.openSockets} connection(s) to the store still open after the phase returned (${store.openPorts.join(', ')}): ${store.requests.join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });
});
