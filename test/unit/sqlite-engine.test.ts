// The SQLite engine's pure rules (which files a server may name, the verb's command line, the
// snapshot file name, the plan's problems) and its dispatcher verb run locally with sh against a
// temp dir: a configured file comes out as a consistent copy, anything else is refused.
import { mkdtemp, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerSpec } from '../../contract/inventory-schema.ts';
import { DISPATCH_REFUSED_EXIT, dispatchCommand } from '../../contract/dispatch-protocol.ts';
import { dumpFile } from '../../contract/disk-layout.ts';
import { sqlitePathProblem } from '../../contract/db-engines/sqlite.ts';
import { sqliteListValue, sqliteProblems } from '../../provision/server/engines/sqlite.ts';
import { loadServerTemplates } from '../../provision/server.ts';
import { renderDispatcher } from '../../provision/server/render.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMnrFkJQ2xUcELSoX2wVt0gzJWvS6t+kUOOqU+rcFQ1R';
const server = (sqlite: string[] | undefined, root = '/srv'): ServerSpec => ({
  name: 'web1',
  ssh: { host: 'web1.example.net', hostKey: KEY },
  paths: [{ path: root }],
  ...(sqlite ? { databases: { sqlite } } : {}),
});

describe('which files a server may name', () => {
  it.each([
    ['/srv/app/data.db', null],
    ['/var/lib/gitea/data/gitea.db', null],
    ['/srv/home-assistant/home-assistant_v2.db', null],
    ['srv/app/data.db', /absolute/],
    ['/srv/app/../etc/shadow', /\.\. components/],
    ['/srv/./app/data.db', /\. or \.\. components/],
    ['/srv/app/*.db', /only the characters/],
    ['/srv/app/data[0].db', /only the characters/],
    ['/srv/my app/data.db', /only the characters/],
    ["/srv/app/it's.db", /only the characters/],
    ['/srv/app/data.db;id', /only the characters/],
    ['/srv/app/', /must name a file/],
    ['/srv//app.db', /must name a file/],
    ['/srv/app/data.db-wal', /side file/],
    [`/${'x'.repeat(4095)}`, /longer than 4095/],
  ])('%j → %s', (p, why) => {
    const got = sqlitePathProblem(p);
    if (why === null) expect(got).toBeNull();
    else expect(got).toMatch(why);
  });

  it('names each bad file of the inventory by its field, and renders the good ones', () => {
    expect(sqliteProblems(server(['/srv/ok.db', '/srv/a/../b.db']), 2)).toEqual(['servers[2].databases.sqlite[1]: "/srv/a/../b.db" must not contain . or .. components']);
    expect(sqliteListValue(['/srv/a.db', '/srv/b.db', '/srv/a.db'])).toBe('/srv/a.db /srv/b.db');
    expect(sqliteListValue(undefined)).toBe('');
    expect(() => sqliteListValue(['/srv/a b.db'])).toThrow(/only the characters/);
  });

  it('builds only commands the dispatcher accepts, and keeps the server path in the snapshot', () => {
    expect(dispatchCommand('sqlite-dump', '/srv/app/data.db')).toBe('sqlite-dump /srv/app/data.db');
    expect(() => dispatchCommand('sqlite-dump')).toThrow(/needs a database file/);
    expect(() => dispatchCommand('sqlite-dump', '/srv/../etc/shadow')).toThrow(/^sqlite-dump: database file .* must not contain/);
    expect(dumpFile('sqlite', '/srv/app/data.db')).toBe('dumps/sqlite/srv/app/data.db.zst');
    expect(() => dumpFile('sqlite', 'data.db')).toThrow(/absolute/);
  });
});

