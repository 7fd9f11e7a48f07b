// Builds a "Raspberry Pi OS Lite"-shaped base image from Debian packages for the image tests
// (the real Pi OS image cannot be downloaded here): MBR disk, p1 FAT32 "bootfs" holding
// config.txt (auto_initramfs=1), cmdline.txt (root=PARTUUID=…-02, init=…firstboot, splash),
// kernel8.img + initramfs8 copied there by kernel/initramfs hooks the way raspi-firmware does;
// p2 ext4 "rootfs" with the Pi-OS fstab. amd64 flavour (pi.arch "amd64") so CI runs it natively.
//
// Test fixtures inside the root (not product code): /sbin/marker-init (prints a marker from the
// decrypted root, then powers off) and pilab-report.service (after a full systemd boot, prints the
// mounts of / and the data disk, sshd's state and host keys, the first-boot units, then powers off).
// Like pi-gen's images: openssh-server installed but disabled and without host keys, and stand-ins
// for raspberrypi-sys-mods' regenerate_ssh_host_keys.service and userconf-pi's userconfig.service enabled.
//
// Cached under $PULLVAULT_TEST_CACHE (default /var/cache/pullvault-test) keyed by a hash of
// everything that goes into it. Run standalone to warm the cache: npx tsx test/image/lab-base.ts
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, chmodSync, symlinkSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { run } from '../../lib/proc/index.ts';

export const LAB_DISK_ID = '0x5eed1ab5';
const BOOT_MIB = 256;
const BOOT_START_MIB = 4;

export const LAB_PACKAGES = [
  'linux-image-amd64', 'systemd-sysv', 'udev', 'kmod', 'initramfs-tools', 'busybox', 'e2fsprogs', 'fdisk', 'zstd',
  'procps', 'util-linux', 'openssh-server',
];

export type FileSet = Record<string, { mode: number; text: string }>;

