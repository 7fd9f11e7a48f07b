// provision-server in lab hosts: a server "web" (sshd, MariaDB, PostgreSQL), a "pi" on the same
// lab network holding the Pi's key, and a "restore" host the dumps are restored into. Every
// allowed thing is done, and every forbidden thing tried, with the real OpenSSH client/rsync.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeLab, seedDatabases, startHost, startLabNetwork, type LabHost, type LabNetwork } from '../lab/index.ts';
import { Redactor, TextReporter, type RunSummary } from '../../provision/engine/index.ts';
import { SshExecutor } from '../../provision/exec/ssh.ts';
import type { Executor } from '../../provision/exec/types.ts';
import type { Inventory, ServerSpec } from '../../contract/inventory-schema.ts';
import { labInventory } from '../fixtures/lab-inventory.ts';
import { connectAdmin, provisionServer, type ProvisionServerOptions } from '../../provision/server.ts';
import { DISPATCH_REFUSED_EXIT } from '../../contract/dispatch-protocol.ts';

const MACHINE_FILES = ['/etc/passwd', '/etc/group', '/etc/shadow'];
const HOST_FILES = ['/etc/passwd', '/etc/group', '/etc/shadow', '/etc/gshadow', '/etc/subuid', '/etc/subgid'];
const OTHER_ADDRESS = '10.213.0.200';

async function machineHashes(): Promise<string> {
  const parts = await Promise.all(MACHINE_FILES.map(async (f) => `${f} ${createHash('sha256').update(await readFile(f)).digest('hex')}`));
  return parts.join('\n');
}

