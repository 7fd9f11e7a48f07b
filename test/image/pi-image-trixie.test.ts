// provision-pi against the trixie Pi OS-shaped base (pios-base.ts: pi-gen arm64/trixie's config.txt and
// cmdline.txt with `resize`, Debian trixie's cloud-init armed with pi-gen's NoCloud files on bootfs,
// rpi-resize, userconf-pi's wizard, a 6.12 kernel with the Pi OS profile), on this amd64 machine.
//   control: the base booted as shipped runs cloud-init, rpi-resize and the wizard, and makes new host
//   keys at first boot: what a card must not do, so the card checks below can fail.
//   pi5 (aes-xts): both flavours, systemd-cryptsetup installed (trixie's crypttab generator), the stick
//   unlocks, the passphrase typed on the USB keyboard unlocks, and a full systemd boot with the pinned
//   host key, nothing of the first-boot machinery run, and one `pullvault run` inside the guest.
//   pi4 (Adiantum, encrypted in provision-pi's arm64 VM): the stick unlocks.
// Needs root, qemu-user-static, qemu-system-arm, network to the Debian mirror on first run.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/proc/index.ts';
import { BOOT_MS, fullBoot, pi4AdiantumHeader, stickUnlocks, typedPassphraseUnlocks, haveArm64Tools, isRoot, startArm64Lab, stopArm64Lab, type Arm64Lab } from './arm64-cards.ts';
import { startGuestServer } from './guest-run.ts';
import { PIOS_DISK_ID } from './pios-base.ts';
import { boot, bootFilesFromImage } from './qemu.ts';

const FIRST_BOOT_MARKERS = ['PILAB-CLOUD-INIT-RAN', 'PILAB-RPI-RESIZE-RAN', 'PILAB-USERCONF-WIZARD-RAN'];

describe.skipIf(!isRoot || !haveArm64Tools)('provision-pi on the arm64 Pi OS-shaped base, trixie (qemu-user build, qemu-system-aarch64 boots)', () => {
  let lab: Arm64Lab;

  beforeAll(async () => {
    lab = await startArm64Lab('trixie');
  }, 5_400_000);

  afterAll(() => stopArm64Lab(lab));

  it('control: the trixie base booted as shipped runs cloud-init (NoCloud from bootfs), rpi-resize and the userconf wizard, and makes its own host keys', async () => {
    const b = await boot({ arch: 'arm64', sdcard: lab.base.path, extraCmdline: 'systemd.show_status=1', log: path.join(lab.logs, 'trixie-base.log'), memMiB: 1024 });
    try {
      const report = (await b.expect(/PILAB-FULLINIT-BEGIN([\s\S]*?)PILAB-FULLINIT-END/, 1_500_000, /Kernel panic|Dropping to a shell/))[1];
      expect(report).toMatch(new RegExp(`^MOUNT /dev/vda2 / ext4`, 'm'));
      for (const m of FIRST_BOOT_MARKERS) expect(b.out, m).toContain(m);
      // the image carries no host key; first boot made them (a card's pin could never match these)
      expect(report.match(/^HOSTKEY ssh-ed25519 /gm)?.length).toBe(1);
      await b.waitExit(180_000);
      lab.timings.baseBoot = b.seconds;
    } finally {
      await b.stop();
    }
  }, 1_800_000);

  it('pi5 (trixie): systemd-cryptsetup installed for the data disk, both flavours rebuilt, `resize` and the NoCloud seed neutralised, fresh disk id', async () => {
    const { log, state } = await lab.card('pi5');
    expect(log).toMatch(/installing: .*\bsystemd-cryptsetup\b/);
    expect(log).toMatch(/-arm64: kernel8\.img \+ initramfs8/);
    expect(log).toMatch(/\+rpt-rpi-2712: kernel_2712\.img \+ initramfs_2712/);
    expect(log).toMatch(/node v(1[89]|[2-9]\d)\./);
    const d = mkdtempSync(path.join(lab.dir, 'static-'));
    const f = await bootFilesFromImage(path.join(state, 'sdcard.img'), d);
    rmSync(d, { recursive: true, force: true });
    expect(f.cmdline).toMatch(/(^| )root=\/dev\/mapper\/cryptroot( |$)/);
    expect(f.cmdline).not.toMatch(/(^| )resize( |$)|init=|PARTUUID/);
    expect(f.config).toMatch(/^\[pi5\]\ndtoverlay=nospi10$/m);
    const diskId = JSON.parse((await run(['sfdisk', '-J', path.join(state, 'sdcard.img')])).stdout).partitiontable.id;
    expect(diskId).not.toBe(PIOS_DISK_ID);
  }, 3_600_000);

  it('pi5 (trixie) boot with the USB key: unlocked by the keyfile, root on /dev/mapper/cryptroot', () => stickUnlocks(lab, 'pi5', 'trixie-stick'), BOOT_MS + 120_000);

  it('pi5 (trixie) boot without the USB key: the passphrase typed on a USB keyboard into tty1 unlocks', () => typedPassphraseUnlocks(lab, 'pi5', 'trixie-keyboard'), BOOT_MS + 420_000);

  it('pi5 (trixie) full systemd boot: the data disk unlocked by systemd-cryptsetup, the pinned host key, no cloud-init, rpi-resize or wizard run, one `pullvault run` in the guest', async () => {
    const server = await startGuestServer(lab.dir, `<p>${randomBytes(12).toString('hex')}</p>\n`);
    try {
      const { report, out } = await fullBoot(lab, { server, name: 'trixie-full' });
      for (const m of FIRST_BOOT_MARKERS) expect(out, m).not.toContain(m);
      expect(report).toMatch(/^MAPPER pullvault-data$/m);
    } finally {
      await server.host.stop();
    }
  }, BOOT_MS + 2_400_000);

  it('pi4 (trixie): Adiantum, encrypted where the cipher is (the arm64 VM when this kernel lacks it); the stick unlocks it', async () => {
    await pi4AdiantumHeader(lab);
    await stickUnlocks(lab, 'pi4', 'trixie-pi4-stick');
  }, 7_200_000);
});
