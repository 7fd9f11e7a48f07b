// provision-server's decisions on plain data: SQL grants, facts → problems, plan shape.
import { describe, expect, it } from 'vitest';
import type { PiSpec, ServerSpec } from '../../contract/inventory-schema.ts';
import { BACKUP_USER_COMMENT, factProblems, wantedGroups, type ServerFacts } from '../../provision/server/facts.ts';
import { planServer } from '../../provision/server/plan.ts';
import { describeMariadb, mariadbAccountSql, parseShowGrants, wantedMariadbAccount } from '../../provision/server/engines/mariadb-sql.ts';
import { parsePgRole, pgRoleEqual, pgRoleSql, WANTED_PG_ROLE } from '../../provision/server/engines/postgres-sql.ts';
import { oneLineConnectError } from '../../provision/server.ts';
import { HostKeyMismatchError } from '../../provision/exec/ssh.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMnrFkJQ2xUcELSoX2wVt0gzJWvS6t+kUOOqU+rcFQ1R';
const pi = { name: 'pi01', sourceAddress: '198.51.100.23' } as PiSpec;
const templates = {
  'pullvault-dispatch': '#!/bin/sh\n# {{{header}}}\nset -- {{{rootsAndWire}}}\n{{#each engineFragments}}{{{this}}}\n{{/each}}{{{rrsync}}} {{{refusedExit}}} {{{refusedPrefix}}}\n',
  'dispatch-mariadb': 'MYSQL_DBS={{{dbs}}}',
  'dispatch-postgres': 'PG_DBS={{{dbs}}}',
  'dispatch-sqlite': 'SQLITE_FILES={{{files}}}',
  authorized_keys: '{{{from}}} {{{command}}} {{{key}}} {{{comment}}}\n',
};

const server: ServerSpec = {
  name: 'web1',
  ssh: { host: 'web1.example.net', hostKey: KEY },
  groups: ['www-data'],
  users: ['alice', 'bob'],
  paths: [{ path: '/home/alice' }, { path: '/var/www' }],
  databases: { mariadb: ['shop'], postgres: 'all' },
};

const facts = (over: Partial<ServerFacts> = {}): ServerFacts => ({
  backupUser: null,
  users: { alice: 'alice', bob: 'bob' },
  groups: { 'www-data': true },
  programs: Object.fromEntries(['rsync', 'python3', 'runuser', 'useradd', 'usermod', 'userdel', 'logger', 'rrsync'].map((p) => [p, true])),
  rrsyncAbsolute: true,
  engines: { mariadb: { installed: true, running: true }, postgres: { installed: true, running: true }, sqlite: { installed: true, running: true } },
  ...over,
});

describe('MariaDB grants', () => {
  it('parses SHOW GRANTS and compares as sets', () => {
    const shown = parseShowGrants(
      'GRANT USAGE ON *.* TO `pullvault`@`localhost` IDENTIFIED VIA unix_socket\nGRANT SELECT, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER ON `shop`.* TO `pullvault`@`localhost`\n',
    );
    expect(describeMariadb(shown)).toBe(describeMariadb(wantedMariadbAccount(['shop'])));
    expect(describeMariadb(shown)).not.toBe(describeMariadb(wantedMariadbAccount('all')));
    const extra = parseShowGrants('GRANT SELECT, INSERT ON *.* TO `pullvault`@`localhost` IDENTIFIED VIA unix_socket WITH GRANT OPTION\n');
    expect(describeMariadb(extra)).toContain('WITH GRANT OPTION');
    expect(describeMariadb(extra)).toContain('INSERT, SELECT ON *.*');
  });

  it('makes the account with exactly the five privileges', () => {
    expect(mariadbAccountSql('pullvault', 'all')).toBe(
      [
        "CREATE USER IF NOT EXISTS 'pullvault'@'localhost' IDENTIFIED VIA unix_socket;",
        "ALTER USER 'pullvault'@'localhost' IDENTIFIED VIA unix_socket;",
        "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'pullvault'@'localhost';",
        "GRANT EVENT, LOCK TABLES, SELECT, SHOW VIEW, TRIGGER ON *.* TO 'pullvault'@'localhost';",
        '',
      ].join('\n'),
    );
    expect(mariadbAccountSql('pullvault', ['shop', 'wiki'])).toContain('ON `wiki`.* TO');
    expect(() => mariadbAccountSql("x'; DROP", 'all')).toThrow(/bad backup user/);
  });
});

describe('PostgreSQL role', () => {
  it('parses psql output and asks for LOGIN + pg_read_all_data only', () => {
    const cur = parsePgRole('t|f|f|f|f|t|f|pg_read_all_data\n');
    expect(pgRoleEqual(cur, WANTED_PG_ROLE)).toBe(true);
    const drifted = parsePgRole('t|f|t|f|f|t|f|pg_read_all_data,pg_write_all_data\n')!;
    expect(pgRoleEqual(drifted, WANTED_PG_ROLE)).toBe(false);
    expect(pgRoleSql('pullvault', drifted)).toBe(
      'ALTER ROLE "pullvault" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS PASSWORD NULL;\nREVOKE "pg_write_all_data" FROM "pullvault";\nGRANT "pg_read_all_data" TO "pullvault";\n',
    );
    expect(pgRoleSql('pullvault', null)).toMatch(/^CREATE ROLE "pullvault";\n/);
    expect(parsePgRole('\n')).toBeNull();
  });
});

