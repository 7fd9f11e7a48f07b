// Builds an arm64 "Raspberry Pi OS Lite"-shaped base image for the image tests (the real image cannot
// be downloaded here), from Debian arm64 packages run under qemu-user in a private binfmt_misc
// (chroot.ts withForeignArch: nothing is registered on the machine):
// - pi-gen's disk: MBR, p1 FAT32 "bootfs", p2 ext4 "rootfs", fstab by PARTUUID; pi-gen's
//   config.txt (auto_initramfs=1, arm_64bit=1, no kernel= line) and cmdline.txt (console=serial0 +
//   tty1, root=PARTUUID=…-02, init=/usr/lib/raspberrypi-sys-mods/firstboot);
// - Pi OS's two kernel flavours on the FAT: kernel8.img + initramfs8 (Debian's arm64 kernel, its
//   version left as Debian names it, since the kernel looks its modules up by that name) and
//   kernel_2712.img + initramfs_2712 (the same Debian kernel renamed <ver>+rpt-rpi-2712, modules
//   hard-linked: it is never booted, it only gives provision-pi the Pi 5 flavour to build and check);
// - the Pi OS kernel profile (pios-kernel-profile.ts): what Pi OS builds in is gone as .ko and listed
//   in modules.builtin; TEST STAND-IN: the removed code is stashed (not as *.ko) and loaded at
//   init-top by an initramfs hook of the base, so the Debian kernel still finds the stick and keyboard;
// - a stand-in for Pi OS's raspi-firmware hooks (RPi's package, not Debian's): kernel and initramfs
//   copied to the flavour's fixed names and the Broadcom DTBs next to them. Its source was not
//   available; the version-suffix → file-name mapping (-2712 → *_2712, else *8) is assumed from the
//   files Pi OS images carry. No GPU firmware (start*.elf) or overlays: nothing here boots them;
// - ssh off without host keys, regenerate_ssh_host_keys and userconf-pi's wizard armed (stand-ins,
//   lab-base.ts piosFirstBootAndFixtures), the same test fixtures writing to ttyAMA0.
// Fast to build: dpkg --force-unsafe-io, no docs/man/locales, and no initramfs until every package
// is in (update-initramfs diverted to a no-op while dpkg runs, then one MODULES=list build per flavour).
// Cached in $PULLVAULT_TEST_CACHE like the amd64 base. Warm it: npx tsx test/image/pios-base.ts
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../../lib/proc/index.ts';
import { chroot, withForeignArch } from '../../provision/image/chroot.ts';
import { assemblePiDisk, cacheDir, debianMirror, piosFirstBootAndFixtures, writeFileSet, type FileSet } from './lab-base.ts';
import { builtinLines, builtinLoadOrder, parseModulesDep, PIOS_BUILTIN_MODULES } from './pios-kernel-profile.ts';

export type PiosRelease = 'bookworm' | 'trixie';
export const PIOS_DISK_ID = '0x6c3e1f0a';
export const PIOS_SERIAL = '/dev/ttyAMA0';
/** where the stand-in keeps the code Pi OS builds in (file names end .ko.pilab-builtin: no initramfs listing counts them) */
export const STANDIN_DIR = 'usr/lib/pilab-builtin';

export const PIOS_PACKAGES = [
  'systemd-sysv', 'udev', 'kmod', 'initramfs-tools', 'busybox', 'e2fsprogs', 'fdisk', 'zstd', 'procps', 'util-linux',
  'openssh-server', 'sudo', 'ca-certificates',
];
const KERNEL_PACKAGE = 'linux-image-arm64';

/** pi-gen bookworm-arm64 stage1/00-boot-files/files/config.txt */
const CONFIG_TXT_BOOKWORM = `# For more options and information see
# http://rptl.io/configtxt
# Some settings may impact device functionality. See link above for details

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Additional overlays and parameters are documented
# /boot/firmware/overlays/README

# Automatically load overlays for detected cameras
camera_auto_detect=1

# Automatically load overlays for detected DSI displays
display_auto_detect=1

# Automatically load initramfs files, if found
auto_initramfs=1

# Enable DRM VC4 V3D driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2

# Don't have the firmware create an initial video= setting in cmdline.txt.
# Use the kernel's default instead.
disable_fw_kms_setup=1

# Run in 64-bit mode
arm_64bit=1

# Disable compensation for displays with overscan
disable_overscan=1

# Run as fast as firmware / board allows
arm_boost=1

[cm4]
# Enable host mode on the 2711 built-in XHCI USB controller.
# This line should be removed if the legacy DWC2 controller is required
# (e.g. for USB device mode) or if USB support is not required.
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host

[all]
`;
/** pi-gen arm64 (trixie) stage1/00-boot-files/files/config.txt: bookworm's plus a [pi5] section */
const CONFIG_TXT_TRIXIE = CONFIG_TXT_BOOKWORM.replace(/\[all\]\n$/, '[pi5]\ndtoverlay=nospi10\n\n[all]\n');

