// The backup disk's layout is a contract with every disk already written: these paths must not
// move without a migration (the runtime, the offsite phase and the demo all read them from here).
import { describe, expect, it } from 'vitest';
import { dumpFile, vaultLayout } from '../../contract/disk-layout.ts';

describe('disk layout', () => {
  it('names every path under <dataDir>/pullvault, trailing slashes ignored', () => {
    const L = vaultLayout('/srv/backup/');
    expect(L.root).toBe('/srv/backup/pullvault');
    expect(L.snapshotDir('web1', '20260101T000000Z')).toBe('/srv/backup/pullvault/snapshots/web1/20260101T000000Z');
    expect(L.partialDir('web1', '20260101T000000Z')).toBe('/srv/backup/pullvault/snapshots/web1/20260101T000000Z.partial');
    expect(L.latest('web1')).toBe('/srv/backup/pullvault/snapshots/web1/latest');
    expect([L.lock, L.offsiteLock, L.status, L.uploads, L.pullNeeds]).toEqual([
      '/srv/backup/pullvault/state/lock',
      '/srv/backup/pullvault/state/offsite.lock',
      '/srv/backup/pullvault/state/status.json',
      '/srv/backup/pullvault/state/uploads.jsonl',
      '/srv/backup/pullvault/state/pull-needs.json',
    ]);
  });

  it('names dumps inside a snapshot by engine', () => {
    expect(dumpFile('mariadb', 'shop')).toBe('dumps/mariadb/shop.sql.zst');
    expect(dumpFile('postgres', 'app')).toBe('dumps/postgres/app.pgdump');
    expect(dumpFile('postgres', 'globals', 'globals')).toBe('dumps/postgres/globals.sql.zst');
    // a database that happens to be called "globals" is not the globals dump
    expect(dumpFile('postgres', 'globals')).toBe('dumps/postgres/globals.pgdump');
  });
});
