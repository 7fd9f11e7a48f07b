// The DbEngine registry drives everything an engine adds: each registered engine has its admin
// half, its dispatcher section and a conformance fixture; its inventory property validates its
// sample; its dumps land under dumps/<engine>/ through its own verbs; and the dispatcher rendered
// from the registry answers each verb in that engine's section (refusing while the server leaves
// the engine off, and refusing hostile arguments when it is on) — run locally with sh.
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { DB_ENGINES } from '../../contract/db-engines.ts';
import type { DbEngineSpec } from '../../contract/db-engine.ts';
import { DISPATCH_REFUSED_EXIT, DISPATCH_VERBS, dispatchCommand } from '../../contract/dispatch-protocol.ts';
import { Server, type ServerSpec } from '../../contract/inventory-schema.ts';
import { schemaAjv } from '../../contract/json-schema.ts';
import { ADMIN_DB_ENGINES } from '../../provision/server/engines/index.ts';
import { renderDispatcher, type ServerTemplates } from '../../provision/server/render.ts';
import { loadServerTemplates } from '../../provision/server.ts';
import { DB_ENGINE_FIXTURES } from '../conformance/db-engines/index.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMnrFkJQ2xUcELSoX2wVt0gzJWvS6t+kUOOqU+rcFQ1R';
const server = (databases: Record<string, unknown> | undefined): ServerSpec =>
  ({ name: 'web1', ssh: { host: 'web1.example.net', hostKey: KEY }, paths: [{ path: '/srv' }], ...(databases ? { databases } : {}) }) as ServerSpec;

let templates: ServerTemplates;
beforeAll(async () => {
  templates = await loadServerTemplates();
});

/** The rendered dispatcher run as sshd would run it, with the command in SSH_ORIGINAL_COMMAND (no database client is called for a refusal). */
function dispatch(script: string, command: string) {
  const r = spawnSync('sh', ['-c', script, 'pullvault-dispatch'], { env: { SSH_ORIGINAL_COMMAND: command, PATH: process.env.PATH }, encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const argFor = (v: (typeof DISPATCH_VERBS)[number], sample: unknown): string | undefined => (v.arg === 'none' ? undefined : (sample as string[])[0]);

describe('the registry', () => {
  it('has an admin half, a fixture and an inventory property for every engine, in one order', () => {
    expect(ADMIN_DB_ENGINES.map((e) => e.name)).toEqual(DB_ENGINES.map((e) => e.name));
    expect(Object.keys(DB_ENGINE_FIXTURES).sort()).toEqual(DB_ENGINES.map((e) => e.name).sort());
    const props = Object.keys((Server.properties.databases as unknown as { properties: Record<string, unknown> }).properties);
    expect(props).toEqual(DB_ENGINES.map((e) => e.name));
  });

  it('the protocol table is every engine\'s verbs, each named once', () => {
    expect(DISPATCH_VERBS.map((v) => v.verb)).toEqual(DB_ENGINES.flatMap((e) => e.verbs.map((v) => v.verb)));
    expect(new Set(DISPATCH_VERBS.map((v) => v.verb)).size).toBe(DISPATCH_VERBS.length);
  });
});

describe.each(DB_ENGINES.map((e) => [e.name, e as DbEngineSpec] as const))('engine %s', (name, engine) => {
  const fx = DB_ENGINE_FIXTURES[name];

  it('its sample is a valid inventory selection, and junk is not (the validator the inventory is checked with)', () => {
    const ajv = schemaAjv();
    const selection = ajv.compile(engine.selection);
    expect(selection(fx.sample)).toBe(true);
    expect(ajv.compile(Server)(server({ [name]: fx.sample }))).toBe(true);
    expect(selection([])).toBe(false);
    expect(selection(['a b; rm -rf /'])).toBe(false);
  });

  it('dumps under dumps/<engine>/ through its own verbs, with command lines the dispatcher accepts', () => {
    const listed = engine.needsList(fx.sample) ? ['one', 'two'] : [];
    const jobs = engine.dumps(fx.sample, listed);
    expect(jobs.length).toBeGreaterThan(0);
    for (const j of jobs) {
      expect(j.file.startsWith(`dumps/${name}/`), j.file).toBe(true);
      expect(engine.verbs.map((v) => v.verb)).toContain(j.verb);
      expect(dispatchCommand(j.verb, j.arg)).toBe(j.arg === undefined ? j.verb : `${j.verb} ${j.arg}`);
      expect(engine.dumpFile(j.name, j.name === 'globals' && !j.arg ? 'globals' : 'database')).toBe(j.file);
    }
    expect(new Set(jobs.map((j) => j.file)).size).toBe(jobs.length);
  });

  it('refuses hostile arguments before they are sent', () => {
    for (const v of engine.verbs.filter((x) => x.arg !== 'none'))
      for (const bad of ['x;id', '../../etc/shadow', 'a b', '$(id)', '*', `/${'x'.repeat(5000)}`]) expect(() => dispatchCommand(v.verb, bad), `${v.verb} ${bad}`).toThrow();
  });

  it('its dispatcher section refuses each verb while the server leaves the engine off', () => {
    const script = renderDispatcher(templates, server(undefined));
    expect(spawnSync('sh', ['-n'], { input: script }).status).toBe(0);
    for (const v of engine.verbs) {
      const arg = argFor(v, fx.sample);
      const r = dispatch(script, arg === undefined ? v.verb : `${v.verb} ${arg}`);
      expect(r.code, v.verb).toBe(DISPATCH_REFUSED_EXIT);
      expect(r.stderr, v.verb).toMatch(new RegExp(`^pullvault-dispatch: refused: ${name} dumps are not enabled on this server\\n$`));
      expect(r.stdout).toBe('');
    }
  });

  it('its dispatcher section refuses what the server does not list, and junk, when the engine is on', () => {
    const script = renderDispatcher(templates, server({ [name]: fx.sample }));
    for (const v of engine.verbs.filter((x) => x.arg !== 'none')) {
      const other = v.arg === 'file' ? '/srv/other.db' : 'other';
      for (const [arg, why] of [
        [other, new RegExp(`not in this server's ${name} list`)],
        ['x;id', /must match|must be an absolute path/],
        ['', /not an allowed command|must|absolute/],
      ] as const) {
        const r = dispatch(script, `${v.verb} ${arg}`.trimEnd());
        expect(r.code, `${v.verb} ${arg}`).toBe(DISPATCH_REFUSED_EXIT);
        expect(r.stderr, `${v.verb} ${arg}`).toMatch(why);
      }
    }
  });
});