const FIRMWARE_HOOK = `#!/bin/sh
# TEST STAND-IN for Raspberry Pi OS's raspi-firmware kernel hook: the kernel to the name the firmware
# loads for its flavour, the Broadcom DTBs beside it (mapping assumed, see test/image/pios-base.ts)
set -e
ver=$1
case $ver in *-2712) dst=kernel_2712.img ;; *) dst=kernel8.img ;; esac
cp "\${2:-/boot/vmlinuz-$ver}" /boot/firmware/$dst
if [ -d /usr/lib/linux-image-$ver/broadcom ]; then cp /usr/lib/linux-image-$ver/broadcom/*.dtb /boot/firmware/; fi
`;
const INITRAMFS_HOOK = `#!/bin/sh
# TEST STAND-IN for Raspberry Pi OS's raspi-firmware initramfs hook: initrd to initramfs8 / initramfs_2712
set -e
case $1 in *-2712) dst=initramfs_2712 ;; *) dst=initramfs8 ;; esac
cp "$2" /boot/firmware/$dst
`;
// initramfs-tools hook, loader and init-top script: the code Pi OS builds in is in place before
// anything asks for a module. The initramfs's modprobe becomes a wrapper that runs the loader first,
// so also an /init other than initramfs-tools' (provision-pi's LUKS VM) finds ext4, vfat, USB there.
const STANDIN_HOOK = `#!/bin/sh
# TEST STAND-IN (not Pi OS): carries the drivers Pi OS builds into its kernel, which this Debian kernel
# has as modules; the profile removed their .ko files and listed them in modules.builtin.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case $1 in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
src=/${STANDIN_DIR}/\${version}
[ -d "$src" ] || exit 0
mkdir -p "\${DESTDIR}/${STANDIN_DIR}"
cp -a "$src" /${STANDIN_DIR}/load "\${DESTDIR}/${STANDIN_DIR}/"
copy_exec /usr/bin/kmod /${STANDIN_DIR}/insmod
copy_exec /usr/bin/kmod /${STANDIN_DIR}/modprobe
for m in $(awk '$1=="modprobe"{print $2}' "$src/order"); do manual_add_modules "$m"; done
for p in sbin/modprobe usr/sbin/modprobe; do
  if [ -e "\${DESTDIR}/$p" ] || [ -L "\${DESTDIR}/$p" ]; then
    rm -f "\${DESTDIR}/$p"
    printf '#!/bin/sh\\n/${STANDIN_DIR}/load\\nexec /${STANDIN_DIR}/modprobe "$@"\\n' > "\${DESTDIR}/$p"
    chmod 755 "\${DESTDIR}/$p"
  fi
done
`;
const STANDIN_LOAD = `#!/bin/sh
# TEST STAND-IN (not Pi OS): load what Pi OS's kernel would have built in, once (see the hook pilab-builtin)
d=/${STANDIN_DIR}/$(uname -r)
[ -r "$d/order" ] || exit 0
[ -e /${STANDIN_DIR}/.loaded ] && exit 0
: > /${STANDIN_DIR}/.loaded
while read -r op name file; do
  case $op in
    modprobe) /${STANDIN_DIR}/modprobe -q "$name" || true ;;
    insmod) grep -q "^$name " /proc/modules || /${STANDIN_DIR}/insmod "$d/$file" || echo "pilab-builtin: $name failed" ;;
  esac
done < "$d/order"
exit 0
`;
const STANDIN_INIT_TOP = `#!/bin/sh
# TEST STAND-IN (not Pi OS): see the hook pilab-builtin
PREREQ=""
prereqs() { echo "$PREREQ"; }
case $1 in prereqs) prereqs; exit 0 ;; esac
/${STANDIN_DIR}/load
exit 0
`;

