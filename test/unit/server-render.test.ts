// provision-server's pure parts: rendering, the dispatcher's decisions (run locally with sh
// against temp dirs, as the user running the tests), SQL, facts → problems, the plan.
import { mkdtemp, mkdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PiSpec, ServerSpec } from '../../contract/inventory-schema.ts';
import { loadServerTemplates } from '../../provision/server.ts';
import { parsePublicKey, renderAuthorizedKeys, renderDispatcher, rootProblems, rsyncWireForm, verbFunction, type ServerTemplates } from '../../provision/server/render.ts';
import { DISPATCH_REFUSED_EXIT, DISPATCH_VERBS, dispatchCommand } from '../../contract/dispatch-protocol.ts';
import { dbListValue } from '../../provision/server/engines/db-list.ts';
import { MARIADB_NAME_MAX } from '../../contract/db-engines/mariadb.ts';
import { PG_NAME_MAX } from '../../contract/db-engines/postgres.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMnrFkJQ2xUcELSoX2wVt0gzJWvS6t+kUOOqU+rcFQ1R';
const pi = { name: 'pi01', sourceAddress: '198.51.100.23' } as PiSpec;

let templates: ServerTemplates;
beforeAll(async () => {
  templates = await loadServerTemplates();
});

const server = (paths: string[], databases?: ServerSpec['databases']): ServerSpec => ({
  name: 'web1',
  ssh: { host: 'web1.example.net', hostKey: KEY },
  paths: paths.map((p) => ({ path: p })),
  ...(databases ? { databases } : {}),
});

