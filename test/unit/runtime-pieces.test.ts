// Pure pieces of the runtime: mountinfo, pre-flight verdicts, rsync output, hash reuse,
// manifest diffs, status and Prometheus rendering, argv builders; plus healthcheck pings
// against a local HTTP server.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import type { ManifestEntry, SnapshotInfo } from '../../contract/disk-layout.ts';
import { mountAt, parseMountinfo } from '../../runtime/mountinfo.ts';
import { ping, pingUrl } from '../../runtime/notify.ts';
import { judgeDisk, type DiskFacts, type DiskRules } from '../../runtime/preflight.ts';
import { endpointFor, filesDirFor, rsyncArgv, rsyncShellWord, sshVerbArgv } from '../../runtime/pull/commands.ts';
import { diffManifests, reusableHash } from '../../runtime/pull/hash-reuse.ts';
import { unreadablePaths } from '../../runtime/pull/rsync-output.ts';
import type { PullResult } from '../../runtime/pull/snapshot.ts';
import { finishedRecord, startedRecord } from '../../runtime/run-record.ts';
import { emptyStatus, nextStatus, prometheusText, renderStatus } from '../../runtime/status.ts';

const MOUNTINFO = `22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/mmcblk0p2 rw
30 22 0:25 / /proc rw,nosuid - proc proc rw
41 22 253:0 / /srv/backup\\040disk rw,noatime shared:7 - ext4 /dev/mapper/pullvault-data rw
42 22 0:40 / /mnt/tmp rw - tmpfs tmpfs rw,size=10m
43 42 0:41 / /mnt/tmp ro - tmpfs other rw
`;

describe('mountinfo', () => {
  const m = parseMountinfo(MOUNTINFO);
  it('parses fields and unescapes paths', () => {
    expect(mountAt(m, '/srv/backup disk')).toMatchObject({ dev: '253:0', fsType: 'ext4', source: '/dev/mapper/pullvault-data', options: ['rw', 'noatime'] });
    expect(mountAt(m, '/')).toMatchObject({ source: '/dev/mmcblk0p2' });
  });
  it('the last mount on a path shadows earlier ones', () => {
    expect(mountAt(m, '/mnt/tmp')).toMatchObject({ source: 'other', options: ['ro'] });
  });
  it('a directory that is not a mountpoint has no entry', () => {
    expect(mountAt(m, '/srv')).toBeUndefined();
  });
});

describe('pre-flight verdict', () => {
  const m = parseMountinfo(MOUNTINFO);
  const rules: DiskRules = { mapperName: 'pullvault-data', allowUnmounted: false, allowUnencrypted: false };
  const good: DiskFacts = {
    dataDir: '/srv/backup disk', realDir: '/srv/backup disk', mount: mountAt(m, '/srv/backup disk'), rootMount: mountAt(m, '/'),
    dm: { name: 'pullvault-data', uuid: 'CRYPT-LUKS2-abc-pullvault-data', suspended: false }, freeMiB: 5000,
  };
  it('accepts the open dm-crypt mapper with room', () => {
    expect(judgeDisk(good, rules)).toEqual({ ok: true, freeMiB: 5000, notes: [] });
  });
  it.each([
    ['missing dir', { realDir: undefined }, /does not exist/],
    ['not mounted', { mount: undefined }, /is not a mountpoint/],
    ['on the root fs', { mount: { ...good.mount!, dev: '259:2' } }, /on the root filesystem/],
    ['read-only', { mount: { ...good.mount!, options: ['ro'] } }, /read-only/],
    ['not dm-crypt', { dm: { name: 'vg-lv', uuid: 'LVM-xyz', suspended: false } }, /not dm-crypt/],
    ['suspended', { dm: { ...good.dm!, suspended: true } }, /suspended/],
    ['other mapper', { dm: { ...good.dm!, name: 'other' } }, /not the configured \/dev\/mapper\/pullvault-data/],
    ['plain device', { dm: undefined }, /not the unlocked dm-crypt volume/],
    ['free space unreadable', { freeMiB: undefined }, /cannot read free space/],
  ] as [string, Partial<DiskFacts>, RegExp][])('refuses: %s', (_, over, re) => {
    const v = judgeDisk({ ...good, ...over }, rules);
    expect(v.ok).toBe(false);
    expect(!v.ok && v.reason).toMatch(re);
  });
  it('lab flags relax exactly their check', () => {
    expect(judgeDisk({ ...good, dm: undefined }, { ...rules, allowUnencrypted: true }).ok).toBe(true);
    expect(judgeDisk({ ...good, mount: undefined }, { ...rules, allowUnencrypted: true }).ok).toBe(false);
    expect(judgeDisk({ ...good, mount: undefined, dm: undefined }, { ...rules, allowUnmounted: true }).ok).toBe(true);
    expect(judgeDisk({ ...good, freeMiB: undefined }, { ...rules, allowUnmounted: true }).ok).toBe(false);
  });
  it('little free space is not a refusal of the whole run: each server is judged before its pull (space.ts)', () => {
    expect(judgeDisk({ ...good, freeMiB: 1 }, rules)).toEqual({ ok: true, freeMiB: 1, notes: [] });
  });
});