// pi-gen arm64 (trixie) stage2/04-cloud-init: cloud-init and rpi-cloud-init-mods installed, its three
// NoCloud files on bootfs (here without their comment lines, which carry no settings).
const TRIXIE_NOCLOUD: FileSet = {
  'boot/firmware/meta-data': { mode: 0o755, text: 'dsmode: local\ninstance_id: rpios-image\n' },
  'boot/firmware/user-data': { mode: 0o755, text: '#cloud-config\n' },
  'boot/firmware/network-config': { mode: 0o755, text: '# netplan-compatible network configuration (pi-gen: every line commented out)\n' },
  // TEST STAND-IN for rpi-cloud-init-mods, whose source was not available: it is assumed to point
  // NoCloud at the FAT (its files are not on a "cidata" volume, so stock cloud-init would not look there)
  'etc/cloud/cloud.cfg.d/99_pilab-rpi-seed.cfg': {
    mode: 0o644,
    text: 'datasource_list: [ NoCloud, None ]\ndatasource:\n  NoCloud:\n    seedfrom: file:///boot/firmware/\n',
  },
  'etc/systemd/system/cloud-init-local.service.d/pilab-bootfs.conf': { mode: 0o644, text: '[Unit]\nRequiresMountsFor=/boot/firmware\n' },
  // TEST FIXTURE: says on the serial console that cloud-init ran its boot stage (as the wizard stand-in does)
  'etc/cloud/cloud.cfg.d/99_pilab-fixture.cfg': { mode: 0o644, text: `bootcmd:\n  - [ sh, -c, "echo PILAB-CLOUD-INIT-RAN > ${PIOS_SERIAL}" ]\n` },
  // raspberrypi-sys-mods' rpi-resize.service (pi-gen trixie: `systemctl enable rpi-resize`, `resize` on
  // cmdline.txt): it would grow p2, which is LUKS on a card. The stand-in only says that it ran.
  'etc/systemd/system/rpi-resize.service': {
    mode: 0o644,
    text: `[Unit]\nDescription=Resize the root partition (stand-in for raspberrypi-sys-mods)\nConditionKernelCommandLine=resize\n\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo PILAB-RPI-RESIZE-RAN > ${PIOS_SERIAL}'\n\n[Install]\nWantedBy=multi-user.target\n`,
  },
};

interface ReleaseShape {
  configTxt: string;
  /** pi-gen's cmdline.txt after export-image (ROOTDEV → PARTUUID) */
  cmdline: string;
  packages: string[];
  files: FileSet;
  enable: string[];
  /**
   * Added to the base's own (MODULES=list) initramfs, so the base itself boots under -M virt: the
   * MODULES=most initramfs of a real image has them. Only the trixie base is booted as it is.
   */
  baseInitramfsModules: string[];
}

const PARTUUID_ROOT = `root=PARTUUID=${PIOS_DISK_ID.slice(2)}-02`;
const RELEASES: Record<PiosRelease, ReleaseShape> = {
  bookworm: {
    configTxt: CONFIG_TXT_BOOKWORM,
    // pi-gen stage1 cmdline.txt + export-image's `quiet init=/usr/lib/raspberrypi-sys-mods/firstboot`
    cmdline: `console=serial0,115200 console=tty1 ${PARTUUID_ROOT} rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n`,
    packages: [],
    files: {},
    enable: [],
    baseInitramfsModules: [],
  },
  trixie: {
    configTxt: CONFIG_TXT_TRIXIE,
    // pi-gen arm64 (trixie) stage1 cmdline.txt: no init=, `resize` for rpi-resize
    cmdline: `console=serial0,115200 console=tty1 ${PARTUUID_ROOT} rootfstype=ext4 fsck.repair=yes rootwait resize\n`,
    packages: ['cloud-init'],
    files: TRIXIE_NOCLOUD,
    enable: ['rpi-resize'],
    baseInitramfsModules: ['virtio_pci', 'virtio_blk'],
  },
};

function releaseFiles(release: PiosRelease): FileSet {
  const r = RELEASES[release];
  return {
    ...piosFirstBootAndFixtures(PIOS_SERIAL, PIOS_DISK_ID),
    'boot/firmware/config.txt': { mode: 0o644, text: r.configTxt },
    'boot/firmware/cmdline.txt': { mode: 0o644, text: r.cmdline },
    'etc/kernel/postinst.d/z50-raspi-firmware': { mode: 0o755, text: FIRMWARE_HOOK },
    'etc/initramfs/post-update.d/z50-raspi-firmware': { mode: 0o755, text: INITRAMFS_HOOK },
    'etc/initramfs-tools/hooks/pilab-builtin': { mode: 0o755, text: STANDIN_HOOK },
    'etc/initramfs-tools/scripts/init-top/pilab-builtin': { mode: 0o755, text: STANDIN_INIT_TOP },
    [`${STANDIN_DIR}/load`]: { mode: 0o755, text: STANDIN_LOAD },
    [`etc/pilab-release-${release}`]: { mode: 0o644, text: `${release}\n` },
    ...r.files,
  };
}

