// `make provision-pi`: Raspberry Pi OS Lite image → encrypted SD-card image + USB key image.
// Composes: read inventory → check base image → plan (pure, image/plan.ts) → build (image/build.ts).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { resolveInventoryPath, type LoadedInventory } from './inventory/validate.ts';
import { defineCommand } from './cli-common.ts';
import { buildImage, checkBaseLayout, hostArch, loadTemplates, sha256File } from './image/build.ts';
import { decideLuksWhere } from './image/luks-guest.ts';
import { planSteps, luksPlan } from './image/plan.ts';
import { phaseRunner } from './image/phases.ts';
import { haveSecrets, loadOrCreateSecrets, piStateDir } from './image/secrets.ts';
import { run } from '../lib/proc/index.ts';
import { piKnownHostsLine, publicKeyBody } from './image/access.ts';
import { installRuntimeInto } from './runtime-install.ts';
import { tangAdvertisements } from './image/unlock.ts';
import { unlockKnownHostsLine } from './image/unlock-plan.ts';
import { unlockSshPort } from '../contract/inventory-defaults.ts';

const USAGE = `usage: provision-pi [--inventory FILE] [--state DIR] [--dry-run] [--rotate] [--keep-work]

Turns the Raspberry Pi OS Lite base image named in the inventory (pi.baseImage) into
  state/<pi>/sdcard.img   LUKS2 root, unlocked at boot by the USB key or the recovery passphrase
  state/<pi>/usbkey.img   the USB key (label pi.usbKey.label) holding the root's keyfile
  state/<pi>/ssh_host_ed25519_key.pub  the Pi's SSH host key, installed in the image and pinned in
                          state/<pi>/known_hosts (install-runtime dials the Pi with it);
                          the admin key (pi.ssh.adminKeyFile's public half) is authorized for pi.ssh.admin
Write them with: make write-sd DEVICE=/dev/sdX   and   make write-usbkey DEVICE=/dev/sdY

  --inventory FILE  inventory (default: $INVENTORY or ./inventory.json)
  --state DIR       state folder (default: $PULLVAULT_STATE or <inventory folder>/state)
  --dry-run         check the inventory and base image, list what would be built, change nothing
  --rotate          new LUKS UUID, USB keyfile, recovery passphrase, data-disk key and Pi SSH key
  --keep-work       keep state/<pi>/work (the unpacked root) for debugging
Runs as root on a Debian/Ubuntu machine; needs no device-mapper and no loop devices.`;

/**
 * The admin's public key to authorize on the Pi: pi.ssh.adminKeyFile's .pub (or derived from the
 * private key), else the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa — the keys install-runtime logs in with.
 */
export async function adminPublicKey(loaded: LoadedInventory): Promise<string | undefined> {
  const ssh = loaded.inventory.pi.ssh;
  if (!ssh) return undefined;
  const fromPrivate = async (file: string) => {
    if (existsSync(`${file}.pub`)) return readFileSync(`${file}.pub`, 'utf8').trim();
    try {
      return (await run(['ssh-keygen', '-y', '-P', '', '-f', file])).stdout.trim();
    } catch {
      throw new Error(`pi.ssh.adminKeyFile: cannot derive the public key from ${file} (passphrase-protected?); put it next to it as ${file}.pub`);
    }
  };
  if (ssh.adminKeyFile) {
    const file = resolveInventoryPath(loaded.dir, ssh.adminKeyFile);
    if (!existsSync(file)) throw new Error(`pi.ssh.adminKeyFile: ${file} does not exist`);
    return fromPrivate(file);
  }
  for (const n of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
    const f = path.join(homedir(), '.ssh', n);
    if (existsSync(f)) return fromPrivate(f);
  }
  throw new Error('pi.ssh.adminKeyFile is not set and there is no ~/.ssh/id_ed25519 (or id_ecdsa, id_rsa): the Pi would accept no login; set pi.ssh.adminKeyFile in the inventory');
}

