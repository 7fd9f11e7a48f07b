// The cases every kind of offsite store passes, through the registry as the runtime uses it:
// its spec checked against its schema fragment, its --target form parsed; put once (an
// overwrite refused and the first object intact, small or multi-part); list sorted, by
// prefix, across pages; get streams the very bytes; a missing object and a bad key are clear
// errors; an aborted put returns at once and stores nothing; a store that never answers costs
// its timeout, not the run. A kind's test supplies a harness with a real store behind it.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TSchema } from '@sinclair/typebox';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { openTarget, parseTargetArg } from '../../runtime/offsite/open-target.ts';
import { MissingObjectError, ObjectExistsError, type CredentialsFile, type OffsiteTargetKind, type Target, type TargetTuning } from '../../runtime/offsite/target.ts';

type AnyKind = OffsiteTargetKind<never>;
type Spec = { type: string };

export interface TargetHarness {
  kind: OffsiteTargetKind<never> | OffsiteTargetKind<Spec>;
  /** its schema fragment: its member of the inventory's offsite union */
  schema: TSchema;
  /** a spec for a fresh, empty store (each call a new one) */
  spec(): Promise<Spec> | Spec;
  creds?: CredentialsFile;
  /** the list page size is set small, to make list cross pages where the kind has them */
  tuning?: TargetTuning;
  /** a spec of this kind its schema must refuse, and the field the error names */
  badSpec: { spec: unknown; field: string };
  /** a --target string for this kind, and what it parses to */
  arg: { text: string; spec: Partial<Spec> };
  /** object size that takes the kind's multi-part path (S3: more than one part) */
  largeBytes: number;
  /** a spec whose store accepts connections and never answers (network kinds) */
  silentSpec?(endpoint: string): Spec;
  close?(): Promise<void>;
}

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (a: Ajv2020) => void;
const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function readAll(r: Readable): Promise<{ data: Buffer; chunks: number }> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return { data: Buffer.concat(parts), chunks: parts.length };
}

/** A body in pieces of uneven size, as an archive pipeline yields it. */
function body(data: Buffer): Readable {
  const parts: Buffer[] = [];
  for (let o = 0, i = 0; o < data.length; i++) {
    const n = [1, 4096, 65536, 1 << 20, 777][i % 5];
    parts.push(data.subarray(o, o + n));
    o += n;
  }
  return Readable.from(parts);
}

/** A body that sends a little, then nothing, forever. */
function stalledBody(): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) this.push(randomBytes(1024));
      sent = true;
    },
  });
}

