// First-boot reachability, pure: the host key from state/ goes in (and is what state/ pins), the
// admin's key is authorized for pi.ssh.admin, sshd takes only that key and no passwords, and the
// Pi OS first-boot units that regenerate host keys or run the user wizard are masked.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { accessFiles, adminHome, CLOUD_INIT_DISABLED, HOST_KEY_PATH, MASKED_UNITS, piHostKeyPin, piKnownHostsLine, SSHD_DROP_IN, SUDOERS_DROP_IN } from '../../provision/image/access.ts';
import { loadTemplates } from '../../provision/image/build.ts';
import { rootPackages } from '../../provision/image/plan.ts';
import type { Inventory } from '../../contract/inventory-schema.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const templates = loadTemplates();
const inventory = (): Inventory => JSON.parse(readFileSync(path.join(REPO, 'inventory.json'), 'utf8')) as Inventory;
/** A real ed25519 key pair made for this run by ssh-keygen (no key material lives in the tree). */
function sshKeyPair(comment: string): { priv: string; pub: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'pv-image-access-'));
  try {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path.join(dir, 'k')]);
    return { priv: readFileSync(path.join(dir, 'k'), 'utf8'), pub: readFileSync(path.join(dir, 'k.pub'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const host = sshKeyPair('root@pi01');
const HOST_PUB = host.pub;
const HOST_BODY = HOST_PUB.split(' ').slice(0, 2).join(' ');
const ADMIN_PUB = sshKeyPair('me@laptop').pub.trim();
const ADMIN_BODY = ADMIN_PUB.split(' ').slice(0, 2).join(' ');
const facts = { hostPrivateKey: host.priv, hostPublicKey: HOST_PUB, adminPublicKey: ADMIN_PUB, hasCloudInit: false };

describe('first boot: reachable with the pinned host key', () => {
  it('root admin: host key (0600, sensitive), authorized_keys in /root, key-only sshd, no sudoers', () => {
    const files = new Map(accessFiles(inventory(), facts, templates).map((f) => [f.path, f]));
    expect(files.get(HOST_KEY_PATH)).toMatchObject({ mode: 0o600, sensitive: true, content: facts.hostPrivateKey });
    expect(files.get(`${HOST_KEY_PATH}.pub`)?.content).toBe(HOST_PUB);
    expect(files.get('/root/.ssh/authorized_keys')).toMatchObject({ mode: 0o600, content: `${ADMIN_BODY} pullvault-admin\n` });
    const sshd = String(files.get(SSHD_DROP_IN)?.content);
    expect(sshd).toMatch(new RegExp(`^HostKey ${HOST_KEY_PATH}$`, 'm'));
    expect(sshd).toMatch(/^PasswordAuthentication no$/m);
    expect(sshd).toMatch(/^PermitRootLogin prohibit-password$/m);
    expect(files.has(SUDOERS_DROP_IN)).toBe(false);
    expect(files.has(CLOUD_INIT_DISABLED)).toBe(false);
  });

  it('a named admin gets its home, passwordless sudo, and root logins are refused; cloud-init off when present', () => {
    const inv = inventory();
    inv.pi.ssh!.admin = 'ops';
    const files = new Map(accessFiles(inv, { ...facts, hasCloudInit: true }, templates).map((f) => [f.path, f]));
    expect(adminHome('ops')).toBe('/home/ops');
    expect(files.has('/home/ops/.ssh/authorized_keys')).toBe(true);
    expect(files.has('/root/.ssh/authorized_keys')).toBe(false);
    expect(files.get(SUDOERS_DROP_IN)).toMatchObject({ mode: 0o440 });
    expect(String(files.get(SUDOERS_DROP_IN)?.content)).toMatch(/^ops ALL=\(ALL\) NOPASSWD: ALL$/m);
    expect(String(files.get(SSHD_DROP_IN)?.content)).toMatch(/^PermitRootLogin no$/m);
    expect(files.has(CLOUD_INIT_DISABLED)).toBe(true);
  });

  it('the pin in state/ names the Pi as install-runtime dials it; Pi OS key regeneration and the wizard are masked', () => {
    const inv = inventory();
    expect(piKnownHostsLine(inv, HOST_PUB)).toBe(`pi01.home.arpa ${HOST_BODY}`);
    inv.pi.ssh!.port = 2222;
    expect(piKnownHostsLine(inv, HOST_PUB)).toMatch(/^\[pi01\.home\.arpa\]:2222 ssh-ed25519 /);
    delete inv.pi.ssh;
    expect(piKnownHostsLine(inv, HOST_PUB)).toBeUndefined();
    expect(MASKED_UNITS).toEqual(expect.arrayContaining(['regenerate_ssh_host_keys.service', 'userconfig.service']));
  });

  it('the runtime\'s dependencies are installed in the chroot', () => {
    expect(rootPackages(inventory().pi)).toEqual(expect.arrayContaining(['nodejs', 'rsync', 'zstd', 'openssh-client', 'openssh-server', 'cron', 'findutils', 'util-linux']));
  });

  it('a root whose systemd lacks the crypttab generator (trixie) gets systemd-cryptsetup, else the data disk never unlocks', () => {
    expect(rootPackages(inventory().pi, { cryptsetupGenerator: false })).toContain('systemd-cryptsetup');
    // bookworm: the generator is in systemd itself, and no package of that name exists
    expect(rootPackages(inventory().pi, { cryptsetupGenerator: true })).not.toContain('systemd-cryptsetup');
  });
});

describe('install-runtime: which host key it pins for the Pi', () => {
  const FILE = 'state/pi01/known_hosts';
  const other = sshKeyPair('root@elsewhere').pub.split(' ').slice(0, 2).join(' ');
  const withPi = (ssh: Record<string, unknown> | undefined): Inventory => {
    const inv = inventory();
    if (ssh === undefined) delete inv.pi.ssh;
    else inv.pi.ssh = ssh as Inventory['pi']['ssh'];
    return inv;
  };
  it('state/<pi>/known_hosts (what provision-pi put on the card) first, over pi.ssh.hostKey', () => {
    const inv = withPi({ host: 'pi01.home.arpa', hostKey: other });
    const text = `${piKnownHostsLine(inv, HOST_PUB)}\n`;
    expect(piHostKeyPin(inv, text, FILE)).toEqual({ hostKey: HOST_BODY, source: FILE });
  });
  it('the line must name the Pi as the SSH client would look it up: host, or [host]:port off port 22', () => {
    const inv22 = withPi({ host: 'pi01.home.arpa' });
    const inv2222 = withPi({ host: 'pi01.home.arpa', port: 2222 });
    expect(piKnownHostsLine(inv2222, HOST_PUB)).toBe(`[pi01.home.arpa]:2222 ${HOST_BODY}`);
    expect(piHostKeyPin(inv2222, `${piKnownHostsLine(inv2222, HOST_PUB)}\n`, FILE).hostKey).toBe(HOST_BODY);
    // a line for another host, a comment, a marker line, or the port-22 form for a port-2222 Pi: not a pin
    const text = `# ${HOST_BODY}\n@revoked pi01.home.arpa ${HOST_BODY}\nother.example ${HOST_BODY}\npi01.home.arpa ${HOST_BODY}\n`;
    expect(() => piHostKeyPin(inv2222, text, FILE)).toThrow(`${FILE} has no line for [pi01.home.arpa]:2222 and pi.ssh.hostKey is not set`);
    expect(piHostKeyPin(inv22, text, FILE)).toEqual({ hostKey: HOST_BODY, source: FILE });
    expect(piHostKeyPin(inv22, `10.0.0.9,pi01.home.arpa ${HOST_BODY} c\n`, FILE).hostKey).toBe(HOST_BODY);
  });
  it('no state file: pi.ssh.hostKey; neither: an error that says how to get one', () => {
    expect(piHostKeyPin(withPi({ host: 'pi01.home.arpa', hostKey: other }), undefined, FILE)).toEqual({ hostKey: other, source: 'pi.ssh.hostKey' });
    expect(() => piHostKeyPin(withPi({ host: 'pi01.home.arpa' }), undefined, FILE)).toThrow(/state\/pi01\/known_hosts does not exist and pi\.ssh\.hostKey is not set\. Build the card with make provision-pi/);
    expect(() => piHostKeyPin(withPi(undefined), undefined, FILE)).toThrow(/^pi\.ssh: not set/);
  });
});
