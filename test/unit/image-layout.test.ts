// provision-pi's checks of a base image, pure: built-in modules count as present, the boot
// partition's layout is judged up front, Pi 5 images carry both kernel flavours, each card gets
// its own disk id, and builds on the device go back to MODULES=most/dep.
import { describe, expect, it } from 'vitest';
import { checkBootLayout, checkFlavours, diskIdFrom, rewritePartuuids, UnsupportedBaseError } from '../../provision/image/boot-layout.ts';
import { missingModules, modulesInListing, parseBuiltin, requiredInitramfsModules } from '../../provision/image/kernel-modules.ts';
import { deviceModulesMode, initramfsConf, initramfsModules } from '../../provision/image/plan.ts';
import { loadTemplates } from '../../provision/image/build.ts';
import type { PiSpec } from '../../contract/inventory-schema.ts';

// modules.builtin / modules.builtin.modinfo as a Pi OS kernel (CONFIG_USB_STORAGE=y, CONFIG_USB_UAS=y, ext4, vfat, nls) writes them
const PIOS_BUILTIN = ['kernel/drivers/usb/storage/usb-storage.ko', 'kernel/drivers/usb/storage/uas.ko', 'kernel/fs/ext4/ext4.ko', 'kernel/fs/fat/vfat.ko', 'kernel/fs/nls/nls_cp437.ko', 'kernel/drivers/mmc/host/sdhci-iproc.ko', ''].join('\n');
const PIOS_MODINFO = 'usb_storage.file=drivers/usb/storage/usb-storage\0usb_storage.license=GPL\0dwc_otg.file=drivers/usb/host/dwc_otg/dwc_otg\0';
// lsinitramfs of a Pi OS initramfs: only the modular drivers appear as files (compressed on recent kernels)
const LISTING = [
  'usr/lib/modules/6.6.51+rpt-rpi-v8/kernel/drivers/md/dm-crypt.ko.xz',
  'usr/lib/modules/6.6.51+rpt-rpi-v8/kernel/drivers/hid/usbhid/usbhid.ko.xz',
  'usr/lib/modules/6.6.51+rpt-rpi-v8/kernel/drivers/hid/hid-generic.ko.xz',
  'usr/lib/modules/6.6.51+rpt-rpi-v8/kernel/drivers/hid/hid.ko.xz',
  'usr/local/lib/pullvault/unlock-keyscript',
].join('\n');

describe('built-in modules count as present', () => {
  it('reads names from modules.builtin paths and modinfo records, "-" and "_" alike', () => {
    const b = parseBuiltin(PIOS_BUILTIN, PIOS_MODINFO);
    for (const m of ['usb_storage', 'uas', 'ext4', 'vfat', 'nls_cp437', 'sdhci_iproc', 'dwc_otg']) expect(b.has(m), m).toBe(true);
    expect(b.has('dm_crypt')).toBe(false);
    expect([...modulesInListing(LISTING)].sort()).toEqual(['dm_crypt', 'hid', 'hid_generic', 'usbhid']);
  });

  it('a Pi OS initramfs without usb-storage.ko is complete: the kernel builds it in', () => {
    const need = requiredInitramfsModules('vfat');
    expect(need).toEqual(expect.arrayContaining(['dm_crypt', 'usb_storage', 'vfat', 'usbhid', 'hid_generic']));
    expect(missingModules(need, LISTING, parseBuiltin(PIOS_BUILTIN, PIOS_MODINFO))).toEqual([]);
    // the same listing against a kernel that builds nothing in: the stick's drivers are really missing
    expect(missingModules(need, LISTING, new Set())).toEqual(['usb_storage', 'vfat', 'nls_cp437']);
    // and a keyboard driver missing from both is reported
    const noKbd = LISTING.split('\n').filter((l) => !l.includes('hid-generic')).join('\n');
    expect(missingModules(need, noKbd, parseBuiltin(PIOS_BUILTIN, PIOS_MODINFO))).toEqual(['hid_generic']);
  });

  it('the initramfs gets the USB keyboard and the Pi USB host drivers whatever the modules mode', () => {
    const pi = { model: 'pi4', usbKey: { label: 'K' } } as PiSpec;
    expect(initramfsModules(pi)).toEqual(expect.arrayContaining(['hid', 'usbhid', 'hid_generic', 'dwc2', 'xhci_pci', 'pcie_brcmstb', 'dwc3']));
  });
});

describe('MODULES= on the device after the image build', () => {
  const templates = loadTemplates();
  it('most (or the base image\'s dep), never list', () => {
    expect(deviceModulesMode('MODULES=dep\nBUSYBOX=auto\n')).toBe('dep');
    expect(deviceModulesMode('MODULES=most\n')).toBe('most');
    expect(deviceModulesMode('MODULES=list\n')).toBe('most');
    expect(deviceModulesMode(undefined)).toBe('most');
    expect(initramfsConf(templates, 'most')).toMatch(/^MODULES=most$/m);
    expect(initramfsConf(templates, 'list')).toMatch(/^MODULES=list$/m);
  });
});