export function offsiteTargetConformance(name: string, setup: () => Promise<TargetHarness> | TargetHarness): void {
  describe(`OffsiteTarget conformance: ${name}`, () => {
    let h: TargetHarness;
    const kinds = () => [h.kind as AnyKind];
    const open = async (): Promise<Target> => openTarget((await h.spec()) as never, h.creds, h.tuning ?? {}, kinds());
    beforeAll(async () => {
      h = await setup();
    });
    afterAll(() => h?.close?.());

    it('its schema fragment accepts its specs and refuses a bad one; the registry opens it and parses its --target form', async () => {
      const valid = ajv.compile(h.schema);
      const spec = await h.spec();
      expect(valid(spec), JSON.stringify(valid.errors)).toBe(true);
      expect(valid(h.badSpec.spec)).toBe(false);
      expect(valid.errors?.map((e) => e.instancePath)).toContain(`/${h.badSpec.field}`);
      expect(valid({ ...spec, unknownField: 1 })).toBe(false);
      const t = openTarget(spec as never, h.creds, h.tuning ?? {}, kinds());
      expect(t.label).toMatch(new RegExp(`^${h.kind.type}:`));
      t.close();
      expect(() => openTarget({ type: 'no-such-kind' } as never, undefined, {}, kinds())).toThrow(/unknown kind of store "no-such-kind"/);
      expect(parseTargetArg(h.arg.text, undefined, undefined, kinds())).toMatchObject({ type: h.kind.type, ...h.arg.spec });
      expect(() => parseTargetArg('ftp://x/', undefined, undefined, kinds())).toThrow(new RegExp(`expected ${h.kind.argForm.replace(/[/.]/g, '\\$&')}`));
    });

    it('put stores the bytes once: the hash and size of what it stored; an overwrite is refused and the first object stays', async () => {
      const t = await open();
      try {
        const first = randomBytes(70_000);
        let progress = 0;
        const r = await t.put(`${t.prefix}once/a`, body(first), (n) => (progress = n));
        expect(r).toMatchObject({ key: `${t.prefix}once/a`, bytes: first.length, sha256: sha(first) });
        expect(progress).toBe(first.length);
        await expect(t.put(`${t.prefix}once/a`, body(randomBytes(10)))).rejects.toBeInstanceOf(ObjectExistsError);
        expect((await readAll(await t.get(`${t.prefix}once/a`))).data.equals(first)).toBe(true);
        // the multi-part path too (S3: If-None-Match on CompleteMultipartUpload)
        const big = randomBytes(h.largeBytes);
        expect((await t.put(`${t.prefix}once/big`, body(big))).sha256).toBe(sha(big));
        const err = await t.put(`${t.prefix}once/big`, body(randomBytes(h.largeBytes))).catch((e) => e);
        expect(err).toBeInstanceOf(ObjectExistsError);
        expect((err as Error).message).toContain(`${t.prefix}once/big`);
        expect(sha((await readAll(await t.get(`${t.prefix}once/big`))).data)).toBe(sha(big));
        expect((await t.list(`${t.prefix}once/`)).map((o) => o.key)).toEqual([`${t.prefix}once/a`, `${t.prefix}once/big`]);
      } finally {
        t.close();
      }
    });

    it('list: sorted, by prefix (a prefix is a string prefix, not a folder), with sizes, across pages', async () => {
      const t = await open();
      try {
        const keys = ['b/5', 'a/2', 'ab/4', 'a/b/3', 'a/1', 'a/b/c/6', 'a/7'];
        for (const [i, k] of keys.entries()) await t.put(`${t.prefix}${k}`, body(Buffer.alloc(i + 1, i)));
        const p = (ks: string[]) => ks.map((k) => `${t.prefix}${k}`);
        expect((await t.list(t.prefix)).map((o) => o.key)).toEqual(p(['a/1', 'a/2', 'a/7', 'a/b/3', 'a/b/c/6', 'ab/4', 'b/5']));
        expect((await t.list(`${t.prefix}a/`)).map((o) => o.key)).toEqual(p(['a/1', 'a/2', 'a/7', 'a/b/3', 'a/b/c/6']));
        expect((await t.list(`${t.prefix}a`)).map((o) => o.key)).toEqual(p(['a/1', 'a/2', 'a/7', 'a/b/3', 'a/b/c/6', 'ab/4']));
        expect((await t.list(`${t.prefix}a/b/`)).map((o) => o.key)).toEqual(p(['a/b/3', 'a/b/c/6']));
        expect(await t.list(`${t.prefix}zzz/`)).toEqual([]);
        expect((await t.list(`${t.prefix}b/`))[0]).toMatchObject({ key: `${t.prefix}b/5`, size: 1 });
      } finally {
        t.close();
      }
    });

    it('get streams the stored bytes in pieces; a missing object is a MissingObjectError naming key and store', async () => {
      const t = await open();
      try {
        const data = randomBytes(3 << 20);
        await t.put(`${t.prefix}get/x`, body(data));
        const got = await readAll(await t.get(`${t.prefix}get/x`));
        expect(got.data.equals(data)).toBe(true);
        expect(got.chunks).toBeGreaterThan(1);
        const miss = await t.get(`${t.prefix}get/nope`).catch((e) => e);
        expect(miss).toBeInstanceOf(MissingObjectError);
        expect((miss as Error).message).toBe(`${t.label}: object ${t.prefix}get/nope is missing`);
      } finally {
        t.close();
      }
    });

    it('a bad key is refused before anything is written', async () => {
      const t = await open();
      try {
        for (const k of ['/abs', `${t.prefix}a//b`, `${t.prefix}../x`, `${t.prefix}a/./b`, `${t.prefix}a/`]) await expect(t.put(k, body(Buffer.from('x'))), k).rejects.toThrow(/bad object key/);
        expect(await t.list(t.prefix)).toEqual([]);
      } finally {
        t.close();
      }
    });

    it('an aborted put rejects at once with the reason and stores nothing; the key is free afterwards', async () => {
      const t = await open();
      try {
        const ac = new AbortController();
        const why = new Error('deadline');
        setTimeout(() => ac.abort(why), 300);
        const t0 = Date.now();
        await expect(t.put(`${t.prefix}abort/k`, stalledBody(), undefined, ac.signal)).rejects.toBe(why);
        expect(Date.now() - t0).toBeLessThan(3000);
        expect(await t.list(`${t.prefix}abort/`)).toEqual([]);
        await t.put(`${t.prefix}abort/k`, body(Buffer.from('after')));
        expect((await readAll(await t.get(`${t.prefix}abort/k`))).data.toString()).toBe('after');
        // an already aborted signal: nothing starts
        await expect(t.put(`${t.prefix}abort/j`, body(Buffer.from('x')), undefined, AbortSignal.abort(why))).rejects.toBe(why);
      } finally {
        t.close();
      }
    });

    it('a store that accepts connections and never answers costs its timeout, then a clear error', async (ctx) => {
      if (!h.silentSpec) return ctx.skip(); // local kinds have no network to go silent
      const sockets = new Set<Socket>();
      const silent: Server = createServer((s) => (sockets.add(s), s.on('error', () => {})));
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
      const endpoint = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
      const t = openTarget(h.silentSpec(endpoint) as never, h.creds, { ...h.tuning, timeouts: { connectMs: 1000, idleMs: 800, maxAttempts: 2 } }, kinds());
      try {
        const t0 = Date.now();
        await expect(t.list(t.prefix)).rejects.toThrow();
        await expect(t.get(`${t.prefix}x`)).rejects.toThrow();
        expect(Date.now() - t0).toBeLessThan(15_000);
      } finally {
        t.close();
        for (const s of sockets) s.destroy();
        await new Promise((r) => silent.close(r));
      }
    });
  });
}
