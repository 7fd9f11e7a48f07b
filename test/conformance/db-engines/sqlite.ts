// SQLite's fixture for the DbEngine conformance suite (WAL, written during the backup): an application user "app" keeps a
// WAL-mode database open and writes to it in transactions the whole time (each one adds ledger
// rows and moves a running total with them, so a torn copy shows); the backup user reads it
// only through the group app, and the copy on the Pi must be whole, consistent, and a prefix of
// what the server has by then, and hold every row written before the run (the writer never
// checkpoints, so they are only in the -wal file). The refusals include the app user swapping a configured file for
// a symlink to a file it is not configured for.
import type { ChildProcess } from 'node:child_process';
import type { LabHost } from '../../lab/index.ts';
import { waitFor } from '../../lab/wait.ts';
import type { DbEngineFixture } from '../db-engine.ts';

const WRITER = String.raw`import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute('PRAGMA journal_mode=WAL')
# nothing reaches the database file itself: a copy of it alone (what rsync would take) lacks every row
db.execute('PRAGMA wal_autocheckpoint=0')
db.execute('CREATE TABLE IF NOT EXISTS ledger(id INTEGER PRIMARY KEY, amount INTEGER, pad BLOB)')
db.execute('CREATE TABLE IF NOT EXISTS total(n INTEGER, s INTEGER)')
db.execute('INSERT INTO total SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM total)')
i = 0
while True:
    db.execute('BEGIN IMMEDIATE')
    for _ in range(20):
        i += 1
        db.execute('INSERT INTO ledger(amount, pad) VALUES (?, randomblob(1000))', (i,))
        db.execute('UPDATE total SET n = n + 1, s = s + ?', (i,))
    db.execute('COMMIT')
    time.sleep(0.01)
`;

const DATA = '/srv/app/data.db';
const CACHE = '/srv/app/cache.db';
const OTHER = '/srv/app/other.db';
const VAULT = '/srv/vault/secret.db';
let writer: ChildProcess | undefined;
let writtenBeforeRun = 0;

const sql = (host: LabHost, file: string, query: string, user?: string) =>
  host.exec(['sqlite3', '-batch', '-bail', '-readonly', file, query], user ? { user } : {}).then((r) => r.stdout.trim());

export const sqliteFixture: DbEngineFixture = {
  title: 'sqlite (WAL, written during the backup)',
  sample: ['/srv/app/data.db'],
  subnet: '10.223.0.0/24',
  services: [],
  async seed(server) {
    await server.exec(['sh', '-c', `set -e
useradd --system --user-group --shell /usr/sbin/nologin app
install -d -o app -g app -m 0750 /srv/app /srv/vault
cd /srv/app
runuser -u app -- sh -c 'umask 027
sqlite3 ${CACHE} "CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT); INSERT INTO kv VALUES (\\"a\\", \\"1\\"), (\\"b\\", \\"2\\"), (\\"c\\", \\"3\\")"
sqlite3 ${OTHER} "CREATE TABLE t(x); INSERT INTO t VALUES (1)"
sqlite3 ${VAULT} "CREATE TABLE secret(x); INSERT INTO secret VALUES (\\"not configured\\")"'`]);
    await server.writeFile('/srv/writer.py', WRITER);
    writer = server.spawn(['sh', '-c', `umask 027; exec python3 /srv/writer.py ${DATA}`], { user: 'app', stdio: 'ignore' });
    const written = async () => Number((await server.exec(['sh', '-c', `sqlite3 -readonly ${DATA} 'SELECT n FROM total' 2>/dev/null || echo 0`])).stdout.trim());
    await waitFor('the writer to start', async () => (await written()) > 200, 30_000, 100);
    writtenBeforeRun = await written();
    return { databases: { sqlite: [DATA, CACHE] }, groups: ['app'] };
  },
  dumpFiles: ['dumps/sqlite/srv/app/cache.db.zst', 'dumps/sqlite/srv/app/data.db.zst'],
  async restoreRows(pi, dir) {
    await pi.exec(['sh', '-c', `set -e; zstd -q -dc ${dir}/dumps/sqlite/srv/app/data.db.zst > /tmp/data.db; zstd -q -dc ${dir}/dumps/sqlite/srv/app/cache.db.zst > /tmp/cache.db`]);
    const [n, max] = (await sql(pi, '/tmp/data.db', 'SELECT count(*), max(id) FROM ledger')).split('|');
    return [
      `integrity ${await sql(pi, '/tmp/data.db', 'PRAGMA integrity_check')}`,
      `total matches ledger ${await sql(pi, '/tmp/data.db', 'SELECT (SELECT count(*) FROM ledger) = n AND (SELECT sum(amount) FROM ledger) = s FROM total')}`,
      `ledger ${n} rows up to id ${max}`,
      `cache ${await sql(pi, '/tmp/cache.db', "SELECT group_concat(k || '=' || v) FROM kv")}`,
    ];
  },
  async expectedRows(server, restored) {
    const max = Number(/up to id (\d+)/.exec(restored[2] ?? '')?.[1]);
    const [prefix, all] = (await sql(server, DATA, `SELECT (SELECT count(*) FROM ledger WHERE id <= ${max}), (SELECT count(*) FROM ledger)`)).split('|');
    // the writer went on after the copy: it was taken while the database was being written
    const wroteOn = Number(all) > max ? '' : ` (the writer stopped at ${all})`;
    const fresh = max >= writtenBeforeRun ? '' : ` (older than the ${writtenBeforeRun} rows written before the run)`;
    return ['integrity ok', 'total matches ledger 1', `ledger ${prefix} rows up to id ${max}${wroteOn}${fresh}`, 'cache a=1,b=2,c=3'];
  },
  async refusals(server) {
    // the application's user, after the backup: the configured cache becomes a symlink to a file it may read
    await server.exec(['sh', '-c', `rm ${CACHE} && ln -s ${VAULT} ${CACHE}`], { user: 'app' });
    await server.exec(['ln', '-s', '/srv/app', '/srv/applink']);
    return [
      [`sqlite-dump ${OTHER}`, /not in this server's sqlite list/],
      [`sqlite-dump ${VAULT}`, /not in this server's sqlite list/],
      [`sqlite-dump /srv/app/../vault/secret.db`, /not in this server's sqlite list/],
      [`sqlite-dump /srv/applink/data.db`, /not in this server's sqlite list/],
      [`sqlite-dump /srv/app/*.db`, /must match/],
      [`sqlite-dump ${DATA} ${OTHER}`, /not in this server's sqlite list|must match/],
      [`sqlite-dump ${DATA}-wal`, /not in this server's sqlite list/],
      ['sqlite-dump data.db', /absolute path/],
      [`sqlite-dump ${CACHE}`, /reached through a symbolic link/],
      ['sqlite-dump', /not an allowed command/],
    ];
  },
  async done() {
    writer?.kill('SIGKILL');
  },
};