describe('rsync output', () => {
  it('lists unreadable and vanished paths, not the summary line', () => {
    const err = [
      'rsync: [sender] send_files failed to open "/srv/www/private.key": Permission denied (13)',
      'rsync: [sender] opendir "/srv/www/locked dir" failed: Permission denied (13)',
      'file has vanished: "/srv/www/tmp/x"',
      'rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338) [generator=3.2.7]',
    ].join('\n');
    expect(unreadablePaths(err)).toEqual([
      '/srv/www/private.key (Permission denied (13))',
      '/srv/www/locked dir (Permission denied (13))',
      '/srv/www/tmp/x (vanished)',
    ]);
  });
});

describe('hash reuse', () => {
  const e: ManifestEntry = { p: 'files/a', t: 'f', s: 5, m: 100, mode: 0o644, u: 0, g: 0, h: 'ab'.repeat(32) };
  const id = { dev: 1n, ino: 42n, size: 5, mtime: 100 };
  it('reuses only for the same inode with matching size and mtime', () => {
    expect(reusableHash(id, id, e)).toBe(e.h);
    expect(reusableHash(id, { ...id, ino: 43n }, e)).toBeUndefined();
    expect(reusableHash(id, { ...id, dev: 2n }, e)).toBeUndefined();
    expect(reusableHash(id, id, { ...e, s: 6 })).toBeUndefined();
    expect(reusableHash(id, id, { ...e, m: 101 })).toBeUndefined();
    expect(reusableHash(id, undefined, e)).toBeUndefined();
    expect(reusableHash(id, id, undefined)).toBeUndefined();
    expect(reusableHash(id, id, { ...e, h: undefined })).toBeUndefined();
  });
  it('diffs manifests by raw path', () => {
    const bad = { pb: Buffer.from([0x66, 0xff]).toString('base64') };
    const a: ManifestEntry[] = [e, { ...e, p: undefined, ...bad }, { p: 'files/d', t: 'd', s: 0, m: 1, mode: 0o755, u: 0, g: 0 }];
    const b: ManifestEntry[] = [{ ...e, h: 'cd'.repeat(32) }, { p: 'files/d', t: 'd', s: 0, m: 2, mode: 0o755, u: 0, g: 0 }, { ...e, p: 'files/new' }];
    expect(diffManifests(a, b)).toEqual({ added: ['files/new'], removed: ['f\xff'], changed: ['files/a', 'files/d'] });
    expect(diffManifests(a, b, { ignoreDirMtime: true }).changed).toEqual(['files/a']);
  });
});

const config = {
  version: 1,
  inventory: { servers: [] },
  paths: { sshKeyFile: '/etc/pullvault/id ed25519', knownHostsFile: '/etc/pullvault/known_hosts', dataDir: '/srv/b', recipientKeysDir: '/k' },
  connect: { web: { host: '10.0.0.5', port: 2222 } },
} as unknown as RuntimeConfig;
const server = { name: 'web', ssh: { host: 'web.example.org', hostKey: 'ssh-ed25519 AAAA' }, backupUser: 'pv', paths: [{ path: '/srv/www' }] };

