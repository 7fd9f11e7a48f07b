// Which kernel modules an initramfs has, counting drivers built into the kernel. Raspberry Pi OS
// kernels build usb-storage, uas, ext4, vfat, the nls codepages, MMC and the USB host controllers
// in (CONFIG_USB_STORAGE=y, CONFIG_USB_UAS=y, …), so no .ko exists for them: the kernel lists them in
// /usr/lib/modules/<ver>/modules.builtin (one "kernel/…/name.ko" path a line) and, since 5.2,
// modules.builtin.modinfo ("name.key=value" records separated by NUL). Pure functions only.

/** Module names compare with "-" and "_" the same (as modprobe does). */
function moduleName(s: string): string {
  return s.replace(/-/g, '_');
}

/** Names of the built-in modules, from modules.builtin and/or modules.builtin.modinfo text. */
export function parseBuiltin(modulesBuiltin: string, modinfo = ''): Set<string> {
  const names = new Set<string>();
  for (const line of modulesBuiltin.split('\n')) {
    const m = /([^/\s]+)\.ko\s*$/.exec(line.trim());
    if (m) names.add(moduleName(m[1]));
  }
  for (const rec of modinfo.split('\0')) {
    const dot = rec.indexOf('.');
    if (dot > 0 && rec.indexOf('=') > dot) names.add(moduleName(rec.slice(0, dot)));
  }
  return names;
}

/** Module names present as files in an initramfs listing (`lsinitramfs`), compressed or not. */
export function modulesInListing(listing: string): Set<string> {
  const names = new Set<string>();
  for (const line of listing.split('\n')) {
    const m = /\/([^/]+)\.ko(\.(xz|zst|gz))?$/.exec(line.trim());
    if (m) names.add(moduleName(m[1]));
  }
  return names;
}

/** The wanted modules neither in the initramfs nor built into the kernel. */
export function missingModules(wanted: string[], listing: string, builtin: Set<string>): string[] {
  const have = modulesInListing(listing);
  return wanted.filter((w) => !have.has(moduleName(w)) && !builtin.has(moduleName(w)));
}

/**
 * USB keyboard at the Pi's own console (HDMI + keyboard, /dev/console = tty1): the recovery
 * passphrase is typed there. These are modules on Pi OS kernels (CONFIG_HID_GENERIC=m, CONFIG_USB_HID=m).
 */
export const KEYBOARD_MODULES = ['hid', 'usbhid', 'hid_generic'];

/**
 * The Pi's USB host paths, added so a stick and a keyboard work in the initramfs whichever of
 * them a kernel builds as modules (Pi OS builds most in; then these names are simply built-in):
 * Pi 3/Zero 2 W dwc2 (or the built-in dwc_otg), Pi 4 VL805 xHCI behind the Broadcom PCIe bridge,
 * Pi 5 RP1's DWC3 xHCI, plus generic xHCI for lab machines.
 */
export const USB_HOST_MODULES = ['dwc2', 'xhci_hcd', 'xhci_pci', 'xhci_plat_hcd', 'pcie_brcmstb', 'reset_raspberrypi', 'dwc3', 'dwc3_of_simple'];

/**
 * Wired network in the initramfs, for tang and dropbear (ip=dhcp): a list-mode build (cross-built
 * under qemu-user) only has what it is told. Pi 3B+ LAN7800 and Pi 3B SMSC9514 on USB, Pi 4 GENET
 * with its Broadcom PHY, Pi 5 Cadence GEM (macb) behind RP1; virtio for lab machines. A kernel that
 * builds one in (Pi OS builds most) makes that name built-in; one it lacks is skipped.
 */
export const NETWORK_MODULES = ['lan78xx', 'smsc95xx', 'usbnet', 'bcmgenet', 'broadcom', 'bcm_phy_lib', 'macb', 'virtio_net'];

/** What every built initramfs must contain (or the kernel build in) for the Pi to unlock its root. */
export function requiredInitramfsModules(usbFs: 'vfat' | 'ext4'): string[] {
  return ['dm_crypt', 'usb_storage', ...(usbFs === 'vfat' ? ['vfat', 'nls_cp437'] : ['ext4']), 'usbhid', 'hid_generic'];
}
