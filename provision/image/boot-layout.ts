// The boot partition's layout, judged from its file names and config.txt before any slow step,
// and the MBR disk id each new card gets. Pure functions only.
//
// Raspberry Pi OS (pi-gen bookworm/trixie, arm64): the raspi-firmware hook copies each kernel to a
// fixed name the firmware picks by board (kernel8.img for Pi 3/4/Zero 2 W, kernel_2712.img for
// Pi 5), config.txt has `auto_initramfs=1` so the firmware loads initramfs8 / initramfs_2712 next
// to it, and no `kernel=` line. Debian's own raspi-firmware package instead copies
// vmlinuz-<ver> + initrd.img-<ver> and regenerates config.txt with `kernel=vmlinuz-<ver>` and
// `initramfs initrd.img-<ver>` on every kernel update (it would undo the edits made here).
import type { PiSpec } from '../../contract/inventory-schema.ts';
import { firmwareFlavours, type KernelFlavour } from './plan.ts';

export class UnsupportedBaseError extends Error {}

const PIOS_HINT = 'use Raspberry Pi OS Lite (arm64) from https://www.raspberrypi.com/software/operating-systems/ and pin its sha256 in pi.baseImage';

/** Pi 5-class boards load kernel_2712.img when present and kernel8.img otherwise; a Pi OS image carries both. */
function isPi5Class(model: PiSpec['model']): boolean {
  return model === 'pi5' || model === 'pi500' || model === 'cm5';
}

/**
 * Kernel files on the boot partition that this model needs (pi-gen's arm64 image ships both
 * flavours); lab images (amd64) have one Debian kernel standing in for kernel8.img.
 */
function requiredKernelFiles(model: PiSpec['model'], arch: 'arm64' | 'amd64'): string[] {
  return isPi5Class(model) && arch === 'arm64' ? ['kernel8.img', 'kernel_2712.img'] : ['kernel8.img'];
}

/** Throws UnsupportedBaseError saying why and what to use, unless the boot partition looks like Pi OS. */
export function checkBootLayout(files: string[], configTxt: string | undefined, model: PiSpec['model'], arch: 'arm64' | 'amd64' = 'arm64'): void {
  const names = new Set(files.map((f) => f.toLowerCase()));
  if (configTxt === undefined) throw new UnsupportedBaseError(`the boot partition has no config.txt: not a Raspberry Pi image; ${PIOS_HINT}`);
  if (!names.has('cmdline.txt')) throw new UnsupportedBaseError(`the boot partition has no cmdline.txt: not a Raspberry Pi OS image; ${PIOS_HINT}`);
  const active = configTxt.split('\n').map((l) => l.replace(/#.*/, '').trim());
  const kernelLine = active.find((l) => /^kernel\s*=/.test(l));
  const initramfsLine = active.find((l) => /^initramfs\s+/.test(l));
  const debian = [...names].some((n) => /^vmlinuz-/.test(n)) || /vmlinuz-/.test(kernelLine ?? '') || /initrd\.img-/.test(initramfsLine ?? '');
  if (debian)
    throw new UnsupportedBaseError(
      'this is a Debian raspi-firmware layout (vmlinuz-<ver>/initrd.img-<ver> named in config.txt, which that package regenerates on every kernel update and would undo the encrypted-root setup); ' +
        `provision-pi supports the Raspberry Pi OS layout (kernel8.img/kernel_2712.img + auto_initramfs=1): ${PIOS_HINT}`,
    );
  if (kernelLine || initramfsLine)
    throw new UnsupportedBaseError(`config.txt names its own kernel or initramfs (${kernelLine ?? initramfsLine}); provision-pi only supports Raspberry Pi OS's auto_initramfs=1 layout: ${PIOS_HINT}`);
  const missing = requiredKernelFiles(model, arch).filter((k) => !names.has(k));
  if (missing.length)
    throw new UnsupportedBaseError(`the boot partition lacks ${missing.join(' and ')} (a ${model} boots ${isPi5Class(model) ? 'kernel_2712.img, or kernel8.img' : 'kernel8.img'}): not a Raspberry Pi OS arm64 image; ${PIOS_HINT}`);
}

/** Checks that the installed kernels give the model every flavour it needs; returns them. */
export function checkFlavours(versions: string[], model: PiSpec['model'], arch: 'arm64' | 'amd64'): KernelFlavour[] {
  const flavours = firmwareFlavours(versions);
  const have = new Set(flavours.map((f) => f.kernel));
  const missing = requiredKernelFiles(model, arch).filter((k) => !have.has(k));
  if (missing.length) throw new UnsupportedBaseError(`no installed kernel under /usr/lib/modules maps to ${missing.join(' and ')} (kernels: ${versions.join(', ')}); ${PIOS_HINT}`);
  return flavours;
}

// ---------------------------------------------------------------- disk id

/** A new MBR disk signature ("0x" + 8 hex digits, never 0) from 4 random bytes. */
export function diskIdFrom(random: Buffer): string {
  const n = random.readUInt32BE(0) || 1;
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/** PARTUUID=<old>-NN → PARTUUID=<new>-NN (cmdline.txt, fstab): the partitions' ids follow the disk id. */
export function rewritePartuuids(text: string, oldDiskId: string, newDiskId: string): string {
  const hex = (id: string) => id.replace(/^0x/i, '').toLowerCase().padStart(8, '0');
  const re = new RegExp(`PARTUUID=${hex(oldDiskId)}-(\\d{2})`, 'gi');
  return text.replace(re, (_m, n: string) => `PARTUUID=${hex(newDiskId)}-${n}`);
}