/** pi-gen's fstab and hostname, Pi OS's first-boot units (stand-ins) and the test fixtures, which report on `serial`. */
export function piosFirstBootAndFixtures(serial: string, diskId: string): FileSet {
  return {
  'etc/fstab': {
    mode: 0o644,
    text: `proc            /proc           proc    defaults          0       0
PARTUUID=${diskId.slice(2)}-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=${diskId.slice(2)}-02  /               ext4    defaults,noatime  0       1
`,
  },
  'etc/hostname': { mode: 0o644, text: 'raspberrypi\n' },
  'usr/lib/raspberrypi-sys-mods/firstboot': {
    mode: 0o755,
    text: '#!/bin/sh\n# lab stand-in for Pi OS first-boot resize (provision-pi must remove init= pointing here)\nexec /sbin/init\n',
  },
  // raspberrypi-sys-mods' regenerate_ssh_host_keys.service as pi-gen enables it: new host keys at first boot
  'etc/systemd/system/regenerate_ssh_host_keys.service': {
    mode: 0o644,
    text: `[Unit]
Description=Regenerate SSH host keys (stand-in for raspberrypi-sys-mods)
Before=ssh.service
ConditionFileIsExecutable=/usr/bin/ssh-keygen

[Service]
Type=oneshot
ExecStartPre=-/bin/sh -c "/bin/rm -f -v /etc/ssh/ssh_host_*_key*"
ExecStart=/usr/bin/ssh-keygen -A -v
ExecStartPost=/bin/systemctl disable regenerate_ssh_host_keys

[Install]
WantedBy=multi-user.target
`,
  },
  // userconf-pi's first-boot "create a user" wizard (userconfig.service, armed by pi-gen's rename-user -f -s);
  // the stand-in only says on the serial console that it ran
  'etc/systemd/system/userconfig.service': {
    mode: 0o644,
    text: `[Unit]
Description=User configuration wizard (stand-in for userconf-pi)
Before=systemd-user-sessions.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo PILAB-USERCONF-WIZARD-RAN > ${serial}'

[Install]
WantedBy=multi-user.target
`,
  },
  'usr/sbin/marker-init': {
    mode: 0o755,
    text: `#!/bin/sh
# TEST FIXTURE: proves switch_root into the decrypted root without running systemd
mount -t proc proc /proc 2>/dev/null
echo "PILAB-MARKER: userspace reached; / is $(awk '$2=="/"{print $1" "$3}' /proc/mounts)"
echo o > /proc/sysrq-trigger
sleep 10
`,
  },
  'usr/local/sbin/pilab-report': {
    mode: 0o755,
    text: `#!/bin/sh
# TEST FIXTURE: after a full systemd boot, report what is mounted and unlocked, then power off.
# The data disk is nofail: nothing orders multi-user.target after it, so wait until systemd has no
# boot job left (its unlock + mount have succeeded or failed) before looking.
state=$(timeout 900 systemctl is-system-running --wait 2>&1)
{
  echo "PILAB-FULLINIT-BEGIN"
  echo "SYSTEM $state"
  awk '{print "MOUNT " $1 " " $2 " " $3}' /proc/mounts
  ls /dev/mapper | sed 's/^/MAPPER /'
  for f in /var/lib/pullvault/root-grown; do [ -e $f ] && echo "GROWN $f"; done
  df -k / | awk 'NR==2{print "ROOTSIZE_KB " $2}'
  # written by the test into the data disk's ext4 before it was encrypted
  for f in /srv/pullvault/pilab-data-marker; do [ -r $f ] && echo "DATAMARKER $(cat $f)"; done
  systemctl --failed --no-legend --plain | sed 's/^/FAILED /'
  echo "SSHD $(systemctl is-active ssh)"
  for k in /etc/ssh/ssh_host_*_key.pub; do echo "HOSTKEY $(cut -d' ' -f1,2 "$k")"; done
  for u in userconfig regenerate_ssh_host_keys; do echo "UNIT $u $(systemctl is-enabled $u 2>&1)"; done
  [ -r /root/.ssh/authorized_keys ] && cut -d' ' -f1,2 /root/.ssh/authorized_keys | sed 's/^/AUTHKEY /'
  grep -h '^MODULES=' /etc/initramfs-tools/conf.d/pullvault | sed 's/^/INITRAMFS_CONF /'
  echo "NODE $(node --version 2>&1)"
  echo "PILAB-FULLINIT-END"
} > ${serial} 2>&1
systemctl poweroff
`,
  },
  'etc/systemd/system/pilab-report.service': {
    mode: 0o644,
    text: `[Unit]
Description=TEST FIXTURE: report mounts on the serial console and power off
After=multi-user.target

[Service]
# exec, not oneshot: the script waits for the boot to finish, which must not include its own job
Type=exec
ExecStart=/usr/local/sbin/pilab-report

[Install]
WantedBy=multi-user.target
`,
  },
  };
}

const FILES: FileSet = {
  ...piosFirstBootAndFixtures('/dev/ttyS0', LAB_DISK_ID),
  'boot/firmware/config.txt': {
    mode: 0o644,
    text: `# For more options and information see
# http://rptl.io/configtxt
# Some settings may impact device functionality. See link above for details

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Automatically load initramfs files, if found
auto_initramfs=1

# Enable DRM VC4 V3D driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2

# Run in 64-bit mode
arm_64bit=1

[cm4]
otg_mode=1

[all]
`,
  },
  'boot/firmware/cmdline.txt': {
    mode: 0o644,
    text: `console=ttyS0,115200 console=tty1 root=PARTUUID=${LAB_DISK_ID.slice(2)}-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot splash plymouth.ignore-serial-consoles\n`,
  },
  // raspi-firmware's job on Pi OS: put the kernel and its initramfs where the firmware loads them
  'etc/kernel/postinst.d/z50-pilab-firmware': {
    mode: 0o755,
    text: '#!/bin/sh\n# lab stand-in for raspi-firmware: kernel -> /boot/firmware/kernel8.img\nset -e\ncp "${2:-/boot/vmlinuz-$1}" /boot/firmware/kernel8.img\n',
  },
  'etc/initramfs/post-update.d/z50-pilab-firmware': {
    mode: 0o755,
    text: '#!/bin/sh\n# lab stand-in for raspi-firmware: initrd -> /boot/firmware/initramfs8 (auto_initramfs=1)\nset -e\ncp "$2" /boot/firmware/initramfs8\n',
  },
};

