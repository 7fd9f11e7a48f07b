// First-boot reachability, pure: what makes a freshly written card accept the admin's SSH key with
// the host key pinned in state/. Reproduced from Raspberry Pi OS (pi-gen stage2 01-sys-tweaks and
// raspberrypi-sys-mods, bookworm/trixie):
// - pi-gen disables ssh.service; sshswitch.service enables it only when bootfs holds an `ssh` file.
//   Here: `systemctl enable ssh` in the chroot.
// - regenerate_ssh_host_keys.service (enabled by pi-gen) deletes /etc/ssh/ssh_host_*_key* and runs
//   `ssh-keygen -A` at first boot, then disables itself: masked here, so the key installed below
//   stays the one pinned in state/.
// - userconf-pi's userconfig.service (the "create a user" wizard on tty8, armed by pi-gen's
//   `rename-user -f -s`) is masked; its sshd banner drop-in (rename_user.conf, assumed name) goes.
//   The admin login comes from the inventory (pi.ssh.admin, default root) instead.
// - trixie images run cloud-init from bootfs (user-data, network-config): disabled with cloud-init's
//   own switch, /etc/cloud/cloud-init.disabled; hostname and users are set here instead.
// - rpi-resize / resize2fs_once would grow an ext4 partition that now sits under LUKS: masked
//   (pullvault-grow-root.service grows it through the mapping).
import type { Inventory } from '../../contract/inventory-schema.ts';
import { adminLogin, sshPort } from '../../contract/inventory-defaults.ts';
import { HEADER, render, type RootFile, type Templates } from './plan.ts';

export const HOST_KEY_PATH = '/etc/ssh/ssh_host_ed25519_key';
export const SSHD_DROP_IN = '/etc/ssh/sshd_config.d/pullvault.conf';
export const SUDOERS_DROP_IN = '/etc/sudoers.d/010_pullvault-admin';
export const CLOUD_INIT_DISABLED = '/etc/cloud/cloud-init.disabled';
/** Pi OS first-boot units that would undo or block what provision-pi set up. */
export const MASKED_UNITS = ['regenerate_ssh_host_keys.service', 'userconfig.service', 'rpi-resize.service', 'resize2fs_once.service'];
export const ENABLED_UNITS = ['ssh.service'];
/** files Pi OS may ship that contradict the setup here */
export const REMOVED_FILES = ['/etc/ssh/sshd_config.d/rename_user.conf'];

export interface AccessFacts {
  hostPrivateKey: string;
  hostPublicKey: string;
  /** the admin's public key (one line) */
  adminPublicKey?: string;
  /** the root has /etc/cloud (cloud-init installed) */
  hasCloudInit: boolean;
}

export function adminUser(inv: Inventory): string {
  return inv.pi.ssh ? adminLogin(inv.pi.ssh) : 'root';
}

export function adminHome(user: string): string {
  return user === 'root' ? '/root' : `/home/${user}`;
}

/** The known_hosts line that pins the Pi's host key (state/<pi>/known_hosts). */
export function piKnownHostsLine(inv: Inventory, hostPublicKey: string): string | undefined {
  const ssh = inv.pi.ssh;
  if (!ssh) return undefined;
  const port = sshPort(ssh);
  const key = hostPublicKey.trim().split(/\s+/).slice(0, 2).join(' ');
  return `${port === 22 ? ssh.host : `[${ssh.host}]:${port}`} ${key}`;
}

/**
 * The host key install-runtime pins for the Pi: the one provision-pi put on the card and wrote to
 * state/<pi>/known_hosts (a line for the Pi's host[:port]) first, else pi.ssh.hostKey. Pure: the
 * file's text comes in (undefined when there is none).
 */
export function piHostKeyPin(inv: Inventory, knownHosts: string | undefined, knownHostsFile: string): { hostKey: string; source: string } {
  const ssh = inv.pi.ssh;
  if (!ssh) throw new Error(`pi.ssh: not set; install-runtime needs the Pi's address: "pi": {"ssh": {"host": …}}`);
  const port = sshPort(ssh);
  const pattern = port === 22 ? ssh.host : `[${ssh.host}]:${port}`;
  for (const line of (knownHosts ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3 || f[0].startsWith('#') || f[0].startsWith('@')) continue;
    if (f[0].split(',').includes(pattern)) return { hostKey: `${f[1]} ${f[2]}`, source: knownHostsFile };
  }
  if (ssh.hostKey) return { hostKey: publicKeyBody(ssh.hostKey), source: 'pi.ssh.hostKey' };
  throw new Error(
    knownHosts === undefined
      ? `the Pi's host key is not known: ${knownHostsFile} does not exist and pi.ssh.hostKey is not set. Build the card with make provision-pi (it pins the key it installs there), or set pi.ssh.hostKey to the key shown on the Pi's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)`
      : `the Pi's host key is not known: ${knownHostsFile} has no line for ${pattern} and pi.ssh.hostKey is not set. Re-run make provision-pi for this inventory, or set pi.ssh.hostKey`,
  );
}

/** "<type> <base64>" of a public key line, without its comment. */
export function publicKeyBody(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(' ');
}

export function accessFiles(inv: Inventory, f: AccessFacts, templates: Templates): RootFile[] {
  const user = adminUser(inv);
  const files: RootFile[] = [
    { path: HOST_KEY_PATH, mode: 0o600, content: f.hostPrivateKey, sensitive: true },
    { path: `${HOST_KEY_PATH}.pub`, mode: 0o644, content: f.hostPublicKey },
    { path: SSHD_DROP_IN, mode: 0o644, content: render(templates, 'sshd-config', { header: HEADER, hostKeyPath: HOST_KEY_PATH, permitRootLogin: user === 'root' ? 'prohibit-password' : 'no' }) },
  ];
  if (f.adminPublicKey) files.push({ path: `${adminHome(user)}/.ssh/authorized_keys`, mode: 0o600, content: `${publicKeyBody(f.adminPublicKey)} pullvault-admin\n` });
  if (user !== 'root') files.push({ path: SUDOERS_DROP_IN, mode: 0o440, content: render(templates, 'sudoers-admin', { header: HEADER, adminUser: user }) });
  if (f.hasCloudInit) files.push({ path: CLOUD_INIT_DISABLED, mode: 0o644, content: `# ${HEADER}\n` });
  return files;
}
