import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { InventoryError, loadInventory, validateInventoryText } from '../../provision/inventory/validate.ts';
import { problemsOf } from '../fixtures/inventory-problems.ts';

const root = path.resolve(import.meta.dirname, '../..');
const example = JSON.parse(readFileSync(path.join(root, 'inventory.json'), 'utf8'));

type Json = Record<string, any>;

describe('the example inventory', () => {
  it('validates', async () => {
    const { inventory } = await loadInventory(path.join(root, 'inventory.json'));
    expect(inventory.servers.map((s) => s.name)).toEqual(['web1', 'db1']);
    expect(inventory.recipients).toHaveLength(2);
  });
});

// [what is wrong, mutation, the exact line expected among the errors]
const cases: [string, (inv: Json) => void, string][] = [
  ['port above range', (i) => (i.servers[1].ssh.port = 70000), 'inventory.json: servers[1].ssh.port: must be <= 65535'],
  ['port zero', (i) => (i.servers[0].ssh.port = 0), 'inventory.json: servers[0].ssh.port: must be >= 1'],
  ['port as string', (i) => (i.servers[0].ssh.port = '22'), 'inventory.json: servers[0].ssh.port: must be an integer'],
  ['unknown top-level key', (i) => (i.serverz = []), 'inventory.json: serverz: unknown key (check the spelling)'],
  ['unknown nested key', (i) => (i.servers[0].ssh.hostkey = 'x'), 'inventory.json: servers[0].ssh.hostkey: unknown key (check the spelling)'],
  ['missing servers', (i) => delete i.servers, 'inventory.json: servers: is required'],
  ['missing host key', (i) => delete i.servers[1].ssh.hostKey, 'inventory.json: servers[1].ssh.hostKey: is required'],
  ['empty server list', (i) => (i.servers = []), 'inventory.json: servers: must have at least 1 item'],
  ['bad host key', (i) => (i.servers[0].ssh.hostKey = 'ssh-ed25519'), 'inventory.json: servers[0].ssh.hostKey: must be an SSH public key: "<type> <base64>" without comment'],
  ['bad fingerprint', (i) => (i.recipients[0].fingerprint = '343f 798f'), 'inventory.json: recipients[0].fingerprint: must be an OpenPGP v4 fingerprint: 40 upper-case hex digits, no spaces'],
  ['fingerprint of another key', (i) => (i.recipients[0].fingerprint = i.recipients[1].fingerprint), 'inventory.json: recipients[0].fingerprint: pinned 8ECEE59D6526EF662E227461FF4E054D2D01C298 but'],
  ['missing key file', (i) => (i.recipients[1].publicKeyFile = 'keys/nope.asc'), 'inventory.json: recipients[1].publicKeyFile: cannot read'],
  ['only one recipient', (i) => (i.recipients = [i.recipients[0]]), 'inventory.json: recipients: must have at least 2 items'],
  ['bad cron', (i) => (i.schedule.pull = 'every hour'), 'inventory.json: schedule.pull: must be a 5-field cron expression'],
  ['cron with 4 fields', (i) => (i.schedule.pull = '0 * * *'), 'inventory.json: schedule.pull: must be a 5-field cron expression'],
  ['duplicate server names', (i) => (i.servers[1].name = 'web1'), 'inventory.json: servers[1].name: duplicate server name "web1" (also servers[0])'],
  ['bad model', (i) => (i.pi.model = 'pi2'), 'inventory.json: pi.model: must be one of "pi3", "pi4", "pi400", "cm4", "pi5", "pi500", "cm5", "zero2w"'],
  ['model without a cipher default', (i) => (i.pi.model = 'zero2w'), 'inventory.json: pi.model: "zero2w" has no default LUKS cipher; set pi.luks.cipher'],
  ['relative backup path', (i) => (i.servers[0].paths[0].path = 'home/alice'), 'inventory.json: servers[0].paths[0].path: must be an absolute path'],
  ['relative mountpoint', (i) => (i.pi.dataDisk.mountpoint = 'srv'), 'inventory.json: pi.dataDisk.mountpoint: must be an absolute path'],
  ['overlapping paths', (i) => i.servers[0].paths.push({ path: '/home/alice/Documents' }), 'inventory.json: servers[0].paths[3].path: "/home/alice/Documents" overlaps servers[0].paths[0].path "/home/alice"'],
  ['Debian backup user', (i) => (i.servers[0].backupUser = 'backup'), `inventory.json: servers[0].backupUser: "backup" is Debian's own system user (uid 34); choose another name, e.g. "pullvault"`],
  ['bad database name', (i) => (i.servers[0].databases.mariadb = ['shop;drop']), 'inventory.json: servers[0].databases.mariadb[0]: must be a database name: letters, digits, underscore'],
  ['database selection neither all nor list', (i) => (i.servers[1].databases.postgres = 'everything'), 'inventory.json: servers[1].databases.postgres: must be one of "all", a list'],
  ['bad offsite type', (i) => (i.offsite.type = 'ftp'), 'inventory.json: offsite.type: must be one of "s3", "dir"'],
  ['bad region', (i) => (i.offsite.region = 'Frankfurt'), 'inventory.json: offsite.region: must be an AWS region such as eu-central-1'],
  ['prefix without slash', (i) => (i.offsite.prefix = 'pi01'), 'inventory.json: offsite.prefix: must be a key prefix ending in /'],
  ['full expires before its incrementals', (i) => (i.offsite.retentionDays.full = 90), 'inventory.json: offsite.retentionDays.full: must be at least retentionDays.incremental + schedule.offsite.fullEveryDays + 1 (91): a full must outlive the incrementals built on it, which are kept 91 days'],
  ['bad sha256', (i) => (i.pi.baseImage.sha256 = 'abc'), 'inventory.json: pi.baseImage.sha256: must be 64 lower-case hex digits'],
  ['bad healthcheck URL', (i) => (i.notifications.healthcheckUrl = 'not a url'), 'inventory.json: notifications.healthcheckUrl: must be a valid uri'],
  ['bad mail address', (i) => (i.notifications.mailTo = 'owner'), 'inventory.json: notifications.mailTo: must be a valid email'],
  ['webhook not over HTTP', (i) => (i.notifications.webhook = { url: 'ftp://ntfy.example/x' }), 'inventory.json: notifications.webhook.url: must be an ntfy topic URL or any endpoint taking a POST'],
  ['webhook event unknown', (i) => (i.notifications.webhook = { url: 'https://ntfy.sh/x', events: ['done'] }), 'inventory.json: notifications.webhook.events[0]: must be one of "start", "ok", "partial", "refused", "failed"'],
  ['retention keeps nothing', (i) => (i.retention = { hourly: 0, daily: 0, weekly: 0, monthly: 0 }), 'inventory.json: retention: keeps nothing; set at least one of hourly, daily, weekly, monthly above 0'],
  ['negative retention', (i) => (i.retention.daily = -1), 'inventory.json: retention.daily: must be >= 0'],
  ['incrementals not more often than fulls', (i) => (i.schedule.offsite.incrementalEveryDays = 30), 'inventory.json: schedule.offsite.incrementalEveryDays: must be less than fullEveryDays (30)'],
  ['USB label too long', (i) => (i.pi.usbKey.label = 'MY-VERY-LONG-LABEL'), 'inventory.json: pi.usbKey.label: must be a volume label: up to 11 upper-case characters'],
  ['server name with capitals', (i) => (i.servers[0].name = 'Web1'), 'inventory.json: servers[0].name: must be a lower-case name (letters, digits, dashes; up to 32)'],
  ['group name invalid', (i) => (i.servers[0].groups = ['www data']), 'inventory.json: servers[0].groups[0]: must be a Unix user or group name'],
  ['s3 field on a dir target', (i) => (i.offsite = { type: 'dir', path: '/mnt/backup', bucket: 'x' }), 'inventory.json: offsite.bucket: unknown key (check the spelling)'],
  ['dir target with relative path', (i) => (i.offsite = { type: 'dir', path: 'backup' }), 'inventory.json: offsite.path: must be an absolute path'],
  ['same key twice as recipients', (i) => (i.recipients[1] = { ...i.recipients[0], name: 'escrow' }), 'inventory.json: recipients[1].fingerprint: same key as recipients[0]; an escrow copy needs a different key'],
];