/** Writes the files under `dir` with their modes (an overlay for mmdebstrap's sync-in). */
export function writeFileSet(dir: string, files: FileSet): void {
  for (const [p, f] of Object.entries(files)) {
    const full = path.join(dir, p);
    mkdirSync(path.dirname(full), { recursive: true });
    writeFileSync(full, f.text);
    chmodSync(full, f.mode);
  }
}

export function cacheDir(): string {
  return process.env.PULLVAULT_TEST_CACHE ?? '/var/cache/pullvault-test';
}

export function labBaseKey(arch: 'amd64'): string {
  const h = createHash('sha256');
  h.update(`v5 ${arch} ${BOOT_START_MIB} ${BOOT_MIB} ${LAB_DISK_ID}\n`);
  h.update(LAB_PACKAGES.join(',') + '\n');
  for (const [p, f] of Object.entries(FILES).sort()) h.update(`${p} ${f.mode}\n${f.text}\n`);
  return h.digest('hex').slice(0, 16);
}

export function debianMirror(): string {
  if (process.env.MIRROR) return process.env.MIRROR;
  try {
    const t = readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8');
    const m = /^URIs:\s*(\S+)/m.exec(t);
    if (m) return m[1];
  } catch {}
  try {
    const t = readFileSync('/etc/apt/sources.list', 'utf8');
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/m.exec(t);
    if (m) return m[1];
  } catch {}
  return 'http://deb.debian.org/debian';
}

/**
 * pi-gen's disk: MBR with `diskId`, p1 FAT32 "bootfs" (BOOT_MIB at BOOT_START_MIB) made from the
 * root's /boot/firmware (then emptied: the FAT is mounted there), p2 ext4 "rootfs" from the rest.
 */
export async function assemblePiDisk(root: string, work: string, diskId: string): Promise<{ tmp: string; totalMiB: number }> {
  // boot partition from /boot/firmware, root from the rest
  const boot = path.join(work, 'boot.vfat');
  await run(['mkfs.vfat', '-n', 'bootfs', '-F', '32', '-C', boot, String(BOOT_MIB * 1024)]);
  const fw = path.join(root, 'boot/firmware');
  const entries = readdirSync(fw).map((e) => path.join(fw, e));
  await run(['mcopy', '-s', '-i', boot, ...entries, '::']);
  for (const e of entries) rmSync(e, { recursive: true });
  const used = Number((await run(['du', '-sm', '--exclude=./proc', '--exclude=./sys', '--exclude=./dev', '.'], { cwd: root })).stdout.split('\t')[0]);
  const rootMiB = Math.ceil(used * 1.25) + 128;
  const rootFs = path.join(work, 'root.ext4');
  await run(['mkfs.ext4', '-q', '-L', 'rootfs', '-E', 'root_owner=0:0', '-d', root, rootFs, `${rootMiB}M`]);
  const tmp = path.join(work, 'disk.img');
  const totalMiB = BOOT_START_MIB + BOOT_MIB + rootMiB;
  await run(['truncate', '-s', `${totalMiB}M`, tmp]);
  await run(['sfdisk', '-q', tmp], {
    input: `label: dos\nlabel-id: ${diskId}\nstart=${BOOT_START_MIB}MiB, size=${BOOT_MIB}MiB, type=c\nstart=${BOOT_START_MIB + BOOT_MIB}MiB, size=${rootMiB}MiB, type=83\n`,
  });
  await run(['dd', `if=${boot}`, `of=${tmp}`, 'bs=1M', `seek=${BOOT_START_MIB}`, 'conv=notrunc,sparse', 'status=none']);
  await run(['dd', `if=${rootFs}`, `of=${tmp}`, 'bs=1M', `seek=${BOOT_START_MIB + BOOT_MIB}`, 'conv=notrunc,sparse', 'status=none']);
  return { tmp, totalMiB };
}

