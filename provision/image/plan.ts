// provision-pi, the pure part: (inventory, facts about the base image and state) → the files to
// put into the root, the edits to cmdline.txt / config.txt / fstab, the LUKS parameters and the
// list of build steps. No I/O here: templates come in as strings, facts as plain data.
import Handlebars from 'handlebars';
import type { Inventory, PiSpec } from '../../contract/inventory-schema.ts';
import { dataMapperName, initramfsNetwork, luksParams, sshPort, tangThreshold, unlockSshPort, usbKeyFilesystem } from '../../contract/inventory-defaults.ts';
import { dropbearFiles, TANG_KEYSLOT, tokenImportArgs, unlockPackages } from './unlock-plan.ts';
import { KEYBOARD_MODULES, NETWORK_MODULES, requiredInitramfsModules, USB_HOST_MODULES } from './kernel-modules.ts';
import { WIFI_PATHS, wifiConnectionVars } from './wifi-plan.ts';

export const HEADER = 'rendered by pullvault provision-pi; re-provision instead of editing on the Pi';

/** Fixed paths inside the Pi's root (the runtime and provision-server rely on some of them). */
export const PI_PATHS = {
  keyscript: '/usr/local/lib/pullvault/unlock-keyscript',
  initramfsHook: '/etc/initramfs-tools/hooks/pullvault-unlock',
  initramfsConf: '/etc/initramfs-tools/conf.d/pullvault',
  initramfsModules: '/etc/initramfs-tools/modules',
  guardName: 'zz-pullvault-initramfs-guard',
  rpiUpdateStub: '/usr/local/sbin/rpi-update',
  aptPin: '/etc/apt/preferences.d/pullvault-no-rpi-update',
  growScript: '/usr/local/sbin/pullvault-grow-root',
  growService: '/etc/systemd/system/pullvault-grow-root.service',
  growStamp: '/var/lib/pullvault/root-grown',
  cryptsetupKeysDir: '/etc/cryptsetup-keys.d',
  sshDir: '/etc/pullvault/ssh',
  sshKey: '/etc/pullvault/ssh/id_ed25519',
  // same paths as install-runtime's plan (provision/runtime/plan.ts INSTALL_PATHS)
  knownHosts: '/etc/pullvault/known_hosts',
  s3Credentials: '/etc/pullvault/aws-credentials.json',
} as const;

const ROOT_MAPPER = 'cryptroot';
/** the key file's name on the USB stick */
export const USB_KEY_FILE = 'pullvault-root.key';
/** LUKS2 header room taken from the end of the ext4 image by `reencrypt --encrypt --reduce-device-size` */
export const LUKS_HEADER_MIB = 32;
// (Debian 12 / Pi OS bookworm: systemd's crypttab generator is in the systemd package itself)
const ROOT_PACKAGES = ['cryptsetup', 'cryptsetup-initramfs', 'busybox', 'fdisk', 'e2fsprogs'];
/**
 * What the runtime and the admin's login need (Pi OS Lite has no nodejs; bookworm's is 18, trixie's 20),
 * installed from the base image's own apt sources.
 */
const RUNTIME_PACKAGES = ['nodejs', 'rsync', 'zstd', 'openssh-client', 'openssh-server', 'cron', 'findutils', 'util-linux', 'sudo'];

export type Templates = Record<string, string>;
export const TEMPLATE_NAMES = [
  'crypttab', 'fstab', 'cmdline.txt', 'keyscript', 'initramfs-hook', 'initramfs-conf', 'initramfs-modules', 'kernel-guard',
  'rpi-update-block', 'apt-pin-rpi-update', 'grow-root.sh', 'grow-root.service', 'cryptsetup-keys-readme', 'known_hosts', 'hostname',
  'sshd-config', 'sudoers-admin', 'luks-guest-init', 'wifi.nmconnection', 'wifi-unblock.service',
] as const;

