// One real backup from a booted Pi guest: a lab server (its own namespaces, sshd) provisioned by
// provision-server, the runtime installed by install-runtime over the guest's sshd, then the cron
// job `pullvault run` inside the guest pulling the server over SSH. The guest dials
// GUEST_SERVER_ADDRESS:22; qemu's guestfwd runs the lab host's socat bridge for each connection
// (the server sees 127.0.0.1, so that is the Pi's source address), and nothing listens on the
// machine's network. The offsite copy goes to a folder on the guest's own data disk.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { vaultLayout } from '../../contract/disk-layout.ts';
import type { Inventory } from '../../contract/inventory-schema.ts';
import { buildRuntime } from '../../provision/build-runtime.ts';
import { Redactor, TextReporter } from '../../provision/engine/index.ts';
import type { SshExecutor } from '../../provision/exec/ssh.ts';
import { loadInventory } from '../../provision/inventory/validate.ts';
import { INSTALL_PATHS, installRuntimeOverSsh } from '../../provision/runtime-install.ts';
import { provisionServer } from '../../provision/server.ts';
import { startHost, type LabHost } from '../lab/index.ts';

/** every exit code: the caller judges it */
const ANY_EXIT = Array.from({ length: 256 }, (_, i) => i);

/** where the guest finds the lab server (qemu user networking's 10.0.2.0/24, not the machine's) */
export const GUEST_SERVER_ADDRESS = '10.0.2.50';
export const GUEST_SERVER_FILE = '/srv/site/index.html';

export interface GuestServer {
  host: LabHost;
  /** the -nic guestfwd= option that reaches the server's sshd */
  guestfwd: string;
  /** what GUEST_SERVER_FILE holds on the server */
  content: string;
}

/** Started before the guest boots: qemu takes the guestfwd at start. */
export async function startGuestServer(dir: string, content: string): Promise<GuestServer> {
  const host = await startHost({ name: 'web1' });
  await host.writeFile(GUEST_SERVER_FILE, content);
  // the backup user reads it as "other" (rrsync chdirs into the granted path)
  await host.exec(['chmod', '0755', path.posix.dirname(GUEST_SERVER_FILE)]);
  // qemu runs the command with the connection on stdin, stdout and stderr: socat's own words go elsewhere
  const wrapper = path.join(dir, 'web1-sshd.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${host.proxyCommand} 2>/dev/null\n`, { mode: 0o755 });
  return { host, guestfwd: `guestfwd=tcp:${GUEST_SERVER_ADDRESS}:22-cmd:${wrapper}`, content };
}

export interface GuestRun {
  /** the cron job's exit code and output inside the guest */
  code: number;
  output: string;
  /** the server's newest snapshot on the guest's data disk, and GUEST_SERVER_FILE in it */
  snapshot?: string;
  file?: string;
  status: string;
}

/**
 * provision-server (for the web1 lab host), install-runtime into the guest, then `pullvault run` as
 * cron runs it. invFile is the card's inventory; its servers and offsite are replaced for this run.
 */
export async function backupFromGuest(o: { invFile: string; stateDir: string; server: GuestServer; exec: SshExecutor; log: (s: string) => void }): Promise<GuestRun> {
  const base = await loadInventory(o.invFile);
  const inventory: Inventory = structuredClone(base.inventory);
  const web1 = o.server.host;
  inventory.pi.sourceAddress = '127.0.0.1';
  // the lab's data disk is small, and the guest reaches no healthcheck or mail host
  inventory.pi.dataDisk.minFreeMiB = 8;
  delete (inventory as { notifications?: unknown }).notifications;
  inventory.servers = [{ name: 'web1', ssh: { host: GUEST_SERVER_ADDRESS, port: 22, hostKey: web1.hostKey, admin: 'root', adminKeyFile: web1.adminKeyFile }, paths: [{ path: '/srv/site' }] }];
  const offsiteDir = `${inventory.pi.dataDisk.mountpoint}/offsite`;
  inventory.offsite = { type: 'dir', path: offsiteDir };
  const loaded = { ...base, inventory };
  const redactor = new Redactor();
  const reporter = new TextReporter(redactor, (l: string) => o.log(`  ${l}`));
  const piPublicKey = readFileSync(path.join(o.stateDir, inventory.pi.name, 'pi_ssh_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  const server = await provisionServer(inventory, inventory.servers[0]!, { sock: () => web1.sock(), piPublicKey, reporter, inventoryDir: loaded.dir });
  if (server.problems.length || server.summary?.failed) throw new Error(`provision-server web1: ${[...server.problems, ...(server.summary?.results ?? []).filter((r) => r.status === 'failed').map((r) => `${r.id}: ${r.error}`)].join('; ')}`);
  // sshd answers before the data disk (nofail, unlocked by a keyfile under TCG) is mounted: wait for
  // the boot to finish, then insist on the mount, or the backup would land on the root filesystem
  await o.exec.run(['timeout', '900', 'systemctl', 'is-system-running', '--wait'], { okCodes: ANY_EXIT });
  const mounted = await o.exec.run(['findmnt', '-n', '-o', 'SOURCE', inventory.pi.dataDisk.mountpoint], { okCodes: [0, 1] });
  if (!/\/dev\/mapper\//.test(mounted.stdout)) throw new Error(`guest: ${inventory.pi.dataDisk.mountpoint} is not mounted from the unlocked data disk (${mounted.stdout.trim() || 'not mounted'})`);
  await o.exec.run(['install', '-d', '-m', '0700', offsiteDir]);
  const bundle = await buildRuntime({ outFile: path.join(o.stateDir, 'pullvault.mjs') });
  const install = await installRuntimeOverSsh(loaded, { bundle, stateDir: o.stateDir, reporter, redactor });
  if (install.summary.failed) throw new Error(`install-runtime: ${install.summary.results.filter((r) => r.status === 'failed').map((r) => `${r.id}: ${r.error}`).join('; ')}`);
  o.log(`  installed: ${install.installedVersion}`);
  const r = await o.exec.run(['env', '-i', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'PULLVAULT_CRON=1', 'SHELL=/bin/sh', INSTALL_PATHS.cronRun], { okCodes: ANY_EXIT });
  const layout = vaultLayout(inventory.pi.dataDisk.mountpoint);
  const latest = await o.exec.run(['readlink', layout.latest('web1')], { okCodes: [0, 1] });
  const snapshot = latest.code === 0 ? path.posix.basename(latest.stdout.trim()) : undefined;
  const file = snapshot ? (await o.exec.run(['find', layout.snapshotDir('web1', snapshot), '-path', `*${GUEST_SERVER_FILE}`, '-exec', 'cat', '{}', ';'], { okCodes: [0, 1] })).stdout : undefined;
  const status = (await o.exec.run([INSTALL_PATHS.wrapper, 'status'], { okCodes: [0, 1] })).stdout;
  return { code: r.code, output: r.stdout + r.stderr, snapshot, file, status };
}
