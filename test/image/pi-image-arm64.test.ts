// provision-pi against the arm64 Raspberry Pi OS-shaped base (pios-base.ts), on this amd64 machine:
// the chroot steps under qemu-user (private binfmt_misc), both kernel flavours rebuilt and checked,
// then boots under qemu-system-aarch64 `-M virt` with the card's own kernel8.img + initramfs8.
//   pi5 (aes-xts-plain64, encrypted on this machine): stick → unlocked by the keyfile; no stick → the
//   passphrase typed on an emulated USB keyboard into tty1 (/dev/console, as on the Pi's HDMI console)
//   unlocks; wrong stick → refused, then the typed passphrase unlocks.
//   pi4 (Adiantum: encrypted in provision-pi's qemu-system-aarch64 VM booting the image's kernel when
//   this machine's kernel lacks it, tang's keyslot 2 and clevis token written there too; pi.unlock
//   with a tang server and dropbear): stick → unlocked; the real tangd answering (guestfwd), no stick
//   → unlocked; ssh … cryptroot-unlock with the passphrase → unlocked; no stick, no tang server
//   answering, no passphrase → never mounted.
// An arm64 virt guest has no VGA text screen to read back: tty1 runs on the dummy console, so what is
// on it is judged from the kernel's log on the serial port (loglevel=7: the USB keyboard attached,
// "EXT4-fs (dm-0): mounted" once the root is open) instead of from the prompt's text.
//   pi4 on `-M raspi3b` (a Pi-class machine: SD host controller, dwc2 USB, the card's own DTB): the stick
//   unlocks.
//   pi5 full systemd boot: sshd with the pinned host key, then install-runtime and one `pullvault run`
//   inside the guest (its own arm64 Node) backing up a lab server (guest-run.ts).
// Needs root, qemu-user-static, qemu-system-arm, network to the Debian mirror on first run.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/proc/index.ts';
import { ASKING, BOOT_MS, fullBoot, pi4AdiantumHeader, stickUnlocks, typedPassphraseUnlocks, haveArm64Tools, isRoot, KEYBOARD, MARKER, ROOT_MOUNTED, sleep, startArm64Lab, stopArm64Lab, UNLOCK_PORT, type Arm64Lab } from './arm64-cards.ts';
import { startGuestServer } from './guest-run.ts';
import { PIOS_DISK_ID } from './pios-base.ts';
import { boot, bootFilesFromImage } from './qemu.ts';

