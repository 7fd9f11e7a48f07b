// The Raspberry Pi OS kernel profile for the arm64 test base, pure: which drivers Pi OS builds into
// its kernels (and so ships no .ko for), and the order a stand-in loads them in.
//
// Read from raspberrypi/linux arch/arm64/configs/bcm2711_defconfig (kernel8.img, "-v8") and
// bcm2712_defconfig (kernel_2712.img, "-2712"), which agree on these: CONFIG_USB=y,
// CONFIG_USB_XHCI_HCD=y, CONFIG_USB_XHCI_PLATFORM=y (XHCI_PCI follows PCI+XHCI: y),
// CONFIG_PCIE_BRCMSTB=y, CONFIG_USB_STORAGE=y, CONFIG_USB_UAS=y, CONFIG_SCSI=y,
// CONFIG_BLK_DEV_SD=y, CONFIG_MMC=y with the SDHCI/iProc/bcm2835 hosts y, CONFIG_EXT4_FS=y,
// CONFIG_MSDOS_FS=y, CONFIG_LIBCRC32C=y, CONFIG_VFAT_FS=y, CONFIG_NLS_CODEPAGE_437=y, CONFIG_NLS_ASCII=y, and no
// CONFIG_HID / CONFIG_USB_HID / CONFIG_HID_GENERIC line at all, so Kconfig's defaults (y) hold:
// the USB keyboard drivers are built in too. CONFIG_BLK_DEV_DM and CONFIG_DM_CRYPT are =m (modules
// on Pi OS, as in Debian), and so are the Adiantum pieces.
//
// The test base starts from Debian's arm64 kernel, where all of these are modules. The profile
// removes their .ko files and lists them in modules.builtin, so provision-pi sees what it sees on
// Pi OS; a test-only initramfs stand-in (pios-base.ts) loads the removed code at init-top, since a
// Debian kernel cannot be made to contain it without rebuilding it.

/** Module names (as modprobe spells them) Pi OS's kernels build in; those Debian ships as .ko are removed. */
export const PIOS_BUILTIN_MODULES = [
  // USB host and the stick
  'usbcore', 'usb_common', 'xhci_hcd', 'xhci_pci', 'xhci_plat_hcd', 'pcie_brcmstb', 'usb_storage', 'uas',
  'scsi_mod', 'scsi_common', 'sd_mod',
  // the keyboard at the console (Kconfig defaults)
  'hid', 'usbhid', 'hid_generic',
  // SD card
  'mmc_core', 'mmc_block', 'sdhci', 'sdhci_pltfm', 'sdhci_iproc', 'bcm2835',
  // CONFIG_LIBCRC32C=y selects CONFIG_CRYPTO_CRC32C=y: ext4's metadata checksums find crc32c in the kernel
  'libcrc32c', 'crc32c_generic',
  // filesystems of the root, the boot partition and a FAT stick
  'ext4', 'jbd2', 'mbcache', 'crc16', 'fat', 'vfat', 'msdos', 'nls_cp437', 'nls_ascii',
];

export interface ModulesDepEntry {
  /** path relative to /usr/lib/modules/<ver>, e.g. kernel/drivers/usb/storage/usb-storage.ko */
  path: string;
  /** module names it needs */
  deps: string[];
}

const nameOf = (p: string) => (p.split('/').pop() ?? p).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');

/** modules.dep text → name → entry. */
export function parseModulesDep(text: string): Map<string, ModulesDepEntry> {
  const m = new Map<string, ModulesDepEntry>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const p = line.slice(0, colon).trim();
    m.set(nameOf(p), { path: p, deps: line.slice(colon + 1).trim().split(/\s+/).filter(Boolean).map(nameOf) });
  }
  return m;
}

export type LoadStep = { op: 'modprobe'; name: string } | { op: 'insmod'; name: string; path: string };

/**
 * What the stand-in does at boot, in order: `modprobe` for a dependency Debian keeps as a module,
 * `insmod` (of the stashed file) for a removed one, each after everything it needs.
 */
export function builtinLoadOrder(dep: Map<string, ModulesDepEntry>, builtin: string[]): LoadStep[] {
  const removed = new Set(builtin.filter((b) => dep.has(b)));
  const out: LoadStep[] = [];
  const done = new Set<string>();
  const visit = (name: string) => {
    if (done.has(name)) return;
    done.add(name);
    const e = dep.get(name);
    if (!e) return;
    // modules.dep lists every (transitive) dependency; visiting each first gives a topological order
    for (const d of e.deps) visit(d);
    out.push(removed.has(name) ? { op: 'insmod', name, path: e.path } : { op: 'modprobe', name });
  };
  for (const b of removed) visit(b);
  return out;
}

/** modules.builtin lines ("kernel/…/name.ko", uncompressed) for the removed modules. */
export function builtinLines(steps: LoadStep[]): string[] {
  return steps.flatMap((s) => (s.op === 'insmod' ? [s.path.replace(/\.(xz|zst|gz)$/, '')] : []));
}