export function piosBaseKey(release: PiosRelease): string {
  const h = createHash('sha256');
  const r = RELEASES[release];
  h.update(`pios v1 ${release} ${PIOS_DISK_ID}\n${[...PIOS_PACKAGES, ...r.packages].join(',')} ${KERNEL_PACKAGE}\n${PIOS_BUILTIN_MODULES.join(',')}\n${STANDIN_DIR}\n`);
  if (r.enable.length || r.baseInitramfsModules.length) h.update(`enable ${r.enable.join(',')} base-initramfs ${r.baseInitramfsModules.join(',')}\n`);
  for (const [p, f] of Object.entries(releaseFiles(release)).sort()) h.update(`${p} ${f.mode}\n${f.text}\n`);
  h.update(readFileSync(new URL('./pios-kernel-profile.ts', import.meta.url)));
  return h.digest('hex').slice(0, 16);
}

const NO_INITRAMFS = '#!/bin/sh\n# diverted while the base is built: one initramfs per flavour at the end\nexit 0\n';

/** Returns the cached arm64 Pi OS-shaped base (.img) and its sha256, building it if needed. */
export async function piosBaseImage(release: PiosRelease = 'bookworm', log: (s: string) => void = console.log): Promise<{ path: string; sha256: string; seconds?: Record<string, number> }> {
  const dir = cacheDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const img = path.join(dir, `pios-base-arm64-${release}-${piosBaseKey(release)}.img`);
  const shaFile = `${img}.sha256`;
  if (existsSync(img) && existsSync(shaFile)) return { path: img, sha256: readFileSync(shaFile, 'utf8').trim() };

  const t0 = Date.now();
  const seconds: Record<string, number> = {};
  let last = t0;
  const lap = (name: string) => {
    seconds[name] = Math.round((Date.now() - last) / 1000);
    last = Date.now();
    log(`pios-base: ${name} ${seconds[name]} s`);
  };
  const work = mkdtempSync(path.join(dir, 'build-pios-'));
  try {
    const overlay = path.join(work, 'overlay');
    writeFileSet(overlay, releaseFiles(release));
    mkdirSync(path.join(overlay, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
    symlinkSync('/etc/systemd/system/pilab-report.service', path.join(overlay, 'etc/systemd/system/multi-user.target.wants/pilab-report.service'));
    const root = path.join(work, 'root');
    const mirror = debianMirror();
    const security = mirror.replace(/\/debian\/?$/, '/debian-security');
    const shape = RELEASES[release];
    const packages = [...PIOS_PACKAGES, ...shape.packages];
    log(`pios-base: mmdebstrap arm64 ${release} (${packages.length + 1} packages) from ${mirror}, under qemu-user`);
    const inRoot = (cmd: string) => `--customize-hook=chroot "$1" ${cmd}`;
    await withForeignArch('arm64', [
      'mmdebstrap', '--mode=root', '--variant=minbase', '--architectures=arm64', '--components=main',
      // the emulation is this namespace's own binfmt_misc entry, which mmdebstrap's check cannot see
      '--skip=check/qemu',
      `--include=${packages.join(',')}`,
      '--dpkgopt=force-unsafe-io',
      '--dpkgopt=path-exclude=/usr/share/man/*', '--dpkgopt=path-exclude=/usr/share/doc/*', '--dpkgopt=path-exclude=/usr/share/locale/*',
      '--aptopt=APT::Install-Recommends "false"',
      // no initramfs while dpkg runs (each trigger would build one under emulation)
      '--essential-hook=chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs',
      `--essential-hook=printf '%s' '${NO_INITRAMFS}' > "$1/usr/sbin/update-initramfs" && chmod 755 "$1/usr/sbin/update-initramfs"`,
      `--customize-hook=sync-in ${overlay} /`,
      inRoot(`apt-get install -y --no-install-recommends ${KERNEL_PACKAGE}`),
      inRoot('passwd -d root'),
      inRoot('systemctl disable ssh'),
      '--customize-hook=rm -f "$1"/etc/ssh/ssh_host_*_key*',
      inRoot(`systemctl enable regenerate_ssh_host_keys userconfig ${shape.enable.join(' ')}`),
      release, root, `deb ${mirror} ${release} main`, `deb ${security} ${release}-security main`,
    ], { liveStderr: !!process.env.PULLVAULT_TEST_VERBOSE });
    lap('mmdebstrap');

    const modDir = path.join(root, 'usr/lib/modules');
    const versions = readdirSync(modDir);
    if (versions.length !== 1) throw new Error(`pios-base: expected one Debian kernel, found ${versions.join(', ')}`);
    const v8 = versions[0];
    const v2712 = `${v8.replace(/-arm64$/, '')}+rpt-rpi-2712`;
    await applyKernelProfile(root, v8);
    lap('kernel profile');
    // the Pi 5 flavour: the same kernel under a 2712 name (hard links: no extra space)
    await run(['cp', '-al', path.join(modDir, v8), path.join(modDir, v2712)]);
    await run(['cp', '-al', path.join(root, STANDIN_DIR, v8), path.join(root, STANDIN_DIR, v2712)]);
    for (const f of ['vmlinuz', 'config', 'System.map']) if (existsSync(path.join(root, 'boot', `${f}-${v8}`))) copyFileSync(path.join(root, 'boot', `${f}-${v8}`), path.join(root, 'boot', `${f}-${v2712}`));
    const dtbs = path.join(root, 'usr/lib', `linux-image-${v8}`);
    if (existsSync(dtbs)) await run(['cp', '-al', dtbs, path.join(root, 'usr/lib', `linux-image-${v2712}`)]);
    await chroot(root, ['depmod', '-a', v2712], { arch: 'arm64' });

    // initramfs-tools back, then what Pi OS's kernel postinst leaves: both flavours on the FAT
    rmSync(path.join(root, 'usr/sbin/update-initramfs'));
    await chroot(root, ['dpkg-divert', '--quiet', '--local', '--rename', '--remove', '/usr/sbin/update-initramfs'], { arch: 'arm64' });
    const listConf = path.join(root, 'etc/initramfs-tools/conf.d/pilab-base-build');
    // MODULES=most walks every driver under emulation (> 12 min); provision-pi rebuilds these anyway
    writeFileSync(listConf, 'MODULES=list\n');
    const modulesFile = path.join(root, 'etc/initramfs-tools/modules');
    const modulesOrig = readFileSync(modulesFile, 'utf8');
    if (shape.baseInitramfsModules.length) writeFileSync(modulesFile, modulesOrig + shape.baseInitramfsModules.join('\n') + '\n');
    for (const v of [v8, v2712]) {
      await chroot(root, ['/etc/kernel/postinst.d/z50-raspi-firmware', v, `/boot/vmlinuz-${v}`], { arch: 'arm64' });
      await chroot(root, ['update-initramfs', '-c', '-k', v], { arch: 'arm64' });
    }
    writeFileSync(modulesFile, modulesOrig);
    rmSync(listConf);
    lap('flavours + initramfs');

    const { tmp, totalMiB } = await assemblePiDisk(root, work, PIOS_DISK_ID);
    const sha = (await run(['sha256sum', tmp])).stdout.split(' ')[0];
    renameSync(tmp, img);
    writeFileSync(shaFile, sha + '\n');
    lap('disk');
    log(`pios-base: ${img} (${totalMiB} MiB) built in ${((Date.now() - t0) / 1000).toFixed(0)} s ${JSON.stringify(seconds)}`);
    return { path: img, sha256: sha, seconds };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Removes what Pi OS builds in from Debian's module tree into the stand-in's stash; lists it in modules.builtin. */
async function applyKernelProfile(root: string, ver: string): Promise<void> {
  const mod = path.join(root, 'usr/lib/modules', ver);
  const steps = builtinLoadOrder(parseModulesDep(readFileSync(path.join(mod, 'modules.dep'), 'utf8')), PIOS_BUILTIN_MODULES);
  const stash = path.join(root, STANDIN_DIR, ver);
  mkdirSync(stash, { recursive: true });
  const order: string[] = [];
  for (const s of steps) {
    if (s.op === 'modprobe') {
      order.push(`modprobe ${s.name}`);
      continue;
    }
    const file = `${s.name}.ko.pilab-builtin`;
    const src = path.join(mod, s.path);
    if (s.path.endsWith('.xz')) await run(['sh', '-c', 'xz -dc -- "$1" > "$2"', 'unxz', src, path.join(stash, file)]);
    else if (s.path.endsWith('.zst')) await run(['zstd', '-q', '-d', '-o', path.join(stash, file), src]);
    else copyFileSync(src, path.join(stash, file));
    rmSync(src);
    order.push(`insmod ${s.name} ${file}`);
  }
  writeFileSync(path.join(stash, 'order'), order.join('\n') + '\n');
  appendFileSync(path.join(mod, 'modules.builtin'), builtinLines(steps).map((l) => l + '\n').join(''));
  await chroot(root, ['depmod', '-a', ver], { arch: 'arm64' });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  piosBaseImage((process.argv[2] as PiosRelease | undefined) ?? 'bookworm').then((r) => console.log(JSON.stringify(r)), (e) => { console.error(String(e?.message ?? e)); process.exit(1); });
}
