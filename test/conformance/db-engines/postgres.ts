// PostgreSQL's fixture for the DbEngine conformance suite: the seeded `shop` database (and a
// `wiki` the inventory leaves out), dumped by the role provision-server makes, restored on the Pi.
import { POSTGRES_SEED } from '../../../provision/lab/seed.ts';
import { SEEDED_ITEMS } from '../../lab/index.ts';
import type { DbEngineFixture } from '../db-engine.ts';

export const postgresFixture: DbEngineFixture = {
  sample: ['shop'],
  subnet: '10.225.0.0/24',
  services: ['postgres'],
  async seed(server) {
    await server.exec(['psql', '-q', '-X', '-v', 'ON_ERROR_STOP=1'], { user: 'postgres', input: `${POSTGRES_SEED}\nCREATE DATABASE wiki;` });
    return { databases: { postgres: ['shop'] } };
  },
  dumpFiles: ['dumps/postgres/globals.sql.zst', 'dumps/postgres/shop.pgdump'],
  async restoreRows(pi, dir) {
    await pi.exec(['bash', '-c', `set -o pipefail; runuser -u postgres -- createdb shop && runuser -u postgres -- pg_restore --no-owner -d shop < ${dir}/dumps/postgres/shop.pgdump && zstd -dc ${dir}/dumps/postgres/globals.sql.zst | grep -q 'CREATE ROLE'`]);
    return (await pi.exec(['psql', '-X', '-A', '-t', '-d', 'shop', '-c', 'SELECT name FROM item ORDER BY id'], { user: 'postgres' })).stdout.trim().split('\n');
  },
  async expectedRows(server) {
    const rows = (await server.exec(['psql', '-X', '-A', '-t', '-d', 'shop', '-c', 'SELECT name FROM item ORDER BY id'], { user: 'postgres' })).stdout.trim().split('\n');
    return rows.join() === SEEDED_ITEMS.join() ? rows : [...rows, '(not the seeded rows)'];
  },
  async refusals() {
    return [
      ['pg-dump wiki', /not in this server's postgres list/],
      ['pg-dump template1', /not in this server's postgres list/],
      ['pg-dump shop;id', /must match/],
      ['pg-dump -f/tmp/x', /must match/],
      ['mysql-dump shop', /mariadb dumps are not enabled/],
      ['sqlite-dump /var/lib/postgresql/15/main/global/pg_control', /sqlite dumps are not enabled/],
    ];
  },
};
