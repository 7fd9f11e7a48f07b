// The arm64 Pi OS-shaped base (pios-base.ts) looks to provision-pi the way Raspberry Pi OS Lite does:
// pi-gen's partitions, config.txt and cmdline.txt, both kernel flavours and their initramfs on the FAT,
// and the Pi OS kernel profile (usb-storage, uas, HID, ext4, vfat built in: listed in
// modules.builtin, no .ko anywhere, not in the initramfs either). Read without mounting (mtools,
// debugfs). Builds the base on first use (cached in $PULLVAULT_TEST_CACHE).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PiSpec } from '../../contract/inventory-schema.ts';
import { checkBaseLayout } from '../../provision/image/build.ts';
import { missingModules, parseBuiltin, requiredInitramfsModules } from '../../provision/image/kernel-modules.ts';
import { run } from '../../lib/proc/index.ts';
import { PIOS_DISK_ID, piosBaseImage, STANDIN_DIR } from './pios-base.ts';

const isRoot = process.getuid?.() === 0;
const WORK = process.env.PULLVAULT_IMAGE_TEST_DIR ?? '/var/tmp/pullvault-image-test';

describe.skipIf(!isRoot)('arm64 Raspberry Pi OS-shaped base (bookworm)', () => {
  let base: { path: string };
  let dir: string;
  let fat: string;
  let rootFs: string;
  const debugfs = (cmd: string) => execFileSync('debugfs', ['-R', cmd, rootFs], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 }).toString();
  const mtype = (f: string) => execFileSync('mtype', ['-i', fat, `::${f}`], { maxBuffer: 256 << 20 });
  const listInitramfs = (f: string) => execFileSync('sh', ['-c', 'mtype -i "$1" "::$2" | zstd -dc | cpio -it 2>/dev/null', 'sh', fat, f], { maxBuffer: 64 << 20 }).toString();

  beforeAll(async () => {
    const t = Date.now();
    base = await piosBaseImage('bookworm', (s) => console.log(s));
    console.log(`pios base ready in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    execFileSync('mkdir', ['-p', WORK]);
    dir = mkdtempSync(path.join(WORK, 'pios-base-'));
    const t2 = JSON.parse((await run(['sfdisk', '-J', base.path])).stdout).partitiontable;
    fat = `${base.path}@@${t2.partitions[0].start * 512}`;
    rootFs = path.join(dir, 'root.ext4');
    const p = t2.partitions[1];
    await run(['dd', `if=${base.path}`, `of=${rootFs}`, 'bs=4M', `skip=${p.start * 512}`, `count=${p.size * 512}`, 'iflag=skip_bytes,count_bytes', 'conv=sparse', 'status=none']);
  }, 3_600_000);
  afterAll(() => dir && rmSync(dir, { recursive: true, force: true }));

  it("pi-gen's disk: MBR, FAT32 bootfs + ext4 rootfs; config.txt and cmdline.txt as pi-gen writes them; provision-pi's up-front check passes for pi4 and pi5", async () => {
    const t = JSON.parse((await run(['sfdisk', '-J', base.path])).stdout).partitiontable;
    expect(t.label).toBe('dos');
    expect(t.id).toBe(PIOS_DISK_ID);
    expect(t.partitions.map((p: { type: string }) => p.type)).toEqual(['c', '83']);
    expect(execFileSync('blkid', ['-p', '-o', 'value', '-s', 'LABEL', rootFs]).toString().trim()).toBe('rootfs');
    const config = mtype('config.txt').toString();
    expect(config).toMatch(/^auto_initramfs=1$/m);
    expect(config).toMatch(/^arm_64bit=1$/m);
    expect(config).not.toMatch(/^\s*(kernel=|initramfs )/m);
    const cmdline = mtype('cmdline.txt').toString();
    expect(cmdline.trim().split('\n')).toHaveLength(1);
    expect(cmdline).toMatch(new RegExp(`^console=serial0,115200 console=tty1 root=PARTUUID=${PIOS_DISK_ID.slice(2)}-02 rootfstype=ext4 fsck\\.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\\n$`));
    for (const model of ['pi4', 'pi5'] as const) await expect(checkBaseLayout(base.path, { model, arch: 'arm64' } as PiSpec)).resolves.toBeUndefined();
    expect(debugfs('cat /etc/fstab')).toMatch(new RegExp(`^PARTUUID=${PIOS_DISK_ID.slice(2)}-01\\s+/boot/firmware\\s+vfat`, 'm'));
  });

  it('two kernel flavours: kernel8.img + initramfs8 and kernel_2712.img + initramfs_2712, arm64 kernels, each with its own modules tree', () => {
    const files = execFileSync('mdir', ['-b', '-i', fat, '::']).toString();
    for (const f of ['kernel8.img', 'kernel_2712.img', 'initramfs8', 'initramfs_2712']) expect(files).toContain(`::/${f}`);
    expect(files).toMatch(/bcm2711-rpi-4-b\.dtb/);
    for (const k of ['kernel8.img', 'kernel_2712.img']) {
      const img = mtype(k);
      // Debian's arm64 vmlinuz is a gzip of the Image; the Image header has "ARM\x64" at 0x38
      const raw = img[0] === 0x1f && img[1] === 0x8b ? execFileSync('gzip', ['-dc'], { input: img, maxBuffer: 256 << 20 }) : img;
      expect(raw.subarray(0x38, 0x3c).toString('latin1'), k).toBe('ARM\x64');
    }
    const versions = debugfs('ls -p /usr/lib/modules').split('\n').map((l) => l.split('/')[5]).filter((v) => v && v !== '.' && v !== '..');
    expect(versions.some((v) => /-arm64$/.test(v))).toBe(true);
    expect(versions.some((v) => /\+rpt-rpi-2712$/.test(v))).toBe(true);
  });

  it('the Pi OS kernel profile: usb-storage, uas, HID, ext4, vfat built in (modules.builtin), no .ko of them in the root or the initramfs; dm-crypt stays a module', () => {
    const ver = debugfs('ls -p /usr/lib/modules').split('\n').map((l) => l.split('/')[5]).find((v) => v && /-arm64$/.test(v))!;
    const builtin = parseBuiltin(debugfs(`cat /usr/lib/modules/${ver}/modules.builtin`));
    for (const m of ['usb_storage', 'uas', 'usbhid', 'hid_generic', 'hid', 'ext4', 'vfat', 'nls_cp437', 'xhci_pci', 'sd_mod']) expect(builtin.has(m), m).toBe(true);
    expect(builtin.has('dm_crypt')).toBe(false);
    const dep = debugfs(`cat /usr/lib/modules/${ver}/modules.dep`);
    expect(dep).not.toMatch(/usb-storage\.ko|\/uas\.ko|usbhid\.ko|hid-generic\.ko|\/ext4\.ko|\/vfat\.ko/);
    expect(dep).toMatch(/dm-crypt\.ko/);
    expect(debugfs(`ls /usr/lib/modules/${ver}/kernel/drivers/usb/storage`)).not.toMatch(/usb-storage\.ko/);
    for (const initramfs of ['initramfs8', 'initramfs_2712']) {
      const list = listInitramfs(initramfs);
      expect(list).not.toMatch(/\/(usb-storage|uas|usbhid|hid-generic)\.ko(\.(xz|zst|gz))?$/m);
      // what provision-pi requires of an initramfs is all there once built-ins count
      expect(missingModules(requiredInitramfsModules('vfat').filter((m) => m !== 'dm_crypt'), list, builtin)).toEqual([]);
      // the test stand-in that loads the removed code is there, under a name no listing counts as a module
      expect(list).toMatch(new RegExp(`${STANDIN_DIR}/[^/]+/usb_storage\\.ko\\.pilab-builtin$`, 'm'));
    }
  });

  it('first boot as pi-gen leaves it: ssh off and no host keys, the key regeneration and user wizard armed', () => {
    expect(debugfs('ls /etc/ssh')).not.toMatch(/ssh_host_\w+_key/);
    const wants = debugfs('ls /etc/systemd/system/multi-user.target.wants');
    expect(wants).not.toMatch(/\bssh\.service/);
    expect(wants).toMatch(/regenerate_ssh_host_keys\.service/);
    expect(wants).toMatch(/userconfig\.service/);
    expect(debugfs('stat /usr/lib/raspberrypi-sys-mods/firstboot')).toMatch(/Mode:\s+0755/);
  });
});