describe.skipIf(!isRoot || !haveArm64Tools)('provision-pi on the arm64 Pi OS-shaped base, bookworm (qemu-user build, qemu-system-aarch64 boots)', () => {
  let lab: Arm64Lab;
  let dir: string;
  let logs: string;
  const card = (model: 'pi4' | 'pi5') => lab.card(model);

  beforeAll(async () => {
    lab = await startArm64Lab('bookworm');
    ({ dir, logs } = lab);
  }, 3_600_000);

  afterAll(() => stopArm64Lab(lab));

  it('pi5: both flavours rebuilt (initramfs8 and initramfs_2712 carry the unlock), built-in drivers accepted, fresh disk id, root on the mapper', async () => {
    const { log, state } = await card('pi5');
    // Pi OS builds usb-storage, uas and the HID drivers in: counted as present, no .ko needed
    expect(log).toMatch(/initramfs: rebuild the initramfs for every installed kernel \(MODULES=list\)/);
    expect(log).toMatch(/-arm64: kernel8\.img \+ initramfs8/);
    expect(log).toMatch(/\+rpt-rpi-2712: kernel_2712\.img \+ initramfs_2712/);
    expect(log).toMatch(/node v(1[89]|[2-9]\d)\./);
    const d = mkdtempSync(path.join(dir, 'static-'));
    const f = await bootFilesFromImage(path.join(state, 'sdcard.img'), d);
    expect(f.cmdline).toMatch(/(^| )root=\/dev\/mapper\/cryptroot( |$)/);
    expect(f.cmdline).not.toMatch(/init=|PARTUUID/);
    expect(f.config).toMatch(/^auto_initramfs=1$/m);
    const img = `${path.join(state, 'sdcard.img')}@@${JSON.parse((await run(['sfdisk', '-J', path.join(state, 'sdcard.img')])).stdout).partitiontable.partitions[0].start * 512}`;
    for (const initramfs of ['initramfs8', 'initramfs_2712']) {
      const list = execFileSync('sh', ['-c', 'mtype -i "$1" "::$2" | zstd -dc | cpio -it 2>/dev/null', 'sh', img, initramfs], { maxBuffer: 64 << 20 }).toString();
      for (const need of [/usr\/local\/lib\/pullvault\/unlock-keyscript$/m, /cryptroot\/crypttab$/m, /dm-crypt\.ko/, /lib\/cryptsetup\/askpass$/m]) expect(list, `${initramfs} ${need}`).toMatch(need);
      expect(list, initramfs).not.toMatch(/\/usb-storage\.ko(\.(xz|zst|gz))?$/m);
    }
    const diskId = JSON.parse((await run(['sfdisk', '-J', path.join(state, 'sdcard.img')])).stdout).partitiontable.id;
    expect(diskId).not.toBe(PIOS_DISK_ID);
    rmSync(d, { recursive: true, force: true });
  }, 3_600_000);

  it('pi5 boot (-M virt) with the USB key: unlocked by the keyfile, root mounted from /dev/mapper/cryptroot', () => stickUnlocks(lab, 'pi5', 'arm64-stick'), BOOT_MS + 120_000);

  it('pi5 boot without the USB key: nothing mounts while it waits on tty1; the passphrase typed on a USB keyboard unlocks', () => typedPassphraseUnlocks(lab, 'pi5', 'arm64-keyboard'), BOOT_MS + 420_000);

  it('pi5 boot with a stick holding the wrong key: refused, not mounted; then the typed passphrase unlocks', async () => {
    const { state } = await card('pi5');
    const wrong = path.join(dir, 'wrongstick.img');
    const wrongKey = path.join(dir, 'wrong.key');
    writeFileSync(wrongKey, randomBytes(64));
    await run(['truncate', '-s', '16M', wrong]);
    await run(['mkfs.vfat', '-n', 'PVKEY', wrong]);
    await run(['mcopy', '-i', wrong, wrongKey, '::pullvault-root.key']);
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), stick: wrong, console: 'tty1', extraCmdline: 'init=/usr/sbin/marker-init loglevel=7', log: path.join(logs, 'arm64-wrongstick.log'), memMiB: 768 });
    try {
      await b.expect(KEYBOARD, BOOT_MS, /Kernel panic/);
      await b.expect(/\[sd[a-z]\] Attached SCSI (removable )?disk/, BOOT_MS, /Kernel panic/);
      // the stick's key is tried first (two argon2id keyslots under TCG), then the keyscript asks again
      await b.expect(ASKING, BOOT_MS, /Kernel panic/);
      await sleep(120_000);
      expect(b.out).not.toMatch(ROOT_MOUNTED);
      await b.typeKeys(readFileSync(path.join(state, 'recovery-passphrase.txt'), 'utf8'));
      await b.expect(ROOT_MOUNTED, 240_000, /Kernel panic/);
      lab.timings.bootWrongStick = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 420_000);

  it('pi5 full systemd boot (-M virt): data disk unlocked and mounted, root grown, sshd accepts the admin key with the host key pinned in state/, install-runtime and one `pullvault run` against a lab server', async () => {
    const served = randomBytes(12).toString('hex');
    const server = await startGuestServer(dir, `<p>${served}</p>\n`);
    try {
      await fullBoot(lab, { server, name: 'arm64-full' });
    } finally {
      await server.host.stop();
    }
  }, BOOT_MS + 2_400_000);

  it('pi4: Adiantum, encrypted in a qemu-system-aarch64 VM booting the image kernel where this machine lacks it; the stick unlocks it under -M virt', async () => {
    const { log } = await lab.card('pi4');
    const dump = await pi4AdiantumHeader(lab);
    // tang's keyslot and token went in with the others, wherever the LUKS step ran
    expect(dump.split(/^Tokens:/m)[0].match(/^\s+\d+: luks2$/gm)?.map((x) => x.trim())).toEqual(['0: luks2', '1: luks2', '2: luks2']);
    expect(dump.split(/^Tokens:/m)[1]).toMatch(/^\s+0: clevis\n\s+Keyslot:\s+2$/m);
    expect(log).toMatch(/keyslot 2: clevis tang \(http:\/\/10\.0\.2\.100\), thumbprints pinned/);
    await stickUnlocks(lab, 'pi4', 'arm64-pi4-stick');
  }, 7_200_000);

  it('pi4 card on a Pi-class machine (-M raspi3b: BCM2837, its SD host controller, dwc2 USB, the card\'s own kernel8.img, initramfs8 and Pi 3B DTB): the stick unlocks the Adiantum root', async () => {
    const { state } = await card('pi4');
    const b = await boot({ arch: 'arm64', machine: 'raspi3b', sdcard: path.join(state, 'sdcard.img'), stick: path.join(state, 'usbkey.img'), extraCmdline: 'init=/usr/sbin/marker-init loglevel=7', log: path.join(logs, 'arm64-pi4-raspi3b.log') });
    try {
      await b.expect(/cryptroot: set up successfully/, BOOT_MS + 300_000, /Kernel panic|Dropping to a shell/);
      expect((await b.expect(MARKER, 180_000))[1]).toBe('/dev/mapper/cryptroot');
      // the card on the SD controller, the stick behind the Pi's own USB controller
      expect(b.out).toMatch(/sdhost-bcm2835 .*loaded/);
      expect(b.out).toMatch(/mmcblk\d+: mmc\d+:\S+ QEMU!/);
      expect(b.out).toMatch(/DWC OTG Controller/);
      expect(b.out).toContain('pullvault-unlock: USB key PVKEY found');
      lab.timings.bootPi4Raspi3b = b.seconds;
    } finally {
      // a Pi 3B cannot power off: killed by its PID
      await b.stop();
    }
  }, BOOT_MS + 900_000);

  it('pi4 boot, tang answering (the real tangd), no stick, nobody typing: unlocked by tang, root mounted', async () => {
    const { state } = await card('pi4');
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), forwards: [lab.tang.guestfwd], extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'arm64-pi4-tang.log'), memMiB: 768 });
    try {
      await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      expect((await b.expect(MARKER, 120_000))[1]).toBe('/dev/mapper/cryptroot');
      expect(b.out).not.toContain('USB key PVKEY found');
      expect(readFileSync(lab.tang.logFile, 'utf8')).toMatch(/POST \/rec\/\S+ => 200/);
      lab.timings.bootPi4Tang = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 180_000);

  it('pi4 dropbear: the unlock key gets no shell; ssh … cryptroot-unlock with the passphrase unlocks', async () => {
    const { state } = await card('pi4');
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), privateNet: true, forwards: [`hostfwd=tcp:127.0.0.1:${UNLOCK_PORT}-:${UNLOCK_PORT}`], extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'arm64-pi4-dropbear.log'), memMiB: 768 });
    // ssh inside qemu's network namespace, dropbear's host key pinned from state/
    const ssh = (args: string[], input = '') =>
      run(
        ['nsenter', `--net=/proc/${b.pid}/ns/net`, '--', 'ssh', '-p', String(UNLOCK_PORT), '-i', path.join(dir, 'unlock_key'), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
          '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${path.join(state, 'known_hosts')}`, '-o', 'ConnectTimeout=30', ...args],
        { input, okCodes: [0, 1, 2, 255], timeoutMs: 180_000 },
      );
    try {
      await b.expect(/Please unlock disk cryptroot/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      let r = await ssh(['root@127.0.0.1', 'sh', '-c', '"echo SHELL-$((6*7))"']);
      for (let i = 0; i < 40 && /Connection refused|reset|closed|timed out/.test(r.stderr) && !r.stdout; i++) {
        await sleep(5_000);
        r = await ssh(['root@127.0.0.1', 'sh', '-c', '"echo SHELL-$((6*7))"']);
      }
      expect(r.stdout + r.stderr).not.toContain('SHELL-42');
      expect(r.stdout + r.stderr).toMatch(/cryptroot|passphrase|unlock/i);
      expect(b.out).not.toMatch(MARKER);
      const u = await ssh(['root@127.0.0.1', 'cryptroot-unlock'], readFileSync(path.join(state, 'recovery-passphrase.txt'), 'utf8'));
      expect(u.stdout + u.stderr).toMatch(/cryptroot.*(set up successfully|unlocked)/i);
      expect((await b.expect(MARKER, 240_000))[1]).toBe('/dev/mapper/cryptroot');
      lab.timings.bootPi4Dropbear = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 600_000);

  it('pi4 boot with no stick, no tang server answering and no passphrase: the root is never mounted', async () => {
    const { state } = await card('pi4');
    // the network is up (DHCP from qemu) but nothing answers at the tang server's address
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), console: 'tty1', network: true, extraCmdline: 'init=/usr/sbin/marker-init loglevel=7', log: path.join(logs, 'arm64-pi4-nothing.log'), memMiB: 768 });
    try {
      await b.expect(KEYBOARD, BOOT_MS, /Kernel panic/);
      await sleep(90_000);
      expect(b.out).not.toMatch(ROOT_MOUNTED);
      expect(b.out).not.toMatch(/PILAB-MARKER|Kernel panic/);
      expect(await b.waitExit(0)).toBe(false);
      process.kill(b.pid!, 'SIGKILL');
      expect(await b.waitExit(10_000)).toBe(true);
      lab.timings.bootPi4NoUnlock = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 200_000);
});