describe('malformed inventories name the field', () => {
  it.each(cases)('%s', async (_what, mutate, expected) => {
    const lines = await problemsOf(mutate);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.some((l) => l.startsWith(expected)), `expected a line starting with\n  ${expected}\ngot\n  ${lines.join('\n  ')}`).toBe(true);
  });

  it('reports every problem at once, one line each', async () => {
    const lines = await problemsOf((i) => {
      i.servers[1].ssh.port = 70000;
      i.serverz = 1;
      i.schedule.pull = 'x';
    });
    expect(lines).toHaveLength(3);
  });

  it('refuses a recipient key that asks for AEAD (GnuPG 2.2 cannot read it) unless allowed', async () => {
    const openpgp = await import('openpgp');
    const { publicKey } = await openpgp.generateKey({ userIDs: [{ name: 'aead' }], format: 'armored', config: { aeadProtect: true } });
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const dir = mkdtempSync('/tmp/pv-inv-');
    writeFileSync(path.join(dir, 'aead.asc'), publicKey);
    const key = await openpgp.readKey({ armoredKey: publicKey });
    const inv = structuredClone(example);
    inv.recipients[1] = { name: 'aead', publicKeyFile: path.join(dir, 'aead.asc'), fingerprint: key.getFingerprint().toUpperCase() };
    for (const r of inv.recipients) if (!r.publicKeyFile.startsWith('/')) r.publicKeyFile = path.join(root, r.publicKeyFile);
    await expect(validateInventoryText(JSON.stringify(inv), 'inventory.json', dir)).rejects.toThrow(/recipients\[1\]\.publicKeyFile: .* asks for SEIPDv2\/AEAD/);
    inv.recipients[1].allowAead = true;
    await expect(validateInventoryText(JSON.stringify(inv), 'inventory.json', dir)).resolves.toBeTruthy();
  });

  it('rejects text that is not JSON with the file named', async () => {
    await expect(validateInventoryText('{ "pi": ', 'inv.json', root)).rejects.toThrow(/^inv\.json: not valid JSON/);
  });
});
