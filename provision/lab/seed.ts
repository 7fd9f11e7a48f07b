// Small fixture databases for backup tests, and a least-privilege dump user.
import type { LabHost } from './host.ts';

export const MARIADB_SEED = `
CREATE DATABASE IF NOT EXISTS shop;
USE shop;
CREATE TABLE IF NOT EXISTS item (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50)) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS audit (msg VARCHAR(50)) ENGINE=InnoDB;
CREATE OR REPLACE TRIGGER item_audit AFTER INSERT ON item FOR EACH ROW INSERT INTO audit VALUES (NEW.name);
INSERT INTO item(name) VALUES ('apple'),('pear'),('plum');
CREATE OR REPLACE VIEW v_item AS SELECT name FROM item;
DROP PROCEDURE IF EXISTS item_total;
CREATE PROCEDURE item_total() SELECT COUNT(*) FROM item;
CREATE OR REPLACE EVENT purge_audit ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit;
`;

export const POSTGRES_SEED = `
DROP DATABASE IF EXISTS shop;
CREATE DATABASE shop;
\\c shop
CREATE TABLE item (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO item(name) VALUES ('apple'),('pear'),('plum');
CREATE VIEW v_item AS SELECT name FROM item;
CREATE FUNCTION item_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM item';
CREATE SCHEMA priv;
CREATE TABLE priv.secret (x int);
INSERT INTO priv.secret VALUES (42);
REVOKE ALL ON SCHEMA priv FROM PUBLIC;
`;

/** Rows both `shop` databases contain after seeding (item.name). */
export const SEEDED_ITEMS = ['apple', 'pear', 'plum'];

/**
 * Create MariaDB db `shop` (tables item, audit; view v_item; trigger item_audit; procedure
 * item_total; event purge_audit) and PostgreSQL
 * db `shop` (table item, view v_item, function item_count(), schema priv with table secret).
 * Starts the databases if needed. MariaDB: re-running adds rows; PostgreSQL is recreated.
 */
export async function seedDatabases(host: LabHost): Promise<void> {
  await Promise.all([host.startMariadb(), host.startPostgres()]);
  await Promise.all([
    host.exec(['mariadb'], { input: MARIADB_SEED }),
    host.exec(['psql', '-q', '-X', '-v', 'ON_ERROR_STOP=1'], { user: 'postgres', input: POSTGRES_SEED }),
  ]);
}

/**
 * A unix user that can dump every database and nothing more: MariaDB account IDENTIFIED VIA
 * unix_socket with SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT; PostgreSQL LOGIN role in
 * pg_read_all_data using peer auth (Debian's default for local sockets).
 */
export async function createDumpUser(host: LabHost, user = 'dumper'): Promise<void> {
  if (!/^[a-z][a-z0-9_]{0,30}$/.test(user)) throw new Error(`lab: bad user name ${user}`); // goes into SQL
  await host.exec(['sh', '-c', 'id -u "$1" >/dev/null 2>&1 || useradd -m -s /bin/sh "$1"', 'sh', user]);
  await Promise.all([host.startMariadb(), host.startPostgres()]);
  await Promise.all([
    host.exec(['mariadb'], {
      input: `CREATE USER IF NOT EXISTS '${user}'@'localhost' IDENTIFIED VIA unix_socket;
GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON *.* TO '${user}'@'localhost';`,
    }),
    host.exec(['psql', '-q', '-X', '-v', 'ON_ERROR_STOP=1'], {
      user: 'postgres',
      input: `DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='${user}')
THEN CREATE ROLE ${user} LOGIN; END IF; END$$;
GRANT pg_read_all_data TO ${user};`,
    }),
  ]);
}