export const command = defineCommand({
  help: USAGE,
  options: {
    rotate: { type: 'boolean', default: false },
    'keep-work': { type: 'boolean', default: false },
  },
  inventory: true,
  dryRun: true,
  async run({ values, dryRun, loaded, state: stateDir }) {
    const t0 = Date.now();
    const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s]`;
    const log = (s: string) => console.log(`${stamp()} ${s}`);
    const { inventory, dir } = loaded;
    const pi = inventory.pi;
    const baseImage = resolveInventoryPath(dir, pi.baseImage.path);
    if (!/\.img(\.xz)?$/.test(baseImage)) throw new Error(`pi.baseImage.path: ${baseImage} must be a .img or .img.xz file`);
    if (!existsSync(baseImage)) throw new Error(`pi.baseImage.path: ${baseImage} does not exist (download Raspberry Pi OS Lite arm64 and point the inventory at it)`);
    luksPlan(pi); // fails early if the model has no cipher

    const awsCreds = path.join(stateDir, 'aws', 'writer-credentials.json');
    // one plan: the dry run prints it, the build runs it phase by phase (image/phases.ts)
    const steps = planSteps(inventory, {
      baseImage,
      stateDir,
      rotate: values.rotate,
      haveState: haveSecrets(piStateDir(stateDir, pi.name)),
      haveS3Credentials: existsSync(awsCreds),
      hostArch: hostArch(),
    });
    const { phase, finish } = phaseRunner(steps, log);

    // the base image's checksum, before anything else, then its layout (seconds, read-only): a
    // Debian raspi-firmware or other image is refused here, in a dry run too
    await phase('verify-base', async () => {
      const got = await sha256File(baseImage);
      if (got !== pi.baseImage.sha256) throw new Error(`pi.baseImage.sha256: ${baseImage} has sha256 ${got}, the inventory pins ${pi.baseImage.sha256}; refusing to build from an unexpected image`);
    });
    await phase('check-base', () => checkBaseLayout(baseImage, pi));

    if (dryRun) {
      console.log(`provision-pi --dry-run: would build for ${pi.name} (${pi.model}, ${pi.arch ?? 'arm64'}):`);
      for (const s of steps) console.log(`  - ${s.id}: ${s.title}${s.detail ? `\n      ${s.detail}` : ''}`);
      console.log('nothing changed');
      return 0;
    }
    if (process.getuid?.() !== 0) throw new Error('provision-pi must run as root (chroot, file ownership in the image)');

    const adminKey = await adminPublicKey(loaded);
    const l = luksPlan(pi);
    const luksWhere = await phase('preflight', async () => {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      const w = await decideLuksWhere(l, pi.arch ?? 'arm64', stateDir);
      log(w.where === 'host' ? '  on this machine (cryptsetup in userspace)' : `  in a VM: this machine's kernel lacks ${l.cipher} (${w.qemu}, ${w.accel})`);
      return w;
    });
    const secrets = await phase('secrets', () => loadOrCreateSecrets(stateDir, pi.name, { rotate: values.rotate, baseSha256: pi.baseImage.sha256, unlockSsh: !!pi.unlock?.ssh }));
    const tangAdv = pi.unlock?.tang?.length
      ? await phase('tang-adv', () => tangAdvertisements(pi, secrets.dir, (p) => resolveInventoryPath(dir, p)))
      : undefined;
    log(secrets.created ? `secrets: generated new keys in ${secrets.dir} (0600)` : `secrets: reusing LUKS UUID ${secrets.rootUuid} and keys from ${secrets.dir}`);
    const res = await buildImage(
      {
        inventory,
        baseImage,
        stateDir,
        secrets,
        templates: loadTemplates(),
        log,
        installRuntime: async (rootDir) => {
          const summary = await installRuntimeInto(rootDir, loaded, { stateDir });
          if (summary.failed || summary.skipped) throw new Error(`installRuntimeInto: ${summary.failed} step(s) failed, ${summary.skipped} skipped`);
        },
        s3Credentials: existsSync(awsCreds) ? readFileSync(awsCreds, 'utf8') : undefined,
        adminPublicKey: adminKey,
        keepWork: values['keep-work'],
        luksWhere,
        tangAdvertisements: tangAdv,
        wifiPsk: pi.wifi ? readFileSync(resolveInventoryPath(dir, pi.wifi.pskFile), 'utf8') : undefined,
      },
      phase,
    );
    finish();
    log(`built ${res.sdcard} and ${res.usbkey}`);
    log(`the Pi's SSH public key (for provision-server): ${secrets.sshPubFile}`);
    const hostPub = readFileSync(secrets.hostPubFile, 'utf8');
    const pin = piKnownHostsLine(inventory, hostPub);
    const unlockPin = secrets.unlockHostPubFile ? unlockKnownHostsLine(pi, readFileSync(secrets.unlockHostPubFile, 'utf8')) : undefined;
    if (pin) writeFileSync(path.join(secrets.dir, 'known_hosts'), [pin, ...(unlockPin ? [unlockPin] : [])].join('\n') + '\n', { mode: 0o644 });
    if (unlockPin) {
      console.log(`\n  SSH unlock (dropbear in the initramfs): add to your known_hosts, then: ssh -p ${unlockSshPort(pi)} root@${pi.ssh?.host} cryptroot-unlock\n`);
      console.log(`      ${unlockPin}\n`);
    }
    if (pi.ssh?.hostKey && publicKeyBody(pi.ssh.hostKey) !== publicKeyBody(hostPub))
      log(`pi.ssh.hostKey differs from the image's host key ${publicKeyBody(hostPub)}; install-runtime pins the image's, from ${path.join(secrets.dir, 'known_hosts')} (remove pi.ssh.hostKey or set it to that key)`);
    else if (pi.ssh) log(`the image's host key is pinned in ${path.join(secrets.dir, 'known_hosts')}${pi.ssh.hostKey ? ' (pi.ssh.hostKey matches)' : ''}`);
    if (secrets.created) {
      // shown once, on the terminal only; kept in state/ (0600) for the admin to copy to paper
      const pass = readFileSync(secrets.recoveryFile, 'utf8');
      console.log('\n  RECOVERY PASSPHRASE (LUKS keyslot 1) — write it down and keep it away from the Pi:\n');
      console.log(`      ${pass}\n`);
      console.log(`  (also in ${secrets.recoveryFile}, mode 0600; it will not be shown again)\n`);
    } else log(`recovery passphrase: unchanged (${secrets.recoveryFile})`);
    log(`next: make write-sd DEVICE=/dev/… ; make write-usbkey DEVICE=/dev/…`);
    return 0;
  },
});