describeLab('provision-server in lab hosts', () => {
  let net: LabNetwork;
  let web: LabHost;
  let pi: LabHost;
  let restore: LabHost;
  let exec: Executor;
  let inventory: Inventory;
  let server: ServerSpec;
  let piPub: string;
  let machineBefore: string;
  let hostBefore: string;
  const timings: Record<string, number> = {};
  let out = '';

  const reporter = () => new TextReporter(new Redactor(), (t) => (out += t));

  async function run(opts: Partial<ProvisionServerOptions> = {}, spec: ServerSpec = server): Promise<RunSummary> {
    out = '';
    const r = await provisionServer(inventory, spec, { executor: exec, piPublicKey: piPub, reporter: reporter(), ...opts });
    expect(r.problems, out).toEqual([]);
    expect(r.summary!.failed, out).toBe(0);
    expect(r.summary!.skipped, out).toBe(0);
    return r.summary!;
  }

  /** web's state that provision + uninstall must give back unchanged */
  async function hostState(): Promise<string> {
    const files = await web.exec(['sh', '-c', 'sha256sum "$@"; ls -A /usr/local/sbin /home; id -nG www-data alice bob', 'sh', ...HOST_FILES]);
    const my = await web.exec(['mariadb', '-N', '-B', '-e', "SELECT user, host FROM mysql.user ORDER BY 1, 2; SELECT COUNT(*) FROM mysql.db"]);
    const pg = await web.exec(['psql', '-X', '-A', '-t', '-c', 'SELECT rolname FROM pg_roles ORDER BY 1'], { user: 'postgres' });
    return `${files.stdout}\n${my.stdout}\n${pg.stdout}`;
  }

  const sshBase = (key = '/root/.ssh/pi_key') => [
    'ssh', '-F', '/dev/null', '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10',
    '-o', 'UserKnownHostsFile=/root/.ssh/known_hosts', '-o', 'StrictHostKeyChecking=yes',
  ];
  const dest = () => `pullvault@${web.address}`;
  /** a command with the Pi's key, from the Pi */
  const piSsh = (args: string[], key?: string) => pi.exec(['timeout', '30', ...sshBase(key), ...args], { okCodes: [...Array(256).keys()] });
  const rsyncE = (key = '/root/.ssh/pi_key') => sshBase(key).join(' ');
  const piRsync = (args: string[]) => pi.exec(['timeout', '60', 'rsync', '-e', rsyncE(), ...args], { okCodes: [...Array(256).keys()] });

  beforeAll(async () => {
    machineBefore = await machineHashes();
    net = await startLabNetwork();
    [web, pi, restore] = await Promise.all([
      startHost({ name: 'web', network: net, services: ['sshd', 'mariadb', 'postgres'] }),
      startHost({ name: 'pi', network: net, extraAddresses: [OTHER_ADDRESS] }),
      startHost({ name: 'restore', services: ['mariadb', 'postgres'] }),
    ]);
    await seedDatabases(web);
    // fixture users and data: alice and bob are backed up, carol is not
    await web.exec(['sh', '-c', `set -e
for u in alice bob carol; do useradd -m -s /bin/bash "$u"; chmod 0750 "/home/$u"; done
for u in alice bob carol; do
  printf 'notes of %s\\n' "$u" > "/home/$u/notes.txt"; chmod 0640 "/home/$u/notes.txt"
  printf 'secret of %s\\n' "$u" > "/home/$u/secret.txt"; chmod 0600 "/home/$u/secret.txt"
  chown "$u:$u" /home/$u/*.txt
done
mkdir -p /var/www/html; echo '<h1>site</h1>' > /var/www/html/index.html
chown -R www-data:www-data /var/www; chmod -R g+rwX,o-rwx /var/www
printf 'carol only\\n' > /var/www/carol.txt; chown carol:carol /var/www/carol.txt; chmod 0640 /var/www/carol.txt
useradd -m -s /bin/sh deploy; install -d -m 700 -o deploy -g deploy /home/deploy/.ssh
cp /root/.ssh/authorized_keys /home/deploy/.ssh/; chown deploy:deploy /home/deploy/.ssh/authorized_keys`]);
    // the Pi's key, and web's host key pinned on the Pi
    await pi.exec(['sh', '-c', "ssh-keygen -q -t ed25519 -N '' -C pi1 -f /root/.ssh/pi_key && ssh-keygen -q -t ed25519 -N '' -C pi2 -f /root/.ssh/pi_key2"]);
    await pi.writeFile('/root/.ssh/known_hosts', `${web.address} ${web.hostKey}\n`);
    piPub = (await pi.readFile('/root/.ssh/pi_key.pub')).toString();
    server = {
      name: 'web',
      ssh: { host: web.address!, hostKey: web.hostKey },
      users: ['alice', 'bob'],
      groups: ['www-data'],
      paths: [{ path: '/home/alice' }, { path: '/home/bob' }, { path: '/var/www', exclude: ['*.tmp'] }],
      databases: { mariadb: 'all', postgres: 'all' },
    };
    inventory = labInventory({ servers: [server], sourceAddress: pi.address!, mountpoint: '/srv/backup' });
    exec = await connectAdmin(server, { adminKey: await readFile(web.adminKeyFile), sock: () => web.sock() });
    hostBefore = await hostState();
  });

  afterAll(async () => {
    await exec?.close();
    await Promise.all([web?.stop(), pi?.stop(), restore?.stop()]);
    await net?.stop();
    console.log(`provision-server timings (ms): ${JSON.stringify(timings)}`);
  });

  it('dry run shows the plan and changes nothing', async () => {
    const s = await run({ dryRun: true });
    expect(s.changed).toBeGreaterThanOrEqual(6);
    expect(out).toMatch(/would change\s+web: backup user pullvault/);
    expect(out).toContain('+restrict,from="');
    expect(out).toMatch(/to change, 0 failed/);
    expect(await hostState()).toBe(hostBefore);
  });

  it('provisions, then a second run reports 0 changed', async () => {
    let t = Date.now();
    const first = await run();
    timings.first = Date.now() - t;
    expect(first.changed).toBeGreaterThanOrEqual(8);
    t = Date.now();
    const second = await run();
    timings.second = Date.now() - t;
    expect(second.changed, out).toBe(0);
    expect(out).toMatch(/0 changed, 0 failed/);
    const pw = (await web.exec(['getent', 'passwd', 'pullvault'])).stdout;
    expect(pw).toMatch(/:\/home\/pullvault:\/bin\/sh\n$/);
    expect((await web.exec(['getent', 'shadow', 'pullvault'])).stdout.split(':')[1]).toBe('*');
    expect((await web.exec(['id', '-nG', 'pullvault'])).stdout.trim().split(' ').sort()).toEqual(['alice', 'bob', 'pullvault', 'www-data']);
    expect((await web.exec(['stat', '-c', '%U %G %a', '/usr/local/sbin/pullvault-dispatch', '/home/pullvault/.ssh/authorized_keys'])).stdout).toBe('root root 755\nroot root 644\n');
    // Debian's own backup user is untouched
    expect((await web.exec(['getent', 'passwd', 'backup'])).stdout).toMatch(/^backup:x:34:34:.*:\/usr\/sbin\/nologin\n$/);
  });

  it('allows a pull of every configured root', async () => {
    await pi.exec(['mkdir', '-p', '/srv/pull/alice', '/srv/pull/bob', '/srv/pull/www']);
    for (const [root, d] of [['/home/alice/', 'alice'], ['/home/bob/', 'bob'], ['/var/www/', 'www']]) {
      const r = await piRsync(['-aHAX', '--numeric-ids', '--delete', '--exclude=*.tmp', `${dest()}:${root}`, `/srv/pull/${d}/`]);
      // 23: some files unreadable (the 0600 secrets, carol's file) — a partial success, by design
      expect([0, 23], r.stderr).toContain(r.code);
    }
    const ls = (await pi.exec(['find', '/srv/pull', '-type', 'f'])).stdout.split('\n').sort();
    expect(ls).toContain('/srv/pull/alice/notes.txt');
    expect(ls).toContain('/srv/pull/bob/notes.txt');
    expect(ls).toContain('/srv/pull/www/html/index.html');
    // not readable by the backup user: never copied
    expect(ls).not.toContain('/srv/pull/alice/secret.txt');
    expect(ls).not.toContain('/srv/pull/www/carol.txt');
    // a path inside a root works too
    const one = await piRsync(['-a', `${dest()}:/var/www/html/index.html`, '/srv/pull/one.html']);
    expect(one.code, one.stderr).toBe(0);
  });

  it('allows every dump, and each restores on another host with the same row counts', async () => {
    const myList = await piSsh([dest(), 'mysql-list']);
    expect(myList.code, myList.stderr).toBe(0);
    expect(myList.stdout.split('\n')).toContain('shop');
    expect(myList.stdout).not.toMatch(/^(mysql|information_schema|performance_schema|sys)$/m);
    const pgList = await piSsh([dest(), 'pg-list']);
    expect(pgList.code, pgList.stderr).toBe(0);
    expect(pgList.stdout.split('\n')).toContain('shop');
    expect(pgList.stdout).not.toMatch(/template[01]/);

    const my = await pi.exec([...sshBase(), dest(), 'mysql-dump shop']);
    expect(my.stdout).toMatch(/CREATE TABLE `item`/);
    expect(my.stdout).toMatch(/TRIGGER.*item_audit|item_audit/);
    expect(my.stdout).toMatch(/PROCEDURE `item_total`/);
    expect(my.stdout).toMatch(/EVENT `purge_audit`/);
    await restore.exec(['mariadb'], { input: my.stdout });
    const count = (h: LabHost) => h.exec(['mariadb', '-N', '-B', '-e', 'SELECT COUNT(*) FROM shop.item']);
    expect((await count(restore)).stdout).toBe((await count(web)).stdout);

    const pg = await pi.exec(['sh', '-c', `${sshBase().join(' ')} ${dest()} 'pg-dump shop' > /tmp/shop.pgdump`]);
    expect(pg.code).toBe(0);
    await restore.writeFile('/tmp/shop.pgdump', await pi.readFile('/tmp/shop.pgdump'), { mode: 0o644 });
    await restore.exec(['createdb', 'shop'], { user: 'postgres' });
    await restore.exec(['pg_restore', '--no-owner', '-d', 'shop', '/tmp/shop.pgdump'], { user: 'postgres' });
    const pgCount = (h: LabHost, t: string) => h.exec(['psql', '-X', '-A', '-t', '-d', 'shop', '-c', `SELECT COUNT(*) FROM ${t}`], { user: 'postgres' });
    for (const t of ['item', 'priv.secret']) expect((await pgCount(restore, t)).stdout).toBe((await pgCount(web, t)).stdout);

    const globals = await piSsh([dest(), 'pg-globals']);
    expect(globals.code, globals.stderr).toBe(0);
    expect(globals.stdout).toMatch(/CREATE ROLE postgres/);
    expect(globals.stdout).not.toMatch(/PASSWORD '/);
  });

  it('refuses every forbidden thing', async () => {
    const refused: string[] = [];
    const expectRefused = async (what: string, args: string[], check?: (r: { code: number; stdout: string; stderr: string }) => void) => {
      const r = await piSsh(args);
      expect(r.code, `${what}: ${r.stdout}${r.stderr}`).not.toBe(0);
      check?.(r);
      refused.push(what);
    };
    const by126 = (r: { code: number; stderr: string }) => {
      expect(r.code).toBe(DISPATCH_REFUSED_EXIT);
      expect(r.stderr).toMatch(/^pullvault-dispatch: refused: .+$/m);
    };
    const noSuchFile = async (p: string) => expect((await web.exec(['test', '-e', p], { okCodes: [0, 1] })).code, `${p} must not exist`).toBe(1);

    await expectRefused('a shell (no command)', [dest()], by126);
    // restrict = no-pty: the server refuses the pty, and a client that insists (-tt) gives up
    await expectRefused('a shell with a pty', ['-tt', dest()], (r) => expect(r.stderr).toMatch(/PTY allocation request failed/));
    await expectRefused('a command with a pty', ['-tt', dest(), 'mysql-list'], (r) => expect(r.stderr).toMatch(/PTY allocation request failed/));
    await expectRefused('sh -c id', [dest(), 'sh -c id'], by126);
    await expectRefused('cat /etc/shadow', [dest(), 'cat /etc/shadow'], by126);
    // sshd does not pass a subsystem's stderr on; the exit code still says refused
    await expectRefused('sftp subsystem', ['-s', dest(), 'sftp'], (r) => expect(r.code).toBe(DISPATCH_REFUSED_EXIT));
    await expectRefused('scp source mode', [dest(), 'scp -f /etc/passwd'], by126);
    await expectRefused('-R forwarding', ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', '127.0.0.1:2999:127.0.0.1:22', dest()]);
    await expectRefused('-W stdio forwarding', ['-W', '127.0.0.1:22', dest()]);
    // -L and -D listen on the Pi; the server must refuse the channel each asks for once used.
    // (the ssh in the background must not hold exec()'s pipes, and must be gone afterwards)
    // wait until ssh listens on the forwarded port (a loaded machine may take seconds), then probe
    const waitListen = (port: number) => `for i in $(seq 200); do socat -u /dev/null TCP:127.0.0.1:${port} 2>/dev/null && break; sleep 0.1; done`;
    const throughForward = async (flag: string, port: number, socatAddress: string) => {
      const r = await pi.exec(['sh', '-c', `${sshBase().join(' ')} -N ${flag} ${dest()} </dev/null >/dev/null 2>&1 & p=$!
${waitListen(port)}; sleep 3 | timeout 8 socat -T3 - ${socatAddress}; echo "rc=$?"; kill $p; wait $p`], { okCodes: [...Array(256).keys()] });
      expect(r.stdout).toMatch(/rc=/);
      expect(r.stdout).not.toMatch(/SSH-2\.0/);
    };
    await throughForward('-L 127.0.0.1:2999:127.0.0.1:22', 2999, 'TCP:127.0.0.1:2999');
    // control: the same probe through root's unrestricted key does see web's sshd banner
    await pi.writeFile('/root/.ssh/admin_key', await readFile(web.adminKeyFile), { mode: 0o600 });
    const control = await pi.exec(['sh', '-c', `${sshBase('/root/.ssh/admin_key').join(' ')} -N -L 127.0.0.1:2998:127.0.0.1:22 root@${web.address} </dev/null >/dev/null 2>&1 & p=$!
${waitListen(2998)}; sleep 3 | timeout 8 socat -T3 - TCP:127.0.0.1:2998; kill $p; wait $p`], { okCodes: [...Array(256).keys()] });
    expect(control.stdout).toMatch(/SSH-2\.0/);
    refused.push('-L local forwarding');
    await throughForward('-D 127.0.0.1:1080', 1080, 'SOCKS4A:127.0.0.1:127.0.0.1:22,socksport=1080');
    refused.push('-D dynamic forwarding');
    await expectRefused('mysql-dump with ;', [dest(), 'mysql-dump shop;id'], by126);
    await expectRefused('mysql-dump with $()', [dest(), 'mysql-dump $(id)'], by126);
    await expectRefused('mysql-dump with backticks', [dest(), 'mysql-dump `id`'], by126);
    await expectRefused('mysql-dump -r FILE', [dest(), 'mysql-dump -r/tmp/pwn'], by126);
    await expectRefused('mysql-dump --result-file', [dest(), 'mysql-dump shop --result-file=/tmp/pwn'], by126);
    await expectRefused('mysql-dump -f', [dest(), 'mysql-dump -f shop'], by126);
    await expectRefused('pg-dump -f FILE', [dest(), 'pg-dump shop -f /tmp/pwn'], by126);
    await expectRefused('pg-dump -fFILE', [dest(), 'pg-dump -f/tmp/pwn'], by126);
    await expectRefused('pg-dump conninfo', [dest(), 'pg-dump host=10.0.0.1'], by126);
    await expectRefused('pg-globals with options', [dest(), 'pg-globals -f /tmp/pwn'], by126);
    await expectRefused('raw mariadb-dump', [dest(), 'mariadb-dump --all-databases'], by126);
    await noSuchFile('/tmp/pwn');

    // rsync: push, --remove-source-files, outside the roots, .., /etc/shadow
    await pi.exec(['sh', '-c', 'mkdir -p /tmp/push && echo evil > /tmp/push/evil.txt']);
    const push = await piRsync(['-a', '/tmp/push/', `${dest()}:/var/www/`]);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/refused: rsync push/);
    await noSuchFile('/var/www/evil.txt');
    refused.push('rsync push');
    const rsf = await piRsync(['-a', '--remove-source-files', `${dest()}:/var/www/html/index.html`, '/tmp/x.html']);
    expect(rsf.code).not.toBe(0);
    expect(rsf.stderr).toMatch(/refused: rsync --remove-source-files/);
    expect((await web.exec(['test', '-f', '/var/www/html/index.html'], { okCodes: [0, 1] })).code).toBe(0);
    refused.push('rsync --remove-source-files');
    for (const [what, src] of [
      ['rsync outside the roots (/etc)', '/etc/'],
      ['rsync /etc/shadow', '/etc/shadow'],
      ['rsync of a user not in the groups (/home/carol)', '/home/carol/notes.txt'],
      ['rsync .. trick', '/var/www/../../etc/shadow'],
      ['rsync prefix trick (/home/alice2)', '/home/aliceX/'],
      ['rsync relative path', 'etc/shadow'],
    ] as const) {
      const r = await piRsync(['-a', `${dest()}:${src}`, '/tmp/stolen/']);
      expect(r.code, `${what}: ${r.stderr}`).not.toBe(0);
      expect(r.stderr, what).toMatch(/refused|rrsync error/);
      refused.push(what);
    }
    // a file in a root that the groups do not open: rsync reports it unreadable, nothing copied
    // (rrsync cannot open it to pin it: 12; rsync itself would say 23 — either way nothing comes)
    const carol = await piRsync(['-a', `${dest()}:/var/www/carol.txt`, '/tmp/stolen/']);
    expect([12, 23], carol.stderr).toContain(carol.code);
    expect(carol.stderr).toMatch(/Permission denied/);
    refused.push("a file inside a root owned by a user not in the groups (carol's 0640)");
    const sec = await piRsync(['-a', `${dest()}:/home/alice/secret.txt`, '/tmp/stolen/']);
    expect([12, 23], sec.stderr).toContain(sec.code);
    refused.push("alice's 0600 file");
    expect((await pi.exec(['find', '/tmp/stolen', '-type', 'f'], { okCodes: [0, 1] })).stdout.trim()).toBe('');

    // another source address
    const other = await pi.exec([...sshBase(), '-b', OTHER_ADDRESS, dest(), 'mysql-list'], { okCodes: [...Array(256).keys()] });
    expect(other.code).toBe(255);
    expect(other.stderr).toMatch(/Permission denied/);
    refused.push('a connection from another source address');
    expect(refused.length).toBeGreaterThanOrEqual(20);
    console.log(`refused (${refused.length}): ${refused.join('; ')}`);
  });

  it("refuses what the dispatcher's own checks once read differently from rrsync: other whitespace, escapes, long names, ::, sftp, scp", async () => {
    const refused: string[] = [];
    const expectRefused = async (what: string, args: string[], why: RegExp) => {
      const r = await piSsh(args);
      expect(r.code, `${what}: ${r.stdout}${r.stderr}`).toBe(DISPATCH_REFUSED_EXIT);
      expect(r.stderr, what).toMatch(/^pullvault-dispatch: refused: .+$/m);
      expect(r.stderr, what).toMatch(why);
      refused.push(what);
      return r;
    };
    const sender = 'rsync --server --sender -logDtpre.iLsfxCIvu';
    // every whitespace character Python's \s (rrsync's splitter) knows that is not a space
    for (const [name, ch] of [['TAB', '\t'], ['vertical tab', '\v'], ['form feed', '\f'], ['CR', '\r'], ['file separator \\x1c', '\x1c'], ['unit separator \\x1f', '\x1f']] as const) {
      await expectRefused(`--files-from=- behind a ${name}`, [dest(), `${sender}${ch}--files-from=- . /var/www/`], /control characters/);
    }
    await expectRefused('--files-from=- behind a no-break space (U+00A0)', [dest(), `${sender}\u00a0--files-from=- . /var/www/`], /plain ASCII/);
    await expectRefused('--files-from=- behind two spaces', [dest(), `${sender}  --files-from=- . /var/www/`], /single spaces/);
    await expectRefused('--files-from=- itself', [dest(), `${sender} --files-from=- . /var/www/`], /--files-from is not allowed/);
    await expectRefused('--files-from abbreviated', [dest(), `${sender} --files-fr=- . /var/www/`], /--files-fr is not allowed/);
    await expectRefused('backslashed dots', [dest(), `${sender} . /var/www/\\.\\./\\.\\./etc/shadow`], /backslash escapes/);
    await expectRefused('a backslashed option', [dest(), `${sender} \\-\\-files-from=- . /var/www/`], /without backslashes/);
    const viaRsync = await piRsync(['-a', `${dest()}:/var/www/\\.\\./\\.\\./etc/shadow`, '/tmp/stolen/']);
    expect(viaRsync.code).not.toBe(0);
    expect(viaRsync.stderr).toMatch(/refused: rsync path with backslash escapes/);
    refused.push('backslashed dots through the rsync client');
    const long = await expectRefused('a 100 000-byte database name', [dest(), `mysql-dump ${'a'.repeat(100_000)}`], /longer than 64 bytes/);
    expect(long.stderr.length).toBeLessThan(200);
    await expectRefused('a PostgreSQL name of 64 bytes', [dest(), `pg-dump ${'p'.repeat(64)}`], /longer than 63 bytes/);
    await expectRefused("mysql-dump mysql under 'all' (password hashes)", [dest(), 'mysql-dump mysql'], /system database/);
    await expectRefused("pg-dump template1 under 'all'", [dest(), 'pg-dump template1'], /system database/);
    const daemon = await piRsync([`${dest()}::`]);
    expect(daemon.code).not.toBe(0);
    expect(daemon.stderr).toMatch(/refused: rsync daemon mode \(host::module\) is not offered/);
    expect(daemon.stderr).not.toMatch(/push/);
    refused.push('rsync host:: (daemon mode)');
    const sshOpts = sshBase().slice(1);
    const client = (args: string[], input = '') => pi.exec(['timeout', '30', ...args], { input, okCodes: [...Array(256).keys()] });
    // sshd drops a subsystem's stderr: the dispatcher says it in SFTP, and the client prints it
    const sftp = await client(['sftp', ...sshOpts, '-b', '-', dest()], 'get /etc/passwd /tmp/stolen-passwd\n');
    expect(sftp.code).not.toBe(0);
    expect(sftp.stderr).toMatch(/pullvault-dispatch: refused: sftp \(and scp, which speaks sftp\) is not offered/);
    refused.push('sftp');
    // scp (SFTP since OpenSSH 9) gets the same answers but prints its own words for them
    const scpAbsolute = await client(['scp', ...sshOpts, `${dest()}:/etc/passwd`, '/tmp/stolen-passwd']);
    expect(scpAbsolute.code).not.toBe(0);
    expect(scpAbsolute.stderr).not.toMatch(/Connection closed/);
    const scpUp = await client(['scp', ...sshOpts, '/etc/hostname', `${dest()}:/tmp/pushed`]);
    expect(scpUp.code).not.toBe(0);
    expect(scpUp.stderr).toMatch(/Permission denied/);
    refused.push('scp (SFTP)');
    const scpO = await client(['scp', '-O', ...sshOpts, `${dest()}:/etc/passwd`, '/tmp/stolen-passwd']);
    expect(scpO.code).not.toBe(0);
    expect(scpO.stderr).toMatch(/pullvault-dispatch: refused: scp is not offered/);
    refused.push('scp -O (the legacy protocol)');
    console.log(`scp of a named file says: ${scpAbsolute.stderr.trim()}`);
    expect((await pi.exec(['test', '-e', '/tmp/stolen-passwd'], { okCodes: [0, 1] })).code).toBe(1);
    expect((await web.exec(['test', '-e', '/tmp/pushed'], { okCodes: [0, 1] })).code).toBe(1);
    console.log(`refused (${refused.length}): ${refused.join('; ')}`);
  });

  it('puts back drift: an edited dispatcher, a loosened authorized_keys, an added group', async () => {
    await web.exec(['sh', '-c', `echo 'exec /bin/sh' >> /usr/local/sbin/pullvault-dispatch
sed -i 's/^restrict,//' /home/pullvault/.ssh/authorized_keys
usermod -aG carol pullvault`]);
    const dry = await run({ dryRun: true });
    expect(dry.changed, out).toBe(3);
    expect(out).toMatch(/would change\s+web: groups of pullvault \(update: remove carol\)/);
    const s = await run();
    expect(s.changed, out).toBe(3);
    expect((await run()).changed).toBe(0);
    expect((await web.readFile('/usr/local/sbin/pullvault-dispatch')).toString()).not.toContain('exec /bin/sh\n');
    expect((await web.readFile('/home/pullvault/.ssh/authorized_keys')).toString()).toMatch(/^restrict,from=/m);
  });

  it('rotates the key: after a Pi rebuild the old key stops working in the same run', async () => {
    const oldPub = piPub;
    piPub = (await pi.readFile('/root/.ssh/pi_key2.pub')).toString();
    try {
      const s = await run();
      expect(s.changed).toBe(1);
      const old = await piSsh([dest(), 'mysql-list'], '/root/.ssh/pi_key');
      expect(old.code).toBe(255);
      const fresh = await piSsh([dest(), 'mysql-list'], '/root/.ssh/pi_key2');
      expect(fresh.code, fresh.stderr).toBe(0);
    } finally {
      piPub = oldPub;
    }
    await run();
  });

  it('explains errors in one line naming the server: host key, unreachable, sudo, unknown user/group, missing engine', async () => {
    const key = await readFile(web.adminKeyFile);
    const oneLine = (e: unknown) => {
      const m = (e as Error).message;
      expect(m).not.toContain('\n');
      expect(m).toMatch(/^web\b/);
      return m;
    };
    await expect(connectAdmin({ ...server, ssh: { ...server.ssh, hostKey: pi.hostKey } }, { adminKey: key, sock: () => web.sock() }).catch(oneLine)).resolves.toMatch(/host key mismatch.*update servers\[\]\.ssh\.hostKey/);
    await expect(connectAdmin({ ...server, ssh: { ...server.ssh, host: '127.0.0.1', port: 1 } }, { adminKey: key }).catch(oneLine)).resolves.toMatch(/unreachable.*check servers\[\]\.ssh\.host/);
    await expect(connectAdmin({ ...server, ssh: { ...server.ssh, admin: 'deploy' } }, { adminKey: key, sock: () => web.sock() }).catch(oneLine)).resolves.toMatch(/no passwordless sudo/);
    const bad = { ...server, users: ['alice', 'nosuchuser'], groups: ['www-data', 'nosuchgroup'] };
    const r = await provisionServer({ ...inventory, servers: [bad] }, bad, { executor: exec, piPublicKey: piPub, reporter: reporter() });
    expect(r.problems).toEqual([
      'web: servers[0].users names "nosuchuser", but there is no such user on web; create it there or remove it from the inventory',
      'web: servers[0].groups names "nosuchgroup", but there is no such group on web; create it there or remove it from the inventory',
    ]);
    // pi runs no database: naming one there is a clear error
    const piExec = await SshExecutor.connect({ name: 'pi', host: 'pi', port: 22, username: 'root', hostKey: pi.hostKey, privateKey: await readFile(pi.adminKeyFile), sock: await pi.sock() }, { requireRoot: true });
    try {
      const piSpec: ServerSpec = { ...server, name: 'pi', users: [], groups: [], databases: { postgres: ['shop'] } };
      const r2 = await provisionServer({ ...inventory, servers: [piSpec] }, piSpec, { executor: piExec, piPublicKey: piPub, reporter: reporter() });
      expect(r2.problems.join('\n')).toMatch(/^pi: PostgreSQL does not answer .*start it, or remove servers\[0\]\.databases\.postgres$/);
    } finally {
      await piExec.close();
    }
  });

  it('--uninstall leaves the host as it was, and the machine running the tests is unchanged', async () => {
    out = '';
    const r = await provisionServer(inventory, server, { executor: exec, uninstall: true, reporter: reporter() });
    expect(r.problems).toEqual([]);
    expect(r.summary!.failed, out).toBe(0);
    expect(r.summary!.changed, out).toBeGreaterThanOrEqual(6);
    expect(await hostState()).toBe(hostBefore);
    const again = await provisionServer(inventory, server, { executor: exec, uninstall: true, reporter: reporter() });
    expect(again.summary!.changed).toBe(0);
    expect(await machineHashes()).toBe(machineBefore);
  });
});