describe('argv builders', () => {
  it('ssh: pinned, key-only, batch; connect override; verb args checked', () => {
    const ep = endpointFor(config, server);
    expect(ep).toEqual({ user: 'pv', host: '10.0.0.5', port: 2222 });
    const a = sshVerbArgv(config, ep, 'mysql-dump', 'shop');
    expect(a).toEqual(expect.arrayContaining(['-i', '/etc/pullvault/id ed25519', 'IdentitiesOnly=yes', 'StrictHostKeyChecking=yes', 'BatchMode=yes', 'UserKnownHostsFile=/etc/pullvault/known_hosts']));
    expect(a.slice(-2)).toEqual(['pv@10.0.0.5', 'mysql-dump shop']);
    expect(() => sshVerbArgv(config, ep, 'mysql-dump', 'shop; rm -rf /')).toThrow(/refusing/);
    expect(endpointFor({ ...config, connect: undefined }, server)).toEqual({ user: 'pv', host: 'web.example.org', port: 22 });
  });
  it('rsync: -aHAX --numeric-ids --delete, excludes, link-dest, -e quoted for rsync', () => {
    const ep = endpointFor(config, server);
    const a = rsyncArgv(config, ep, { root: '/srv/www', exclude: ['*.tmp', 'cache/'], dest: '/s/x.partial/files/srv/www', linkDest: '/s/prev/files/srv/www' });
    expect(a.slice(0, 4)).toEqual(['rsync', '-aHAX', '--numeric-ids', '--delete']);
    expect(a).toContain('--exclude=*.tmp');
    expect(a).toContain('--link-dest=/s/prev/files/srv/www');
    expect(a[a.indexOf('-e') + 1]).toContain("-i '/etc/pullvault/id ed25519'");
    expect(a.slice(-2)).toEqual(['pv@10.0.0.5:/srv/www/', '/s/x.partial/files/srv/www/']);
    expect(a.some((x) => x.startsWith('--out-format'))).toBe(false);
    // names for the pre-hasher: logged after each transfer (%b), never mixed into a progress display
    const job = { root: '/srv/www', exclude: [], dest: '/s/x' };
    expect(rsyncArgv(config, ep, { ...job, listNames: true })).toContain('--out-format=%b %i %n');
    const p = rsyncArgv(config, ep, { ...job, listNames: true, progress: true });
    expect(p).toContain('--info=progress2');
    expect(p.some((x) => x.startsWith('--out-format'))).toBe(false);
    expect(rsyncShellWord("it's")).toBe(`'it'"'"'s'`);
    expect(filesDirFor('/s/x', '/')).toBe('/s/x/files');
    expect(filesDirFor('/s/x', '/srv/www/')).toBe('/s/x/files/srv/www');
  });
});

const info = (over: Partial<SnapshotInfo> = {}): SnapshotInfo => ({
  version: 1, server: 'web', id: '20240630T120000Z', startedAt: '2024-06-30T12:00:00.000Z', finishedAt: '2024-06-30T12:01:00.000Z',
  partial: false, unreadable: [], dumps: [], stats: { files: 10, bytes: 2048, hashedFiles: 1, hashedBytes: 5, seconds: 60 }, ...over,
});