describe('boot partition layout, judged before any slow step', () => {
  const PIOS_FILES = ['bootcode.bin', 'cmdline.txt', 'config.txt', 'fixup4.dat', 'start4.elf', 'bcm2711-rpi-4-b.dtb', 'bcm2712-rpi-5-b.dtb', 'kernel8.img', 'kernel_2712.img', 'initramfs8', 'initramfs_2712', 'overlays/'];
  const PIOS_CONFIG = '# Automatically load initramfs files, if found\nauto_initramfs=1\ndtoverlay=vc4-kms-v3d\narm_64bit=1\n[cm4]\notg_mode=1\n[all]\n';
  it('Raspberry Pi OS passes for every model', () => {
    for (const model of ['pi3', 'pi4', 'pi5', 'cm5'] as const) expect(() => checkBootLayout(PIOS_FILES, PIOS_CONFIG, model)).not.toThrow();
  });

  it('a Debian raspi-firmware layout is refused, saying why and what to use', () => {
    const files = ['cmdline.txt', 'config.txt', 'vmlinuz-6.1.0-28-arm64', 'initrd.img-6.1.0-28-arm64', 'bcm2711-rpi-4-b.dtb'];
    const config = '# Do not modify this file!\narm_64bit=1\nenable_uart=1\nkernel=vmlinuz-6.1.0-28-arm64\n# For details on the initramfs directive, see\ninitramfs initrd.img-6.1.0-28-arm64\n';
    expect(() => checkBootLayout(files, config, 'pi4')).toThrow(UnsupportedBaseError);
    expect(() => checkBootLayout(files, config, 'pi4')).toThrow(/Debian raspi-firmware layout .*regenerates .*Raspberry Pi OS Lite \(arm64\) from https:\/\/www\.raspberrypi\.com/);
    // a commented-out kernel= line is not a layout
    expect(() => checkBootLayout(PIOS_FILES, `${PIOS_CONFIG}#kernel=vmlinuz-6.1\n`, 'pi4')).not.toThrow();
  });

  it('other layouts: no config.txt, a custom kernel=, a Pi 5 image without kernel_2712.img', () => {
    expect(() => checkBootLayout(['cmdline.txt', 'kernel8.img'], undefined, 'pi4')).toThrow(/no config\.txt/);
    expect(() => checkBootLayout(['config.txt', 'kernel8.img'], PIOS_CONFIG, 'pi4')).toThrow(/no cmdline\.txt/);
    expect(() => checkBootLayout(PIOS_FILES, `kernel=mykernel.img\n${PIOS_CONFIG}`, 'pi4')).toThrow(/names its own kernel .*kernel=mykernel\.img/);
    const no2712 = PIOS_FILES.filter((f) => f !== 'kernel_2712.img');
    expect(() => checkBootLayout(no2712, PIOS_CONFIG, 'pi4')).not.toThrow();
    expect(() => checkBootLayout(no2712, PIOS_CONFIG, 'pi5')).toThrow(/lacks kernel_2712\.img/);
    expect(() => checkBootLayout(PIOS_FILES.filter((f) => f !== 'kernel8.img'), PIOS_CONFIG, 'pi4')).toThrow(/lacks kernel8\.img/);
  });

  it('Pi 5 images must have a kernel for both flavours installed', () => {
    expect(checkFlavours(['6.6.51+rpt-rpi-v8', '6.6.51+rpt-rpi-2712'], 'pi5', 'arm64').map((f) => `${f.kernel}+${f.initramfs}`)).toEqual(['kernel8.img+initramfs8', 'kernel_2712.img+initramfs_2712']);
    expect(() => checkFlavours(['6.6.51+rpt-rpi-v8'], 'pi5', 'arm64')).toThrow(/maps to kernel_2712\.img/);
    expect(checkFlavours(['6.6.51+rpt-rpi-v8'], 'pi4', 'arm64')).toHaveLength(1);
  });
});

describe('a fresh disk id per card', () => {
  it('non-zero 32-bit signature; PARTUUIDs follow it in fstab and cmdline.txt, other text untouched', () => {
    expect(diskIdFrom(Buffer.from([0xde, 0xad, 0xbe, 0xef]))).toBe('0xdeadbeef');
    expect(diskIdFrom(Buffer.from([0, 0, 0, 0]))).toBe('0x00000001');
    expect(diskIdFrom(Buffer.from([0, 0, 0x12, 0x34]))).toBe('0x00001234');
    const fstab = 'proc /proc proc defaults 0 0\nPARTUUID=9a6c1b4a-01  /boot/firmware  vfat    defaults          0       2\nPARTUUID=1234abcd-01 /mnt vfat defaults 0 0\n';
    expect(rewritePartuuids(fstab, '0x9a6c1b4a', '0x0badf00d')).toBe(fstab.replace('9a6c1b4a-01', '0badf00d-01'));
    expect(rewritePartuuids('console=tty1 root=PARTUUID=9A6C1B4A-02 rootwait', '0x9a6c1b4a', '0x00001234')).toBe('console=tty1 root=PARTUUID=00001234-02 rootwait');
  });
});