describe('rendering', () => {
  it('writes the authorized_keys line with restrict, from= and the forced command', () => {
    const text = renderAuthorizedKeys(templates, pi, `${KEY} root@pi01\n`);
    expect(text.split('\n').filter((l) => l && !l.startsWith('#'))).toEqual([
      `restrict,from="198.51.100.23",command="/usr/local/sbin/pullvault-dispatch" ${KEY} pullvault-pi01`,
    ]);
  });

  it('takes exactly one public key, never a private one', () => {
    expect(parsePublicKey(`${KEY} comment with spaces`, 'f')).toBe(KEY);
    expect(() => parsePublicKey(`${KEY}\n${KEY}\n`, 'f')).toThrow(/exactly one/);
    expect(() => parsePublicKey(['-----BEGIN OPENSSH', 'PRIVATE KEY-----'].join(' '), 'f') /* joined at run time: no key-like text committed */).toThrow(/not an SSH public key/);
  });

  it('escapes roots the way an rsync client sends them', () => {
    expect(rsyncWireForm('/var/www')).toBe('/var/www');
    expect(rsyncWireForm("/srv/my data/it's$(x)")).toBe("/srv/my\\ data/it\\'s\\$\\(x\\)");
  });

  it('refuses roots the dispatcher cannot serve exactly', () => {
    expect(rootProblems(server(['/srv/a*', '/srv/ok', '/srv/x/../etc', '/srv/no\u00a0break', '/srv/two  spaces']), 0)).toEqual([
      'servers[0].paths[0].path: "/srv/a*" contains a wildcard character (* ? [ ]); rename the folder or back up its parent',
      'servers[0].paths[2].path: "/srv/x/../etc" must not contain . or .. components',
      'servers[0].paths[3].path: contains whitespace other than plain spaces',
    ]);
  });

  it('renders database lists and the roots into a dispatcher that parses', () => {
    expect(dbListValue('mariadb', MARIADB_NAME_MAX, undefined)).toBe('');
    expect(dbListValue('postgres', PG_NAME_MAX, 'all')).toBe('*');
    expect(dbListValue('mariadb', MARIADB_NAME_MAX, ['shop', 'wiki', 'shop'])).toBe('shop wiki');
    expect(dbListValue('mariadb', MARIADB_NAME_MAX, ['m'.repeat(64)])).toBe('m'.repeat(64));
    expect(() => dbListValue('postgres', PG_NAME_MAX, ['p'.repeat(64)])).toThrow(/longer than postgres's 63 bytes/);
    const text = renderDispatcher(templates, server(['/var/www/', '/srv/my data'], { mariadb: ['shop'], postgres: 'all' }));
    expect(text).toContain("set -- /var/www /var/www '/srv/my data' '/srv/my\\ data'");
    expect(text).toContain("MYSQL_DBS=shop\n");
    expect(text).toContain("PG_DBS='*'\n");
    expect(text).not.toMatch(/\{\{|&#x27;|&amp;/);
    expect(spawnSync('sh', ['-n'], { input: text }).status).toBe(0);
  });

  it('renders one case arm and one function per verb of the protocol table, and the allowed list from it', () => {
    const text = renderDispatcher(templates, server(['/srv'], { mariadb: 'all' }));
    for (const v of DISPATCH_VERBS) {
      const fn = verbFunction(v.verb);
      expect(text).toMatch(new RegExp(`^${fn}\\(\\) \\{$`, 'm'));
      expect(text).toContain(v.arg !== 'none' ? `  '${v.verb} '*) ${fn} "\${c#${v.verb} }" ;;` : `  ${v.verb}) ${fn} ;;`);
    }
    expect(text).toContain('(allowed: rsync pull of the configured roots, mysql-list, mysql-dump DB, pg-list, pg-dump DB, pg-globals, sqlite-dump FILE)');
  });

  it('builds only commands the dispatcher accepts', () => {
    expect(dispatchCommand('mysql-dump', 'shop')).toBe('mysql-dump shop');
    expect(dispatchCommand('pg-globals')).toBe('pg-globals');
    expect(() => dispatchCommand('pg-dump', 'shop;id')).toThrow(/does not match/);
    expect(() => dispatchCommand('mysql-dump', 'x'.repeat(100_000))).toThrow(/^mysql-dump: database name "x{64}"… is longer than mariadb's 64 bytes$/);
    expect(() => dispatchCommand('pg-dump')).toThrow(/needs a database/);
  });
});

describe('the dispatcher, run locally', () => {
  let dir: string;
  let script: string;
  let fakeSsh: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pv-dispatch-'));
    await mkdir(path.join(dir, 'root a', 'sub'), { recursive: true });
    await mkdir(path.join(dir, 'root2'));
    await mkdir(path.join(dir, 'dst'));
    await writeFile(path.join(dir, 'root a', 'sub', 'f.txt'), 'hello\n');
    await writeFile(path.join(dir, 'outside.txt'), 'secret\n');
    script = path.join(dir, 'dispatch');
    await writeFile(script, renderDispatcher(templates, server([path.join(dir, 'root a'), path.join(dir, 'root2')], { mariadb: ['shop'] })));
    // "ssh" that runs the dispatcher the way sshd would: the command line in SSH_ORIGINAL_COMMAND
    fakeSsh = path.join(dir, 'fakessh');
    await writeFile(fakeSsh, `#!/bin/sh\nwhile [ $# -gt 0 ]; do case $1 in -l) shift 2;; -*) shift;; *) shift; break;; esac; done\nSSH_ORIGINAL_COMMAND="$*" exec sh '${script}'\n`);
    await chmod(fakeSsh, 0o755);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const dispatch = (command: string) => {
    const r = spawnSync('sh', [script], { env: { SSH_ORIGINAL_COMMAND: command, PATH: process.env.PATH }, encoding: 'utf8' });
    return { code: r.status, stderr: r.stderr };
  };
  const rsync = (...args: string[]) => spawnSync('rsync', ['-e', fakeSsh, ...args], { encoding: 'utf8' });

  it.each([
    ['', /interactive shell/],
    ['sh', /not an allowed command/],
    ['mysql-dump shop;id', /must match/],
    ['mysql-dump $(id)', /must match/],
    ['mysql-dump `id`', /must match/],
    ['mysql-dump -r/tmp/x', /must match/],
    ['mysql-dump shop --result-file=/tmp/x', /must match/],
    ['mysql-dump wiki', /not in this server's mariadb list/],
    ['mysql-dump ', /single spaces/],
    ['mysql-list extra', /not an allowed command/],
    ['pg-dump shop', /postgres dumps are not enabled/],
    ['pg-globals', /postgres dumps are not enabled/],
    ['mysql-dump shop\nid', /control characters/],
    ['rsync --server -logDtpre.iLsfxCIvu . /tmp/', /rsync push/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu . /etc/shadow', /outside the configured roots/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu --remove-source-files . /x', /remove-source-files/],
    // rrsync splits on every whitespace character, this script's checks on spaces: refused first
    ['rsync --server --sender -logDtpre.iLsfxCIvu\t--files-from=- . /x', /control characters/],
    ['rsync --server --sender\t-logDtpre.iLsfxCIvu . /x', /control characters/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu\v--files-from=- . /x', /control characters/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu\f--files-from=- . /x', /control characters/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu\r--files-from=- . /x', /control characters/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu\x1c--files-from=- . /x', /control characters/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu\u00a0--files-from=- . /x', /plain ASCII/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu  --files-from=- . /x', /single spaces/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu --files-from=- . /x', /--files-from is not allowed/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu --files-fr=- . /x', /--files-fr is not allowed/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu --remove . /x', /--remove is not allowed/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu --log-file=/tmp/l . /x', /--log-file is not allowed/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu -- . /x', /-- is not allowed/],
    ['rsync --server --sender -logDtpre.iLsfxCIvu \\-\\-files-from=- . /x', /without backslashes/],
    ['rsync --server --daemon .', /daemon mode/],
    ['scp -f /etc/passwd', /scp is not offered/],
    ['scp -t /tmp', /scp is not offered/],
    ['mysql-dump ' + 'x'.repeat(65), /longer than 64 bytes/],
    ['mysql-dump mysql', /not in this server's mariadb list/],
  ])('refuses %j with exit 126 and one line', (cmd, why) => {
    const r = dispatch(cmd);
    expect(r.code).toBe(DISPATCH_REFUSED_EXIT);
    expect(r.stderr).toMatch(why);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.each(DISPATCH_VERBS.map((v) => [v.verb, v]))('answers %s in its own function (not the catch-all refusal)', (_verb, v) => {
    // this server has MariaDB "shop" and no PostgreSQL: every verb reaches its engine's checks
    const r = dispatch(v.arg === 'db' ? `${v.verb} nosuchdb` : v.arg === 'file' ? `${v.verb} /srv/no.db` : v.verb);
    expect(r.stderr).not.toMatch(/not an allowed command/);
    if (v.engine === 'postgres') expect(r.stderr).toMatch(/postgres dumps are not enabled/);
    else if (v.engine === 'sqlite') expect(r.stderr).toMatch(/sqlite dumps are not enabled/);
    else if (v.arg === 'db') expect(r.stderr).toMatch(/not in this server's mariadb list/);
  });

  it('answers the sftp subsystem in SFTP, so the sftp client prints the refusal (sshd drops its stderr)', () => {
    for (const subsystem of ['/usr/lib/openssh/sftp-server', 'internal-sftp']) {
      // sftp -D talks SFTP to a local program: the dispatcher, as sshd starts it for the subsystem
      const r = spawnSync('sftp', ['-b', '-', '-D', `sh ${script}`], {
        input: 'get /etc/passwd x\n',
        env: { SSH_ORIGINAL_COMMAND: subsystem, PATH: process.env.PATH },
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(r.status, subsystem).not.toBe(0);
      expect(r.stderr, subsystem).toMatch(/^realpath \.: pullvault-dispatch: refused: sftp \(and scp, which speaks sftp\) is not offered: the Pi pulls with rsync$/m);
    }
  });

  it('refuses escapes, globs and a second path inside a root, and never echoes more than a name', () => {
    const pull = (p: string) => dispatch(`rsync --server --sender -logDtpre.iLsfxCIvu . ${p}`);
    const root2 = `${dir}/root2`;
    for (const [p, why] of [
      [`${root2}/\\.\\./outside.txt`, /backslash escapes/],
      [`${root2}/\\.\\.`, /backslash escapes/],
      [`${root2}/../outside.txt`, /\.\. components/],
      [`${root2}/..`, /\.\. components/],
      [`${root2}/{x,..}/outside.txt`, /only one path/],
      [`${root2}/* /etc/shadow`, /only one path/],
      [`${root2}/ /etc/shadow`, /only one path/],
    ] as const) {
      const r = pull(p);
      expect(r.code, p).toBe(DISPATCH_REFUSED_EXIT);
      expect(r.stderr, p).toMatch(why);
    }
    const long = dispatch(`mysql-dump ${'x'.repeat(100_000)}`);
    expect(long.code).toBe(DISPATCH_REFUSED_EXIT);
    expect(long.stderr).toMatch(/longer than 64 bytes/);
    expect(long.stderr.length).toBeLessThan(200);
  });

  it('hands a pull of a root to rrsync, and refuses what is outside it', async () => {
    const ok = rsync('-a', `u@h:${dir}/root a/`, `${dir}/dst/`);
    expect(ok.status, ok.stderr).toBe(0);
    expect(await readFile(path.join(dir, 'dst', 'sub', 'f.txt'), 'utf8')).toBe('hello\n');
    for (const src of [`${dir}/outside.txt`, `${dir}/root a/../outside.txt`, `${dir}/root ab/`, `${dir}/root2/../root a/`, `${dir}/root2/{x,..}/outside.txt`]) {
      const r = rsync('-a', `u@h:${src}`, `${dir}/dst2/`);
      expect(r.status, src).not.toBe(0);
      expect(r.stderr, src).toMatch(/refused|rrsync error/);
    }
    const push = rsync('-a', `${dir}/outside.txt`, `u@h:${dir}/root2/`);
    expect(push.status).not.toBe(0);
    expect(spawnSync('ls', [`${dir}/root2`], { encoding: 'utf8' }).stdout).toBe('');
  });
});