/** Returns the path of a cached lab base image (.img) and its sha256, building it if needed. */
export async function labBaseImage(arch: 'amd64' = 'amd64', log: (s: string) => void = console.log): Promise<{ path: string; sha256: string }> {
  const dir = cacheDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = labBaseKey(arch);
  const img = path.join(dir, `lab-base-${arch}-${key}.img`);
  const shaFile = `${img}.sha256`;
  if (existsSync(img) && existsSync(shaFile)) return { path: img, sha256: readFileSync(shaFile, 'utf8').trim() };

  const t0 = Date.now();
  const work = mkdtempSync(path.join(dir, 'build-'));
  try {
    const overlay = path.join(work, 'overlay');
    writeFileSet(overlay, FILES);
    mkdirSync(path.join(overlay, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
    symlinkSync('/etc/systemd/system/pilab-report.service', path.join(overlay, 'etc/systemd/system/multi-user.target.wants/pilab-report.service'));
    const root = path.join(work, 'root');
    const mirror = debianMirror();
    const security = mirror.replace(/\/debian\/?$/, '/debian-security');
    log(`lab-base: mmdebstrap ${arch} (${LAB_PACKAGES.length} packages) from ${mirror}`);
    const others = LAB_PACKAGES.filter((p) => !p.startsWith('linux-image'));
    const kernels = LAB_PACKAGES.filter((p) => p.startsWith('linux-image'));
    // in a private mount namespace: mmdebstrap's /dev, /proc mounts in the chroot never show on the machine
    await run([
      'unshare', '--mount', '--propagation', 'private', '--',
      'mmdebstrap', '--variant=minbase', `--architectures=${arch}`, '--components=main',
      `--include=${others.join(',')}`,
      '--dpkgopt=path-exclude=/usr/share/man/*', '--dpkgopt=path-exclude=/usr/share/doc/*', '--dpkgopt=path-exclude=/usr/share/locale/*',
      '--aptopt=APT::Install-Recommends "false"',
      `--customize-hook=sync-in ${overlay} /`,
      // the kernel last, so its postinst runs the firmware-copy hooks above (as on Pi OS)
      `--customize-hook=chroot "$1" apt-get install -y --no-install-recommends ${kernels.join(' ')}`,
      '--customize-hook=chroot "$1" passwd -d root',
      // as pi-gen: ssh off, no host keys in the image, the first-boot units armed
      '--customize-hook=chroot "$1" systemctl disable ssh',
      '--customize-hook=rm -f "$1"/etc/ssh/ssh_host_*_key*',
      '--customize-hook=chroot "$1" systemctl enable regenerate_ssh_host_keys userconfig',
      'bookworm', root, `deb ${mirror} bookworm main`, `deb ${security} bookworm-security main`,
    ], { liveStderr: !!process.env.PULLVAULT_TEST_VERBOSE });
    log(`lab-base: rootfs ready after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    const { tmp, totalMiB } = await assemblePiDisk(root, work, LAB_DISK_ID);
    const sha = (await run(['sha256sum', tmp])).stdout.split(' ')[0];
    renameSync(tmp, img);
    writeFileSync(shaFile, sha + '\n');
    log(`lab-base: ${img} (${totalMiB} MiB) built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    return { path: img, sha256: sha };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  labBaseImage('amd64').then((r) => console.log(JSON.stringify(r)), (e) => { console.error(String(e?.message ?? e)); process.exit(1); });
}