describe('facts → problems', () => {
  it('accepts a ready server', () => {
    expect(factProblems(server, 0, facts(), 'install')).toEqual([]);
    expect(wantedGroups(server, facts())).toEqual(['alice', 'bob', 'www-data']);
  });

  it('names the server and what to do for each problem', () => {
    const p = factProblems(
      server,
      1,
      facts({
        users: { alice: 'alice', bob: null },
        groups: { 'www-data': false },
        engines: {
          postgres: { installed: false, running: false, detail: 'psql not found' },
          mariadb: { installed: true, running: false, detail: "Can't connect to local server through socket" },
        },
        backupUser: { name: 'pullvault', uid: 1001, gid: 1001, gecos: 'someone else', home: '/home/pullvault', shell: '/bin/bash' },
      }),
      'install',
    );
    expect(p).toEqual([
      'web1: a user "pullvault" already exists and was not created by pullvault (comment "someone else"); set servers[1].backupUser to another name, or remove that user',
      'web1: servers[1].users names "bob", but there is no such user on web1; create it there or remove it from the inventory',
      'web1: servers[1].groups names "www-data", but there is no such group on web1; create it there or remove it from the inventory',
      "web1: MariaDB does not answer (Can't connect to local server through socket); start it, or remove servers[1].databases.mariadb",
      'web1: servers[1].databases.postgres is set, but PostgreSQL is not installed (psql not found); install postgresql or remove databases.postgres',
    ]);
  });

  it('ignores engines the inventory does not name', () => {
    const noDb = { ...server, databases: undefined };
    expect(factProblems(noDb, 0, facts({ engines: { postgres: { installed: false, running: false, detail: 'x' } } }), 'install')).toEqual([]);
  });

  it('explains connection errors in one line', () => {
    const w = 'web1 (root@web1.example.net:22)';
    const mismatch = new HostKeyMismatchError('web1', 'web1.example.net', 'SHA256:aaa', 'SHA256:bbb');
    expect(oneLineConnectError(w, mismatch)).toBe(
      `${w}: host key mismatch (pinned SHA256:aaa, server presents SHA256:bbb); if the server was reinstalled, check the new key on its console and update servers[].ssh.hostKey`,
    );
    expect(oneLineConnectError(w, new Error('web1 (web1.example.net:22): cannot connect: ECONNREFUSED connect ECONNREFUSED 1.2.3.4:22'))).toMatch(/^web1 .*: unreachable \(ECONNREFUSED.*\); check servers\[\]\.ssh\.host and port/);
  });
});

describe('the plan', () => {
  it('installs user, home, groups, dispatcher, key and accounts in order', () => {
    const plan = planServer({ server, index: 0, pi, piPublicKey: KEY, templates, facts: facts(), mode: 'install' });
    expect(plan.problems).toEqual([]);
    expect(plan.steps.map((s) => s.id)).toEqual([
      'web1: backup user pullvault',
      'web1: /home/pullvault',
      'web1: groups of pullvault',
      'web1: /usr/local/sbin/pullvault-dispatch',
      'web1: /home/pullvault/.ssh',
      'web1: /home/pullvault/.ssh/authorized_keys',
      'web1: mariadb account pullvault',
      'web1: mariadb login as pullvault',
      'web1: postgres role pullvault',
      'web1: postgres login as pullvault',
    ]);
  });

  it('needs the Pi key to install, not to uninstall', () => {
    expect(planServer({ server, index: 0, pi, templates, facts: facts(), mode: 'install' }).problems).toEqual([
      'web1: no public key for the Pi; run make provision-pi first, or pass --pi-public-key FILE',
    ]);
    const un = planServer({ server, index: 0, pi, templates, facts: facts({ backupUser: { name: 'pullvault', uid: 999, gid: 999, gecos: BACKUP_USER_COMMENT, home: '/home/pullvault', shell: '/bin/sh' } }), mode: 'uninstall' });
    expect(un.problems).toEqual([]);
    expect(un.steps.map((s) => s.id)).toEqual([
      'web1: /home/pullvault/.ssh/authorized_keys',
      'web1: /home/pullvault/.ssh',
      'web1: /usr/local/sbin/pullvault-dispatch',
      'web1: mariadb account pullvault',
      'web1: postgres role pullvault',
      'web1: /home/pullvault',
      'web1: backup user pullvault',
    ]);
  });

  it('never takes over a user it did not create, not even to uninstall', () => {
    const f = facts({ backupUser: { name: 'pullvault', uid: 1000, gid: 1000, gecos: 'Real Person', home: '/home/pullvault', shell: '/bin/bash' } });
    expect(planServer({ server, index: 0, pi, templates, facts: f, mode: 'uninstall' }).problems[0]).toMatch(/was not created by pullvault/);
  });
});