export function render(templates: Templates, name: string, vars: Record<string, unknown>): string {
  const src = templates[name];
  if (src === undefined) throw new Error(`template ${name}.hbs is missing`);
  return Handlebars.compile(src, { noEscape: true, strict: true })(vars);
}

export interface LuksPlan {
  cipher: string;
  keySizeBits: number;
  pbkdf: 'argon2id';
  pbkdfMemoryKiB: number;
  pbkdfIterations: number;
  /** argon2id threads: fixed so a header made on a big machine needs no more on the Pi */
  pbkdfParallel: number;
  sectorSize: number;
}

export function luksPlan(pi: PiSpec): LuksPlan {
  const p = luksParams(pi);
  return { ...p, pbkdf: 'argon2id', pbkdfParallel: 4, sectorSize: 4096 };
}

/** `cryptsetup` options shared by reencrypt --encrypt and luksAddKey (argv fragments, no secrets). */
function luksPbkdfArgs(l: LuksPlan): string[] {
  return ['--pbkdf', l.pbkdf, '--pbkdf-memory', String(l.pbkdfMemoryKiB), '--pbkdf-force-iterations', String(l.pbkdfIterations), '--pbkdf-parallel', String(l.pbkdfParallel)];
}

export function luksEncryptArgs(l: LuksPlan, uuid: string, keyFile: string, device: string): string[] {
  return [
    'cryptsetup', 'reencrypt', '--encrypt', '--type', 'luks2', '--batch-mode',
    '--cipher', l.cipher, '--key-size', String(l.keySizeBits), '--sector-size', String(l.sectorSize),
    '--uuid', uuid, '--reduce-device-size', `${LUKS_HEADER_MIB}M`, '--label', 'pullvault-root',
    ...luksPbkdfArgs(l), '--key-slot', '0', '--key-file', keyFile, device,
  ];
}

/** Adds keyslot `slot` (1: the recovery passphrase, 2: tang's) opened with the USB keyfile. */
export function luksAddKeyArgs(l: LuksPlan, keyFile: string, newKeyFile: string, slot: number, device: string): string[] {
  return ['cryptsetup', 'luksAddKey', '--batch-mode', ...luksPbkdfArgs(l), '--key-file', keyFile, '--new-key-slot', String(slot), device, newKeyFile];
}

export interface LuksJobFiles {
  keyFile: string;
  recoveryFile: string;
  /** pi.unlock.tang: keyslot 2's passphrase and the clevis token (its JWE) for the header */
  tang?: { keyFile: string; tokenFile: string };
  device: string;
}

/**
 * The root's LUKS commands in order, the same on this machine and in the VM (only the paths
 * differ): keyslot 0 the USB keyfile, 1 the recovery passphrase, 2 tang's passphrase with its token.
 */
export function luksJob(l: LuksPlan, uuid: string, f: LuksJobFiles): string[][] {
  return [
    luksEncryptArgs(l, uuid, f.keyFile, f.device),
    luksAddKeyArgs(l, f.keyFile, f.recoveryFile, 1, f.device),
    ...(f.tang ? [luksAddKeyArgs(l, f.keyFile, f.tang.keyFile, TANG_KEYSLOT, f.device), tokenImportArgs(f.tang.tokenFile, f.device)] : []),
  ];
}

/** Modules the initramfs must have (and loads early): the cipher, the key stick, a USB keyboard for the passphrase. */
export function initramfsModules(pi: PiSpec): string[] {
  const l = luksParams(pi);
  const cipherMods = /adiantum/.test(l.cipher)
    ? ['adiantum', 'chacha_generic', 'chacha_neon', 'nhpoly1305', 'nhpoly1305_neon', 'poly1305_generic', 'aes_generic', 'aes_arm64', 'aes_neon_blk']
    : ['xts', 'aes_generic', 'aes_arm64', 'aes_ce_blk', 'aes_ce_cipher', 'aesni_intel'];
  const fs = usbKeyFilesystem(pi) === 'vfat' ? ['vfat', 'nls_cp437', 'nls_ascii', 'nls_iso8859_1', 'nls_utf8'] : [];
  const net = pi.unlock?.tang?.length || pi.unlock?.ssh ? NETWORK_MODULES : [];
  return ['dm_mod', 'dm_crypt', 'algif_skcipher', ...cipherMods, 'usb_storage', 'uas', 'sd_mod', 'ext4', ...fs, ...USB_HOST_MODULES, ...KEYBOARD_MODULES, ...net];
}