describe('sqlite-dump, run locally', () => {
  let dir: string;
  let script: string;
  let db: string;
  let other: string;
  let scratch: string;

  const sql = (file: string, ...cmds: string[]) => {
    const r = spawnSync('sqlite3', ['-batch', '-bail', file, ...cmds], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`sqlite3 ${file}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const dispatch = (command: string) => {
    // TMPDIR: the private place the copy is made in, to see that it is cleaned up
    const r = spawnSync('sh', [script], { env: { SSH_ORIGINAL_COMMAND: command, PATH: process.env.PATH, TMPDIR: scratch }, maxBuffer: 1 << 26 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pv-sqlite-'));
    await mkdir(path.join(dir, 'app'));
    await mkdir(path.join(dir, 'elsewhere'));
    scratch = path.join(dir, 'scratch');
    await mkdir(scratch);
    db = path.join(dir, 'app', 'data.db');
    other = path.join(dir, 'elsewhere', 'secret.db');
    sql(db, 'PRAGMA journal_mode=WAL', 'CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT)', "INSERT INTO item(name) VALUES ('a'), ('b'), ('c')");
    sql(other, "CREATE TABLE secret(x); INSERT INTO secret VALUES ('do not send')");
    script = path.join(dir, 'dispatch');
    const configured = [db, path.join(dir, 'link.db'), path.join(dir, 'viadir', 'data.db'), path.join(dir, 'adir'), path.join(dir, 'missing.db')];
    await writeFile(script, renderDispatcher(await loadServerTemplates(), server(configured, dir)));
    await symlink(other, path.join(dir, 'link.db'));
    await symlink(path.join(dir, 'app'), path.join(dir, 'viadir'));
    await mkdir(path.join(dir, 'adir'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a consistent copy of a configured file (WAL content included) that opens and counts', async () => {
    const r = dispatch(`sqlite-dump ${db}`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const copy = path.join(dir, 'copy.db');
    await writeFile(copy, r.stdout);
    expect(sql(copy, 'PRAGMA integrity_check')).toBe('ok');
    expect(sql(copy, 'SELECT group_concat(name) FROM item')).toBe('a,b,c');
    expect(await readdir(scratch)).toEqual([]);
  });

  it.each([
    [() => `sqlite-dump ${other}`, /is not in this server's sqlite list/],
    [() => `sqlite-dump ${dir}/app/../elsewhere/secret.db`, /is not in this server's sqlite list/],
    [() => `sqlite-dump ${dir}/app/*.db`, /must match/],
    [() => `sqlite-dump ${dir}/app/data.db ${other}`, /must match|not in this server's sqlite list/],
    [() => `sqlite-dump ${dir}/app/data.db;cat ${other}`, /must match/],
    [() => 'sqlite-dump app/data.db', /absolute path/],
    [() => 'sqlite-dump', /not an allowed command/],
    [() => `sqlite-dump ${dir}/link.db`, /reached through a symbolic link/],
    [() => `sqlite-dump ${dir}/viadir/data.db`, /reached through a symbolic link/],
    [() => `sqlite-dump ${dir}/adir`, /not a regular file/],
    [() => `sqlite-dump /${'x'.repeat(5000)}`, /longer than 4095 bytes/],
  ])('refuses %s', (cmd, why) => {
    const r = dispatch(cmd());
    expect(r.code).toBe(DISPATCH_REFUSED_EXIT);
    expect(r.stderr).toMatch(why);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stdout.length).toBe(0);
  });

  it('fails (not refuses) a configured file that is not there, and sends nothing', () => {
    const r = dispatch(`sqlite-dump ${dir}/missing.db`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot be reached/);
    expect(r.stdout.length).toBe(0);
  });

  it('is off on a server without sqlite files', async () => {
    const off = path.join(dir, 'dispatch-off');
    await writeFile(off, renderDispatcher(await loadServerTemplates(), server(undefined, dir)));
    const r = spawnSync('sh', [off], { env: { SSH_ORIGINAL_COMMAND: `sqlite-dump ${db}`, PATH: process.env.PATH }, encoding: 'utf8' });
    expect(r.status).toBe(DISPATCH_REFUSED_EXIT);
    expect(r.stderr).toMatch(/sqlite dumps are not enabled/);
  });
});
