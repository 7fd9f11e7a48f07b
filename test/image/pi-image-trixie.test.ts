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
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/proc/index.ts';
import { probeHostCipher } from '../../provision/image/luks-guest.ts';
import { ADIANTUM, BOOT_MS, fullBoot, haveArm64Tools, isRoot, KEYBOARD, MARKER, partitionFile, ROOT_MOUNTED, sleep, startArm64Lab, stopArm64Lab, type Arm64Lab } from './arm64-cards.ts';
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

  it('pi5 (trixie) boot with the USB key: unlocked by the keyfile, root on /dev/mapper/cryptroot', async () => {
    const { state } = await lab.card('pi5');
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), stick: path.join(state, 'usbkey.img'), extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(lab.logs, 'trixie-stick.log'), memMiB: 768 });
    try {
      await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      const m = await b.expect(MARKER, 120_000);
      expect(m[1]).toBe('/dev/mapper/cryptroot');
      expect(b.out).toContain('pullvault-unlock: USB key PVKEY found');
      lab.timings.bootStick = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 120_000);

  it('pi5 (trixie) boot without the USB key: the passphrase typed on a USB keyboard into tty1 unlocks', async () => {
    const { state } = await lab.card('pi5');
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), console: 'tty1', extraCmdline: 'init=/usr/sbin/marker-init loglevel=7', log: path.join(lab.logs, 'trixie-keyboard.log'), memMiB: 768 });
    try {
      await b.expect(KEYBOARD, BOOT_MS, /Kernel panic/);
      await b.expect(/device-mapper: ioctl: .*initialised/, 120_000, /Kernel panic/);
      await sleep(30_000);
      expect(b.out).not.toMatch(ROOT_MOUNTED);
      await b.typeKeys(readFileSync(path.join(state, 'recovery-passphrase.txt'), 'utf8'));
      await b.expect(ROOT_MOUNTED, 240_000, /Kernel panic/);
      expect(b.out).not.toMatch(/Please unlock disk cryptroot/);
      lab.timings.bootKeyboard = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 420_000);

  it('pi5 (trixie) full systemd boot: the data disk unlocked by systemd-cryptsetup, the pinned host key, no cloud-init, rpi-resize or wizard run, one `pullvault run` in the guest', async () => {
    const server = await startGuestServer(lab.dir, `<p>${randomBytes(12).toString('hex')}</p>\n`);
    try {
      const { report, out, backup } = await fullBoot(lab, { server, name: 'trixie-full' });
      for (const m of FIRST_BOOT_MARKERS) expect(out, m).not.toContain(m);
      expect(report).toMatch(/^MAPPER pullvault-data$/m);
      expect(backup!.code, backup!.output).toBe(0);
      expect(backup!.file).toBe(server.content);
      expect(backup!.status).toMatch(/\bok\b/);
    } finally {
      await server.host.stop();
    }
  }, BOOT_MS + 2_400_000);

  it('pi4 (trixie): Adiantum, encrypted where the cipher is (the arm64 VM when this kernel lacks it); the stick unlocks it', async () => {
    const { log, state } = await lab.card('pi4');
    const host = await probeHostCipher(ADIANTUM, 256, lab.dir);
    if (!host.ok) expect(log).toMatch(/encrypting in a arm64 VM \(qemu-system-aarch64\) booting the image's own kernel/);
    const p2 = path.join(lab.dir, 'pi4-p2.luks');
    await partitionFile(path.join(state, 'sdcard.img'), 1, p2);
    const dump = (await run(['cryptsetup', 'luksDump', p2])).stdout;
    rmSync(p2);
    expect(dump).toMatch(/cipher:\s+xchacha12,aes-adiantum-plain64/);
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), stick: path.join(state, 'usbkey.img'), extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(lab.logs, 'trixie-pi4-stick.log'), memMiB: 768 });
    try {
      await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      expect((await b.expect(MARKER, 120_000))[1]).toBe('/dev/mapper/cryptroot');
      lab.timings.bootPi4Stick = b.seconds;
    } finally {
      await b.stop();
    }
  }, 7_200_000);
});