/** MODULES=most natively; an explicit list when mkinitramfs runs under qemu-user (most takes > 12 min there). */
export function initramfsModulesMode(arch: 'arm64' | 'amd64', hostArch: string): 'most' | 'list' {
  return arch === hostArch ? 'most' : 'list';
}

/** Extra modules for MODULES=list: the Pi's SD controllers (plus virtio for lab boots). */
function listModeExtras(arch: 'arm64' | 'amd64'): string[] {
  const common = ['mmc_block', 'virtio_pci', 'virtio_blk', 'virtio_mmio'];
  return arch === 'arm64' ? [...common, 'sdhci_iproc', 'bcm2835'] : common;
}

/**
 * MODULES= for initramfs builds on the Pi itself (kernel updates), written after the image's own
 * build: the base's value when it is most or dep (both judge by the running hardware), else most.
 * A list-only initramfs, right under qemu-user on the admin machine, would lack drivers on the Pi.
 */
export function deviceModulesMode(baseInitramfsConf: string | undefined): 'most' | 'dep' {
  const m = /^\s*MODULES\s*=\s*(\w+)\s*$/m.exec(baseInitramfsConf ?? '');
  return m?.[1] === 'dep' ? 'dep' : 'most';
}

export function initramfsConf(templates: Templates, modulesMode: 'most' | 'dep' | 'list'): string {
  return render(templates, 'initramfs-conf', { header: HEADER, modulesMode });
}

// ---------------------------------------------------------------- boot partition edits

const DROP_CMDLINE = [/^root=/, /^rootfstype=/, /^init=/, /^splash$/, /^plymouth\./, /^cryptdevice=/, /^resize$/];

/** cmdline.txt: one line, root on the mapper, no splash, no first-boot resize init=. */
export function transformCmdline(text: string, opts: { network?: boolean; extra?: string[] } = {}): string {
  const extra = opts.extra ?? [];
  const keys = new Set(extra.map((a) => a.split('=')[0]));
  const args = text.replace(/\s+/g, ' ').trim().split(' ').filter((a) => a && !DROP_CMDLINE.some((re) => re.test(a)) && !keys.has(a.split('=')[0]));
  args.push(...extra);
  // tang (clevis) and dropbear need the initramfs to bring the network up (DHCP); without them it stays off
  if (opts.network && !args.some((a) => a.startsWith('ip='))) args.push('ip=dhcp');
  const at = args.findIndex((a) => a.startsWith('console=tty') && !a.startsWith('console=ttyS') && !a.startsWith('console=ttyAMA')) + 1;
  const out = [...args];
  out.splice(at > 0 ? at : out.length, 0, `root=/dev/mapper/${ROOT_MAPPER}`, 'rootfstype=ext4');
  if (!out.includes('rootwait')) out.push('rootwait');
  return out.join(' ');
}

