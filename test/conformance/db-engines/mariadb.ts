// MariaDB's fixture for the DbEngine conformance suite: the seeded `shop` database (and a `wiki`
// the inventory leaves out), dumped by the least-privilege account provision-server makes,
// restored on the Pi.
import { MARIADB_SEED } from '../../../provision/lab/seed.ts';
import { SEEDED_ITEMS } from '../../lab/index.ts';
import type { DbEngineFixture } from '../db-engine.ts';

export const mariadbFixture: DbEngineFixture = {
  sample: ['shop'],
  subnet: '10.224.0.0/24',
  services: ['mariadb'],
  async seed(server) {
    await server.exec(['mariadb'], { input: `${MARIADB_SEED}\nCREATE DATABASE IF NOT EXISTS wiki;` });
    return { databases: { mariadb: ['shop'] } };
  },
  dumpFiles: ['dumps/mariadb/shop.sql.zst'],
  async restoreRows(pi, dir) {
    await pi.exec(['bash', '-c', `set -o pipefail; zstd -dc ${dir}/dumps/mariadb/shop.sql.zst | mariadb`]);
    return (await pi.exec(['mariadb', '-N', '-B', '-e', 'SELECT name FROM shop.item ORDER BY id'])).stdout.trim().split('\n');
  },
  async expectedRows(server) {
    const rows = (await server.exec(['mariadb', '-N', '-B', '-e', 'SELECT name FROM shop.item ORDER BY id'])).stdout.trim().split('\n');
    return rows.join() === SEEDED_ITEMS.join() ? rows : [...rows, '(not the seeded rows)'];
  },
  async refusals() {
    return [
      ['mysql-dump wiki', /not in this server's mariadb list/],
      ['mysql-dump mysql', /not in this server's mariadb list/],
      ['mysql-dump shop;id', /must match/],
      ['mysql-dump shop --result-file=/tmp/x', /must match/],
      ['pg-dump shop', /postgres dumps are not enabled/],
      ['sqlite-dump /var/lib/mysql/ibdata1', /sqlite dumps are not enabled/],
    ];
  },
};