describe('status and Prometheus text', () => {
  const run = { finishedAt: new Date('2024-06-30T12:02:00Z') };
  const record = finishedRecord(startedRecord(42, '1000', new Date('2024-06-30T12:00:00Z')), run.finishedAt, 1, { failed: ['db'] });
  const results: PullResult[] = [
    { server: 'web', ok: true, snapshot: { id: '20240630T120000Z', dir: '/x', info: info({ partial: true, unreadable: ['/a (Permission denied (13))'] }) } },
    { server: 'db', ok: false, error: '/srv: rsync exit 255 (ssh failed)' },
  ];
  const prev = nextStatus(emptyStatus(), { finishedAt: new Date('2024-06-29T12:00:00Z') }, [
    { server: 'db', ok: true, snapshot: { id: '20240629T115900Z', dir: '/y', info: info({ server: 'db', id: '20240629T115900Z', finishedAt: '2024-06-29T12:00:00.000Z' }) } },
  ]);
  const doc = nextStatus(prev, run, results, { web: 3 });

  it('a failed server keeps its last snapshot and last success', () => {
    expect(doc.servers.db).toMatchObject({ ok: false, error: '/srv: rsync exit 255 (ssh failed)', lastSnapshot: '20240629T115900Z', lastSuccessAt: '2024-06-29T12:00:00.000Z' });
    expect(doc.servers.web).toMatchObject({ ok: true, partial: true, snapshots: 3, lastSuccessAt: '2024-06-30T12:02:00.000Z' });
  });
  it('renders a table for people', () => {
    const t = renderStatus(doc, ['web', 'db', 'new'], new Date('2024-06-30T14:00:00Z'), { record, state: 'failed' });
    expect(t).toMatch(/^last run: 2024-06-30T12:02:00.000Z \(2.0h ago\), exit 1, failed: db$/m);
    expect(t).toMatch(/^web\s+ok\s+20240630T120000Z\s+2.0h\s+10\s+2.0 KiB\s+partial\(1 unreadable\)$/m);
    expect(t).toMatch(/^db\s+FAILED\s+20240629T115900Z\s+26.0h/m);
    expect(t).toMatch(/^new\s+never/m);
    expect(t).toMatch(/^db: \/srv: rsync exit 255/m);
  });
  it('renders the node_exporter textfile format', () => {
    const p = prometheusText(doc, record);
    expect(p).toContain('# TYPE pullvault_server_up gauge\npullvault_server_up{server="db"} 0\npullvault_server_up{server="web"} 1\n');
    expect(p).toMatch(/^pullvault_last_run_timestamp_seconds 1719748920$/m);
    expect(p).toMatch(/^pullvault_snapshot_partial\{server="web"\} 1$/m);
    expect(p).toMatch(/^pullvault_server_last_success_timestamp_seconds\{server="db"\} 1719662400$/m);
    expect(p).toMatch(/^pullvault_last_run_duration_seconds 120$/m);
    expect(p).toMatch(/^pullvault_last_run_outcome\{outcome="failed"\} 1$/m);
    for (const line of p.trim().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{(server|outcome)="[^"]*"\})? -?[\d.e+]+)$/);
  });
});

describe('healthcheck pings', () => {
  it('start / success / fail go to URL+/start, URL, URL+/fail; failures and timeouts never throw', async () => {
    const seen: string[] = [];
    const srv = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      if (req.url?.includes('slow')) return; // never answers
      res.end('OK');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/ping/abc-token`;
    const logs: string[] = [];
    try {
      expect(await ping(base, 'start', '', (s) => logs.push(s))).toBe(true);
      expect(await ping(base, 'success', 'ok', (s) => logs.push(s))).toBe(true);
      expect(await ping(base + '/', 'fail', 'x', (s) => logs.push(s))).toBe(true);
      expect(seen).toEqual(['POST /ping/abc-token/start', 'POST /ping/abc-token', 'POST /ping/abc-token/fail']);
      const t0 = Date.now();
      expect(await ping(`${base}/slow`, 'success', '', (s) => logs.push(s), 300)).toBe(false);
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(await ping('http://127.0.0.1:1/x', 'fail', '', (s) => logs.push(s))).toBe(false);
      expect(await ping(undefined, 'fail', '', (s) => logs.push(s))).toBe(false);
      expect(logs.join('\n')).toMatch(/timeout/);
      expect(logs.join('\n')).not.toContain('abc-token'); // the URL's secret part is never logged
      expect(pingUrl('https://hc/x', 'start')).toBe('https://hc/x/start');
    } finally {
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
    }
  });
});