/** config.txt: make sure the firmware loads the initramfs next to each kernel (auto_initramfs=1, in [all] scope). */
export function transformConfigTxt(text: string): string {
  const lines = text.split('\n');
  // a setting before the first [section] applies to all models
  const firstSection = lines.findIndex((l) => /^\s*\[/.test(l));
  const head = firstSection < 0 ? lines : lines.slice(0, firstSection);
  const hasAuto = head.some((l) => /^\s*auto_initramfs\s*=\s*1\s*$/.test(l));
  const hasExplicit = lines.some((l) => /^\s*initramfs\s+\S+/.test(l));
  if (hasAuto || hasExplicit) return text;
  const cleaned = lines.map((l) => (/^\s*auto_initramfs\s*=/.test(l) ? `#${l} (pullvault: replaced below)` : l));
  const insertAt = firstSection < 0 ? cleaned.length : firstSection;
  cleaned.splice(insertAt, 0, '# pullvault: the encrypted root needs the initramfs', 'auto_initramfs=1');
  return cleaned.join('\n');
}

/** fstab: keep everything but the root and data-disk lines, then ours. */
export function transformFstab(text: string, pi: PiSpec, templates: Templates): string {
  const kept = text
    .split('\n')
    .filter((l) => {
      const f = l.trim().split(/\s+/);
      if (l.includes(HEADER)) return false;
      return !(f.length >= 2 && !f[0].startsWith('#') && (f[1] === '/' || f[1] === pi.dataDisk.mountpoint));
    })
    .join('\n')
    .replace(/\n+$/, '');
  return render(templates, 'fstab', {
    header: HEADER,
    keptLines: kept,
    rootMapper: ROOT_MAPPER,
    dataMapper: dataMapperName(pi),
    dataMountpoint: pi.dataDisk.mountpoint,
    // the mapping only appears after the backing disk (DATA_DISK_TIMEOUT) AND its unlock: wait longer,
    // else a disk found late is unlocked but never mounted (nofail: this never delays the boot)
    dataMountOptions: `defaults,noatime,nofail,x-systemd.device-timeout=${DATA_MAPPING_TIMEOUT}`,
  });
}

// ---------------------------------------------------------------- root files

export interface RootFile {
  /** absolute path inside the Pi's root */
  path: string;
  mode: number;
  content: string | Buffer;
  /** never print the content */
  sensitive?: boolean;
}

export interface RootFacts {
  rootUuid: string;
  /** the Pi's generated SSH key pair */
  sshPrivateKey: string;
  sshPublicKey: string;
  dataDiskKey: Buffer;
  /** contents of state/aws/writer-credentials.json if it exists */
  s3Credentials?: string;
  modulesMode: 'most' | 'list';
  arch: 'arm64' | 'amd64';
  /** pi.wifi: the pskFile's text, and the connection's UUID */
  wifiPsk?: string;
  wifiUuid?: string;
}

export function knownHostsLines(inv: Inventory): string[] {
  return inv.servers.map((s) => {
    const port = sshPort(s.ssh);
    const host = port === 22 ? s.ssh.host : `[${s.ssh.host}]:${port}`;
    return `${host} ${s.ssh.hostKey}`;
  });
}

/**
 * How long systemd waits for the data disk (crypttab) and for its unlocked mapping (fstab). Both are
 * nofail, so a long wait never delays the boot; it only decides whether a slow disk (USB spin-up,
 * hub enumeration, a busy udev) still gets unlocked and mounted. The mapping waits for the disk plus
 * the argon2 unlock, so its timeout must be the longer one.
 */
const DATA_DISK_TIMEOUT = '180s';
const DATA_MAPPING_TIMEOUT = '300s';

export function crypttabVars(pi: PiSpec, rootUuid: string) {
  const dataMapper = dataMapperName(pi);
  return {
    header: HEADER,
    usbLabel: pi.usbKey.label,
    rootMapper: ROOT_MAPPER,
    rootUuid,
    rootKey: pi.usbKey.label,
    // tries=0: never give up (headless box: the passphrase or dropbear may come much later)
    rootOptions: `luks,discard,initramfs,keyscript=${PI_PATHS.keyscript},tries=0`,
    dataMapper,
    dataDevice: pi.dataDisk.device,
    dataKeyPath: `${PI_PATHS.cryptsetupKeysDir}/${dataMapper}.key`,
    dataOptions: `luks,nofail,x-systemd.device-timeout=${DATA_DISK_TIMEOUT}`,
  };
}

/** Everything provision-pi writes into the root (before packages are installed and the initramfs built). */
export function rootFiles(inv: Inventory, facts: RootFacts, templates: Templates): RootFile[] {
  const pi = inv.pi;
  const fsType = usbKeyFilesystem(pi);
  const ct = crypttabVars(pi, facts.rootUuid);
  const modules = initramfsModules(pi);
  const common = { header: HEADER, usbLabel: pi.usbKey.label, usbKeyFile: USB_KEY_FILE, usbFsType: fsType, rootMapper: ROOT_MAPPER };
  const listExtras = facts.modulesMode === 'list' ? listModeExtras(facts.arch) : [];
  const tang = !!pi.unlock?.tang?.length;
  const guard = render(templates, 'kernel-guard', {
    header: HEADER,
    guardName: PI_PATHS.guardName,
    keyscriptInInitramfs: PI_PATHS.keyscript.slice(1),
    otherFlavourInitramfs: 'initramfs8',
    requiredModules: requiredInitramfsModules(fsType).join(' '),
  });
  const files: RootFile[] = [
    { path: '/etc/crypttab', mode: 0o644, content: render(templates, 'crypttab', ct) },
    {
      path: PI_PATHS.keyscript,
      mode: 0o755,
      content: render(templates, 'keyscript', { ...common, fsModules: fsType === 'vfat' ? 'vfat nls_cp437 nls_ascii nls_iso8859_1 nls_utf8' : 'ext4', tang: tang ? { slot: TANG_KEYSLOT } : false }),
    },
    { path: PI_PATHS.initramfsHook, mode: 0o755, content: render(templates, 'initramfs-hook', { header: HEADER, keyscriptPath: PI_PATHS.keyscript, modules: [...modules, ...listExtras].join(' '), tang }) },
    { path: PI_PATHS.initramfsConf, mode: 0o644, content: initramfsConf(templates, facts.modulesMode) },
    { path: PI_PATHS.initramfsModules, mode: 0o644, content: render(templates, 'initramfs-modules', { header: HEADER, moduleLines: [...modules, ...listExtras].join('\n') }) },
    { path: `/etc/kernel/postinst.d/${PI_PATHS.guardName}`, mode: 0o755, content: guard },
    { path: `/etc/initramfs/post-update.d/${PI_PATHS.guardName}`, mode: 0o755, content: guard },
    { path: PI_PATHS.rpiUpdateStub, mode: 0o755, content: render(templates, 'rpi-update-block', { header: HEADER }) },
    { path: PI_PATHS.aptPin, mode: 0o644, content: render(templates, 'apt-pin-rpi-update', { header: HEADER }) },
    { path: PI_PATHS.growScript, mode: 0o755, content: render(templates, 'grow-root.sh', { ...common, growStamp: PI_PATHS.growStamp }) },
    { path: PI_PATHS.growService, mode: 0o644, content: render(templates, 'grow-root.service', { header: HEADER, growStamp: PI_PATHS.growStamp, growScriptPath: PI_PATHS.growScript }) },
    {
      path: `${PI_PATHS.cryptsetupKeysDir}/README.pullvault`,
      mode: 0o644,
      content: render(templates, 'cryptsetup-keys-readme', { header: HEADER, dataKeyPath: ct.dataKeyPath, dataDevice: ct.dataDevice, dataMapper: ct.dataMapper, dataMountpoint: pi.dataDisk.mountpoint, piName: pi.name }),
    },
    { path: ct.dataKeyPath, mode: 0o400, content: facts.dataDiskKey, sensitive: true },
    { path: PI_PATHS.sshKey, mode: 0o600, content: facts.sshPrivateKey, sensitive: true },
    { path: `${PI_PATHS.sshKey}.pub`, mode: 0o644, content: facts.sshPublicKey },
    { path: PI_PATHS.knownHosts, mode: 0o644, content: render(templates, 'known_hosts', { lines: knownHostsLines(inv).join('\n') }) },
    { path: '/etc/hostname', mode: 0o644, content: render(templates, 'hostname', { piName: pi.name }) },
  ];
  if (facts.s3Credentials !== undefined) files.push({ path: PI_PATHS.s3Credentials, mode: 0o600, content: facts.s3Credentials, sensitive: true });
  files.push(...dropbearFiles(pi, HEADER));
  if (pi.wifi) {
    if (facts.wifiPsk === undefined || !facts.wifiUuid) throw new Error('rootFiles: pi.wifi is set but its passphrase was not read');
    files.push(
      { path: WIFI_PATHS.connection, mode: 0o600, content: render(templates, 'wifi.nmconnection', { header: HEADER, ...wifiConnectionVars(pi.wifi, facts.wifiPsk, facts.wifiUuid) }), sensitive: true },
      { path: WIFI_PATHS.unblockService, mode: 0o644, content: render(templates, 'wifi-unblock.service', { header: HEADER }) },
    );
  }
  return files;
}


/** Where systemd looks for the generator that turns /etc/crypttab (the data disk) into units. */
export const CRYPTSETUP_GENERATOR = 'usr/lib/systemd/system-generators/systemd-cryptsetup-generator';

export interface RootLayout {
  /** the root has CRYPTSETUP_GENERATOR: bookworm's systemd carries it; trixie moved it to systemd-cryptsetup */
  cryptsetupGenerator: boolean;
}

/** Debian packages the root must have (installed in the chroot when missing). */
export function rootPackages(pi: PiSpec, root: RootLayout = { cryptsetupGenerator: true }): string[] {
  // Pi OS Lite has both; a base without them gets them from its own apt sources
  const wifi = pi.wifi ? ['network-manager', 'rfkill'] : [];
  const generator = root.cryptsetupGenerator ? [] : ['systemd-cryptsetup'];
  return [...ROOT_PACKAGES, ...generator, ...RUNTIME_PACKAGES, ...unlockPackages(pi), ...wifi];
}

// ---------------------------------------------------------------- firmware flavours

export interface KernelFlavour {
  version: string;
  /** file names on the boot partition */
  kernel: string;
  initramfs: string;
}

/** Which kernel/initramfs files the firmware loads for each installed kernel (auto_initramfs=1). */
export function firmwareFlavours(versions: string[]): KernelFlavour[] {
  return versions.map((version) => {
    if (/-2712$/.test(version)) return { version, kernel: 'kernel_2712.img', initramfs: 'initramfs_2712' };
    if (/-v8(-|$)|-rpi-v8$/.test(version)) return { version, kernel: 'kernel8.img', initramfs: 'initramfs8' };
    if (/-v7l?(\+|$)/.test(version)) return { version, kernel: /-v7l/.test(version) ? 'kernel7l.img' : 'kernel7.img', initramfs: /-v7l/.test(version) ? 'initramfs7l' : 'initramfs7' };
    // lab images (amd64 Debian kernel): the lab's firmware stand-in copies to kernel8.img / initramfs8
    return { version, kernel: 'kernel8.img', initramfs: 'initramfs8' };
  });
}

// ---------------------------------------------------------------- steps

export interface PlanStep {
  id: string;
  title: string;
  /** shown with --dry-run */
  detail?: string;
}

export interface PlanOptions {
  baseImage: string;
  stateDir: string;
  rotate: boolean;
  haveState: boolean;
  haveS3Credentials: boolean;
  hostArch: string;
}

export function planSteps(inv: Inventory, o: PlanOptions): PlanStep[] {
  const pi = inv.pi;
  const arch = pi.arch ?? 'arm64';
  const l = luksPlan(pi);
  const piState = `${o.stateDir}/${pi.name}`;
  const steps: PlanStep[] = [
    { id: 'verify-base', title: 'verify the base image sha256', detail: `${o.baseImage} = ${pi.baseImage.sha256}` },
    { id: 'check-base', title: 'check the base image has the Raspberry Pi OS boot layout', detail: 'partition table and boot files, read-only' },
    { id: 'preflight', title: `decide where ${l.cipher} can encrypt the root: this machine, or a VM with the image's own kernel` },
    {
      id: 'secrets',
      title: o.haveState && !o.rotate ? 'reuse the LUKS UUID and keys from state/' : 'generate the LUKS UUID, USB keyfile, recovery passphrase, data-disk key and the Pi SSH key',
      detail: `${piState}/ (0700; secrets 0600)`,
    },
    { id: 'extract', title: 'extract the boot (FAT) and root (ext4) partitions', detail: 'sfdisk -J, dd, debugfs rdump + ownership/mode/xattr/hard-link fix-up (no loop devices, no mounts)' },
    {
      id: 'configure',
      title: `write crypttab, fstab, keyscript, initramfs hook and modules, kernel guard, first-boot grow service, keys${o.haveS3Credentials ? ', state/aws/writer-credentials.json (0600)' : ''}`,
      detail: `chroot${arch === o.hostArch ? '' : ` under qemu-user (${arch})`}` },
    { id: 'packages', title: `install missing packages in the chroot: ${rootPackages(pi).join(' ')}` },
    { id: 'runtime', title: 'install the pullvault runtime into the root (installRuntimeInto), then check that node in the root can run it (Node.js 18+)' },
    { id: 'access', title: 'install the SSH host key from state/ (first-boot regeneration masked), authorize the admin key, enable sshd, mask the userconf wizard; cloud-init off', detail: `host key pinned in ${piState}/ssh_host_ed25519_key.pub and ${piState}/known_hosts` },
    { id: 'initramfs', title: `rebuild the initramfs for every installed kernel (MODULES=${initramfsModulesMode(arch, o.hostArch)}) and check the firmware copies` },
    { id: 'boot', title: 'edit the boot partition: cmdline.txt root=/dev/mapper/cryptroot, config.txt auto_initramfs=1, new kernels/initramfs (mtools)' },
    { id: 'root', title: `mkfs.ext4 -d, then cryptsetup reencrypt --encrypt (${l.cipher}, ${l.keySizeBits}-bit, argon2id ${l.pbkdfMemoryKiB} KiB × ${l.pbkdfIterations})`, detail: 'keyslot 0: USB keyfile, keyslot 1: recovery passphrase' },
    { id: 'assemble', title: `assemble ${piState}/sdcard.img (sfdisk, a fresh disk id)` },
    { id: 'usbkey', title: `make ${piState}/usbkey.img (${usbKeyFilesystem(pi)}, label ${pi.usbKey.label})` },
  ];
  const tang = pi.unlock?.tang ?? [];
  if (tang.length) {
    steps.splice(steps.findIndex((s) => s.id === 'secrets') + 1, 0, {
      id: 'tang-adv',
      title: `the tang servers' advertisements, each checked by clevis against its pinned thumbprint; keyslot ${TANG_KEYSLOT} is bound to them with the root (${tang.length === 1 ? 'tang pin' : `sss: ${tangThreshold(pi)} of ${tang.length} servers`})`,
      detail: tang.map((t) => `${t.url} thp ${t.thumbprint} (advertisement ${t.adv ? `from ${t.adv}` : `fetched into ${piState}/tang/`})`).join('\n      '),
    });
  }
  if (pi.unlock?.ssh)
    steps.splice(steps.findIndex((s) => s.id === 'initramfs'), 0, {
      id: 'dropbear',
      title: `dropbear in the initramfs on port ${unlockSshPort(pi)}: ${pi.unlock.ssh.authorizedKeys.length} key(s) that may run cryptroot-unlock only (no shell, no forwarding)`,
      detail: `its own host key, made once in ${piState}/initramfs_ssh_host_ed25519_key (.pub pinned in ${piState}/known_hosts)`,
    });
  if (initramfsNetwork(pi)) {
    const boot = steps.find((s) => s.id === 'boot')!;
    boot.detail = 'network in the initramfs: ip=dhcp on cmdline.txt (for tang / dropbear only)';
  }
  return steps;
}
