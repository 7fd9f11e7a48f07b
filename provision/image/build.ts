// provision-pi, the effects: turns the base image into state/<pi>/sdcard.img + usbkey.img.
// No device-mapper, no loop devices, no mounts of the images: partitions are cut out with dd,
// the root is unpacked with debugfs (unpack.ts), configured in a chroot (private mount namespace,
// qemu-user for a foreign arch), packed with `mkfs.ext4 -d`, encrypted in userspace with
// `cryptsetup reencrypt --encrypt`, the FAT edited with mtools, the disk assembled with sfdisk.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, createReadStream, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Inventory } from '../../contract/inventory-schema.ts';
import { initramfsNetwork, usbKeyFilesystem } from '../../contract/inventory-defaults.ts';
import { run } from '../../lib/proc/index.ts';
import { chroot as chrootIn, hostArch, type ChrootOptions } from './chroot.ts';

export { hostArch } from './chroot.ts';
import { unpackExt4 } from './unpack.ts';
import type { PiSecrets } from './secrets.ts';
import { checkBootLayout, checkFlavours, diskIdFrom, rewritePartuuids, UnsupportedBaseError } from './boot-layout.ts';
import { accessFiles, adminHome, adminUser, ENABLED_UNITS, MASKED_UNITS, REMOVED_FILES } from './access.ts';
import { missingModules, parseBuiltin, requiredInitramfsModules } from './kernel-modules.ts';
import { encryptRoot } from './luks-guest.ts';
import { nodeVersionProblem } from '../runtime/plan.ts';
import type { LuksWhere } from './luks-where.ts';
import type { Phase } from './phases.ts';
import { installDropbearHostKey, tangKeyslot } from './unlock.ts';
import { checkTangSlot, TANG_KEYSLOT } from './unlock-plan.ts';
import { WIFI_PATHS, wifiCmdlineArgs } from './wifi-plan.ts';
import {
  CRYPTSETUP_GENERATOR, deviceModulesMode, initramfsConf, initramfsModules, initramfsModulesMode, LUKS_HEADER_MIB, luksPlan, rootFiles, rootPackages,
  TEMPLATE_NAMES, transformCmdline, transformConfigTxt, transformFstab, USB_KEY_FILE, PI_PATHS, render, type Templates,
} from './plan.ts';

export type Log = (line: string) => void;

function templatesDir(): string {
  return fileURLToPath(new URL('../../templates/pi/', import.meta.url));
}

export function loadTemplates(dir = templatesDir()): Templates {
  const t: Templates = {};
  for (const n of TEMPLATE_NAMES) t[n] = readFileSync(path.join(dir, `${n}.hbs`), 'utf8');
  return t;
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    createReadStream(file, { highWaterMark: 4 << 20 })
      .on('data', (b) => h.update(b))
      .on('end', () => resolve())
      .on('error', reject);
  });
  return h.digest('hex');
}


export interface SfdiskPart {
  node: string;
  start: number;
  size: number;
  type: string;
}
export interface SfdiskTable {
  label: string;
  id: string;
  sectorsize?: number;
  partitions: SfdiskPart[];
}

async function readPartitionTable(image: string): Promise<SfdiskTable> {
  const { stdout } = await run(['sfdisk', '-J', image]);
  return (JSON.parse(stdout) as { partitiontable: SfdiskTable }).partitiontable;
}

async function ddCopy(src: string, dst: string, opts: { skipBytes?: number; seekBytes?: number; countBytes?: number; notrunc?: boolean }): Promise<void> {
  const argv = ['dd', `if=${src}`, `of=${dst}`, 'bs=4M', 'status=none', `conv=sparse${opts.notrunc ? ',notrunc' : ''}`];
  const iflags = [];
  if (opts.skipBytes !== undefined) argv.push(`skip=${opts.skipBytes}`), iflags.push('skip_bytes');
  if (opts.countBytes !== undefined) argv.push(`count=${opts.countBytes}`), iflags.push('count_bytes');
  if (iflags.length) argv.push(`iflag=${iflags.join(',')}`);
  if (opts.seekBytes !== undefined) argv.push(`seek=${opts.seekBytes}`, 'oflag=seek_bytes');
  await run(argv);
}

function writeRootFile(root: string, rel: string, content: string | Buffer, mode: number): void {
  const full = path.join(root, rel);
  mkdirSync(path.dirname(full), { recursive: true, mode: 0o755 });
  rmSync(full, { force: true });
  writeFileSync(full, content, { mode });
  chmodSync(full, mode);
}

export interface BuildContext {
  inventory: Inventory;
  baseImage: string;
  stateDir: string;
  secrets: PiSecrets;
  templates: Templates;
  log: Log;
  /** installs the runtime into the unpacked root (provision/runtime-install.ts: installRuntimeInto) */
  installRuntime: (rootDir: string) => Promise<void>;
  s3Credentials?: string;
  /** pi.wifi: the pskFile's text (read by provision-pi) */
  wifiPsk?: string;
  /** the inventory admin's public key, authorized for pi.ssh.admin */
  adminPublicKey?: string;
  keepWork?: boolean;
  /** where the LUKS step runs (luks-where.ts); this machine when unset */
  luksWhere?: LuksWhere;
  /** pi.unlock.tang: one saved advertisement per server (unlock.ts: tangAdvertisements) */
  tangAdvertisements?: string[];
}

export interface BuildResult {
  sdcard: string;
  usbkey: string;
  kernels: { version: string; kernel: string; initramfs: string }[];
  rootBytes: number;
}

/** Runs the plan's build phases (extract … usbkey) through `phase` (image/phases.ts: titles and order are the plan's). */
export async function buildImage(ctx: BuildContext, phase: Phase): Promise<BuildResult> {
  const inv = ctx.inventory;
  const pi = inv.pi;
  const arch = pi.arch ?? 'arm64';
  const outDir = ctx.secrets.dir;
  const work = path.join(outDir, 'work');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { mode: 0o700 });
  const root = path.join(work, 'root');
  const chroot = (r: string, argv: string[], o: ChrootOptions = {}) => chrootIn(r, argv, { ...o, arch });
  try {
    // ------------------------------------------------------------ extract
    const { table, bootPart, rootPart } = await phase('extract', async () => {
      let base = ctx.baseImage;
      if (base.endsWith('.xz')) {
        base = path.join(work, 'base.img');
        const fd = openSync(base, 'w', 0o600);
        try {
          await run(['xz', '--decompress', '--stdout', '--threads=0', ctx.baseImage], { stdoutFd: fd });
        } finally {
          closeSync(fd);
        }
      }
      const table = await readPartitionTable(base);
      if (table.label !== 'dos' || table.partitions.length < 2) throw new Error(`${ctx.baseImage}: expected an MBR disk with a FAT boot and an ext4 root partition (Raspberry Pi OS layout), found ${table.label} with ${table.partitions.length} partitions`);
      const [bootPart, rootPart] = table.partitions;
      const ss = table.sectorsize ?? 512;
      await ddCopy(base, path.join(work, 'boot.vfat'), { skipBytes: bootPart.start * ss, countBytes: bootPart.size * ss });
      await ddCopy(base, path.join(work, 'root.orig.ext4'), { skipBytes: rootPart.start * ss, countBytes: rootPart.size * ss });
      const rep = await unpackExt4(path.join(work, 'root.orig.ext4'), root);
      rmSync(path.join(work, 'root.orig.ext4'));
      const fw = path.join(root, 'boot/firmware');
      mkdirSync(fw, { recursive: true });
      if (readdirSync(fw).length) throw new Error(`${ctx.baseImage}: /boot/firmware in the root is not empty; expected the FAT partition to be mounted there`);
      await run(['mcopy', '-s', '-n', '-m', '-i', path.join(work, 'boot.vfat'), '::*', fw + '/']);
      ctx.log(`  root: ${rep.entries} entries, ${rep.hardLinks} hard links, ${rep.xattrs} xattrs, ${rep.devices} device nodes`);
      return { table, bootPart, rootPart };
    });

    // ------------------------------------------------------------ configure
    const modulesMode = initramfsModulesMode(arch, hostArch());
    // every card gets its own MBR signature; the PARTUUIDs in fstab and cmdline.txt follow it
    const diskId = diskIdFrom(randomBytes(4));
    await phase('configure', async () => {
      const files = rootFiles(
        inv,
        {
          rootUuid: ctx.secrets.rootUuid,
          sshPrivateKey: readFileSync(ctx.secrets.sshKeyFile, 'utf8'),
          sshPublicKey: readFileSync(ctx.secrets.sshPubFile, 'utf8'),
          dataDiskKey: readFileSync(ctx.secrets.dataKeyFile),
          s3Credentials: ctx.s3Credentials,
          wifiPsk: ctx.wifiPsk,
          wifiUuid: pi.wifi ? randomUUID() : undefined,
          modulesMode,
          arch,
        },
        ctx.templates,
      );
      for (const f of files) writeRootFile(root, f.path, f.content, f.mode);
      chmodSync(path.join(root, PI_PATHS.cryptsetupKeysDir), 0o700);
      chmodSync(path.join(root, PI_PATHS.sshDir), 0o700);
      const fstab = path.join(root, 'etc/fstab');
      writeFileSync(fstab, rewritePartuuids(transformFstab(existsSync(fstab) ? readFileSync(fstab, 'utf8') : '', pi, ctx.templates), table.id, diskId));
      // first-boot grow service enabled the way systemctl enable would
      const wants = path.join(root, 'etc/systemd/system/multi-user.target.wants');
      mkdirSync(wants, { recursive: true });
      for (const unit of [PI_PATHS.growService, ...(pi.wifi ? [WIFI_PATHS.unblockService] : [])]) {
        rmSync(path.join(wants, path.basename(unit)), { force: true });
        symlinkSync(unit, path.join(wants, path.basename(unit)));
      }
      const hosts = path.join(root, 'etc/hosts');
      if (existsSync(hosts)) {
        const t = readFileSync(hosts, 'utf8').split('\n').filter((l) => !/^127\.0\.1\.1\s/.test(l));
        t.splice(1, 0, `127.0.1.1\t${pi.name}`);
        writeFileSync(hosts, t.join('\n'));
      }
      // rpi-update (if the base has it) diverted away; the stub in /usr/local/sbin refuses
      if (existsSync(path.join(root, 'usr/bin/rpi-update'))) {
        await chroot(root, ['dpkg-divert', '--local', '--rename', '--divert', '/usr/bin/rpi-update.pullvault-blocked', '--add', '/usr/bin/rpi-update']);
        copyFileSync(path.join(root, PI_PATHS.rpiUpdateStub), path.join(root, 'usr/bin/rpi-update'));
        chmodSync(path.join(root, 'usr/bin/rpi-update'), 0o755);
      }
    });

    // ------------------------------------------------------------ packages
    await phase('packages', async () => {
      // usr-merged roots have /lib → usr/lib; an older layout keeps the generator in /lib
      const cryptsetupGenerator = [CRYPTSETUP_GENERATOR, CRYPTSETUP_GENERATOR.replace(/^usr\//, '')].some((p) => existsSync(path.join(root, p)));
      const want = rootPackages(pi, { cryptsetupGenerator });
      const q = await chroot(root, ['dpkg-query', '-W', '-f', '${Package} ${db:Status-Status}\n', ...want], { okCodes: [0, 1] });
      const installed = new Set(q.stdout.split('\n').filter((l) => l.endsWith(' installed')).map((l) => l.split(' ')[0]));
      const missing = want.filter((p) => !installed.has(p));
      if (!missing.length) return ctx.log('  all present');
      ctx.log(`  installing: ${missing.join(' ')}`);
      const resolv = path.join(root, 'etc/resolv.conf');
      const saved = path.join(root, 'etc/resolv.conf.pullvault-saved');
      const hadResolv = existsSync(resolv) || isSymlink(resolv);
      if (hadResolv) renameSync(resolv, saved);
      copyFileSync('/etc/resolv.conf', resolv);
      const policy = path.join(root, 'usr/sbin/policy-rc.d');
      const hadPolicy = existsSync(policy);
      if (!hadPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
      const upd = path.join(root, 'etc/initramfs-tools/update-initramfs.conf');
      const updOrig = existsSync(upd) ? readFileSync(upd, 'utf8') : undefined;
      // the initramfs is built once, below, for every kernel: not by each package trigger
      if (updOrig !== undefined) writeFileSync(upd, updOrig.replace(/^update_initramfs=.*$/m, 'update_initramfs=no'));
      try {
        await chroot(root, ['apt-get', 'update', '-qq']);
        await chroot(root, ['apt-get', 'install', '-y', '-qq', '--no-install-recommends', '-o', 'Dpkg::Options::=--force-confold', ...missing]);
        await chroot(root, ['apt-get', 'clean']);
      } finally {
        if (updOrig !== undefined) writeFileSync(upd, updOrig);
        if (!hadPolicy) rmSync(policy, { force: true });
        rmSync(resolv, { force: true });
        if (hadResolv) renameSync(saved, resolv);
        rmSync(path.join(root, 'var/lib/apt/lists'), { recursive: true, force: true });
        mkdirSync(path.join(root, 'var/lib/apt/lists/partial'), { recursive: true });
      }
    });

    // ------------------------------------------------------------ runtime
    await phase('runtime', async () => {
      await ctx.installRuntime(root);
      const r = await chroot(root, ['sh', '-c', 'command -v node >/dev/null && node --version || echo -'], { okCodes: [0, 1, 127] });
      const problem = nodeVersionProblem(r.stdout.trim() || '-', 'the image');
      if (problem) throw new Error(`${problem}; the base image's apt sources did not provide it`);
      ctx.log(`  node ${r.stdout.trim()}`);
    });

    // ------------------------------------------------------------ access
    // after the packages: openssh-server's postinst makes host keys of its own
    await phase('access', async () => {
      const user = adminUser(inv);
      if (user !== 'root' && (await chroot(root, ['getent', 'passwd', user]).then(() => false, () => true))) {
        await chroot(root, ['useradd', '--create-home', '--shell', '/bin/bash', '--groups', 'sudo', user]);
        ctx.log(`  admin login ${user}: created (password locked, key only, passwordless sudo)`);
      }
      for (const e of readdirSync(path.join(root, 'etc/ssh')).filter((n) => /^ssh_host_.*_key(\.pub)?$/.test(n))) rmSync(path.join(root, 'etc/ssh', e));
      for (const f of REMOVED_FILES) rmSync(path.join(root, f), { force: true });
      const files = accessFiles(
        inv,
        {
          hostPrivateKey: readFileSync(ctx.secrets.hostKeyFile, 'utf8'),
          hostPublicKey: readFileSync(ctx.secrets.hostPubFile, 'utf8'),
          adminPublicKey: ctx.adminPublicKey,
          hasCloudInit: existsSync(path.join(root, 'etc/cloud')),
        },
        ctx.templates,
      );
      for (const f of files) writeRootFile(root, f.path, f.content, f.mode);
      if (ctx.adminPublicKey) {
        const sshDir = path.join(adminHome(user), '.ssh');
        chmodSync(path.join(root, sshDir), 0o700);
        await chroot(root, ['chown', '-R', `${user}:`, sshDir]);
      } else ctx.log('  no admin public key: nobody can log in over SSH until one is authorized');
      await chroot(root, ['systemctl', 'enable', ...ENABLED_UNITS]);
      for (const unit of MASKED_UNITS) {
        const sys = path.join(root, 'etc/systemd/system');
        for (const d of readdirSync(sys).filter((n) => /\.(wants|requires)$/.test(n))) rmSync(path.join(sys, d, unit), { force: true });
        const p = path.join(root, 'etc/systemd/system', unit);
        rmSync(p, { force: true });
        symlinkSync('/dev/null', p);
      }
      ctx.log(`  sshd enabled with host key ${(await run(['ssh-keygen', '-l', '-f', ctx.secrets.hostPubFile])).stdout.trim()}; masked: ${MASKED_UNITS.join(' ')}`);
    });

    if (ctx.secrets.unlockHostKeyFile && pi.unlock?.ssh)
      await phase('dropbear', async () => {
        await installDropbearHostKey(root, ctx.secrets.unlockHostKeyFile!, chroot);
        ctx.log(`  ${(await run(['ssh-keygen', '-l', '-f', ctx.secrets.unlockHostPubFile!])).stdout.trim()}`);
      });

    // ------------------------------------------------------------ initramfs
    const kernels = await phase('initramfs', async () => {
      const modDir = path.join(root, 'usr/lib/modules');
      const versions = existsSync(modDir) ? readdirSync(modDir).filter((v) => existsSync(path.join(modDir, v, 'modules.dep')) || existsSync(path.join(root, 'boot', `vmlinuz-${v}`))) : [];
      if (!versions.length) throw new Error('the base image has no kernel under /usr/lib/modules');
      const flavours = checkFlavours(versions, pi.model, arch);
      // the Pi cannot open an Adiantum root without the module (the LUKS VM boots this initramfs too)
      const required = [...requiredInitramfsModules(usbKeyFilesystem(pi)), ...(/adiantum/.test(luksPlan(pi).cipher) ? ['adiantum'] : [])];
      for (const k of flavours) {
        const has = existsSync(path.join(root, 'boot', `initrd.img-${k.version}`));
        await chroot(root, ['update-initramfs', has ? '-u' : '-c', '-k', k.version]);
        const initrd = path.join(root, 'boot', `initrd.img-${k.version}`);
        const fwInitrd = path.join(root, 'boot/firmware', k.initramfs);
        // Pi OS's raspi-firmware hook copies it; make sure (and say so) if the base lacks the hook
        if (!existsSync(fwInitrd) || !readFileSync(fwInitrd).equals(readFileSync(initrd))) {
          ctx.log(`  ${k.initramfs}: copied from /boot/initrd.img-${k.version} (no firmware hook did it)`);
          copyFileSync(initrd, fwInitrd);
        }
        const fwKernel = path.join(root, 'boot/firmware', k.kernel);
        if (!existsSync(fwKernel)) throw new Error(`/boot/firmware/${k.kernel} missing for kernel ${k.version}`);
        const list = (await chroot(root, ['lsinitramfs', `/boot/initrd.img-${k.version}`])).stdout;
        for (const need of [PI_PATHS.keyscript.slice(1), 'cryptroot/crypttab', 'cryptsetup/askpass']) {
          if (!list.includes(need)) throw new Error(`initramfs for ${k.version} lacks ${need}`);
        }
        const missing = missingModules(required, list, builtinModules(root, k.version));
        if (missing.length) throw new Error(`initramfs for ${k.version} lacks ${missing.map((m) => `${m}.ko`).join(', ')} (not built into that kernel either)`);
        ctx.log(`  ${k.version}: ${k.kernel} + ${k.initramfs} (${(statSync(initrd).size / 1048576).toFixed(1)} MiB)`);
      }
      // builds on the Pi (kernel updates) judge by its hardware, not by the list used under qemu-user
      const baseConf = path.join(root, 'etc/initramfs-tools/initramfs.conf');
      writeRootFile(root, PI_PATHS.initramfsConf, initramfsConf(ctx.templates, deviceModulesMode(existsSync(baseConf) ? readFileSync(baseConf, 'utf8') : undefined)), 0o644);
      return flavours;
    });

    // ------------------------------------------------------------ boot partition
    const bootImg = path.join(work, 'boot.vfat');
    await phase('boot', async () => {
      const fw = path.join(root, 'boot/firmware');
      const cmdlineFile = path.join(fw, 'cmdline.txt');
      const cmdline = transformCmdline(existsSync(cmdlineFile) ? readFileSync(cmdlineFile, 'utf8') : 'console=serial0,115200 console=tty1 rootwait', { network: initramfsNetwork(pi), extra: wifiCmdlineArgs(pi) });
      writeFileSync(cmdlineFile, rewritePartuuids(render(ctx.templates, 'cmdline.txt', { cmdline }), table.id, diskId));
      const configFile = path.join(fw, 'config.txt');
      writeFileSync(configFile, transformConfigTxt(existsSync(configFile) ? readFileSync(configFile, 'utf8') : ''));
      ctx.log(`  cmdline.txt: ${cmdline}`);
      // recreate the FAT with the same size, type, label and serial, then copy the new contents in
      const info = await run(['blkid', '-p', '-o', 'export', bootImg]);
      const kv = Object.fromEntries(info.stdout.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
      const size = statSync(bootImg).size;
      rmSync(bootImg);
      const fd = openSync(bootImg, 'w', 0o600);
      closeSync(fd);
      await run(['truncate', '-s', String(size), bootImg]);
      const mk = ['mkfs.vfat', '-F', kv.VERSION === 'FAT16' ? '16' : kv.VERSION === 'FAT12' ? '12' : '32'];
      if (kv.LABEL) mk.push('-n', kv.LABEL);
      if (kv.UUID) mk.push('-i', kv.UUID.replace('-', ''));
      await run([...mk, bootImg]);
      const entries = readdirSync(fw).map((e) => path.join(fw, e));
      if (entries.length) await run(['mcopy', '-s', '-m', '-i', bootImg, ...entries, '::']);
      for (const e of entries) rmSync(e, { recursive: true, force: true });
    });

    // ------------------------------------------------------------ root: ext4 + LUKS
    const l = luksPlan(pi);
    const rootLuks = path.join(work, 'root.luks');
    const rootBytes = await phase('root', async () => {
      const used = Number((await run(['du', '-s', '-m', '-x', '.'], { cwd: root })).stdout.split('\t')[0]);
      const fsMiB = Math.ceil(used * 1.2) + 256;
      const totalMiB = fsMiB + LUKS_HEADER_MIB;
      const fd = openSync(rootLuks, 'w', 0o600);
      closeSync(fd);
      await run(['truncate', '-s', `${totalMiB}M`, rootLuks]);
      await run(['mkfs.ext4', '-q', '-L', 'rootfs', '-i', '8192', '-E', 'root_owner=0:0', '-d', root, rootLuks, `${fsMiB}M`]);
      // the generic arm64 flavour (kernel8) runs in the VM; kernel_2712 is built for the Pi 5 alone
      const k = kernels.find((x) => x.kernel === 'kernel8.img') ?? kernels[0];
      const tang = pi.unlock?.tang?.length ? await tangKeyslot(pi, ctx.tangAdvertisements ?? [], work) : undefined;
      try {
        await encryptRoot({
          where: ctx.luksWhere ?? { where: 'host' },
          plan: l,
          uuid: ctx.secrets.rootUuid,
          keyFile: ctx.secrets.keyFile,
          recoveryFile: ctx.secrets.recoveryFile,
          tang,
          device: rootLuks,
          kernel: path.join(root, 'boot', `vmlinuz-${k.version}`),
          initrd: path.join(root, 'boot', `initrd.img-${k.version}`),
          arch,
          modules: initramfsModules(pi),
          work,
          templates: ctx.templates,
          log: ctx.log,
        });
      } finally {
        if (tang) for (const f of [tang.keyFile, tang.tokenFile]) rmSync(f, { force: true });
      }
      const dump = (await run(['cryptsetup', 'luksDump', rootLuks])).stdout;
      for (const slot of ['0: luks2', '1: luks2']) if (!dump.includes(slot)) throw new Error(`LUKS header lacks keyslot ${slot}`);
      if (tang) {
        checkTangSlot(dump);
        ctx.log(`  keyslot ${TANG_KEYSLOT}: clevis ${tang.pin} (${pi.unlock!.tang!.map((t) => t.url).join(', ')}), thumbprints pinned`);
      }
      ctx.log(`  ${fsMiB} MiB ext4 (${used} MiB used) + ${LUKS_HEADER_MIB} MiB LUKS2 header, UUID ${ctx.secrets.rootUuid}`);
      return totalMiB * 1048576;
    });

    // ------------------------------------------------------------ assemble
    const sdcard = path.join(outDir, 'sdcard.img');
    await phase('assemble', async () => {
      const ss = table.sectorsize ?? 512;
      const rootSectors = rootBytes / ss;
      const end = rootPart.start * ss + rootBytes;
      const tmp = `${sdcard}.tmp`;
      rmSync(tmp, { force: true });
      const fd = openSync(tmp, 'w', 0o600);
      closeSync(fd);
      await run(['truncate', '-s', String(end), tmp]);
      await run(['sfdisk', '-q', '--no-reread', tmp], {
        input: `label: dos\nlabel-id: ${diskId}\nstart=${bootPart.start}, size=${bootPart.size}, type=${bootPart.type}\nstart=${rootPart.start}, size=${rootSectors}, type=83\n`,
      });
      await ddCopy(bootImg, tmp, { seekBytes: bootPart.start * ss, notrunc: true });
      await ddCopy(rootLuks, tmp, { seekBytes: rootPart.start * ss, notrunc: true });
      renameSync(tmp, sdcard);
      chmodSync(sdcard, 0o600);
      ctx.log(`  ${sdcard} (${(end / 1048576).toFixed(0)} MiB, disk id ${diskId}; the root grows to fill the card at first boot)`);
    });

    // ------------------------------------------------------------ usb key
    const usbkey = path.join(outDir, 'usbkey.img');
    await phase('usbkey', () => makeUsbKey(usbkey, pi.usbKey.label, usbKeyFilesystem(pi), ctx.secrets.keyFile, work));

    return { sdcard, usbkey, kernels, rootBytes };
  } finally {
    if (!ctx.keepWork) rmSync(work, { recursive: true, force: true });
  }
}

// A constant script: the first bytes of a compressed image (the partition table and the FAT come first).
const XZ_HEAD_SH = 'xz --decompress --stdout -- "$1" | head -c "$2" > "$3"';

/**
 * Refuses a base image whose boot partition is not laid out like Raspberry Pi OS, from its
 * partition table and FAT alone (an .xz image is decompressed only as far as the FAT's end),
 * so a wrong image fails in seconds, before secrets are made or the root is unpacked.
 */
export async function checkBaseLayout(baseImage: string, pi: Inventory['pi']): Promise<void> {
  const tmp = mkdtempSync(path.join(tmpdir(), 'pullvault-base-'));
  try {
    let img = baseImage;
    if (baseImage.endsWith('.xz')) {
      img = path.join(tmp, 'head.img');
      await run(['sh', '-c', XZ_HEAD_SH, 'xz-head', baseImage, String(1 << 20), img]);
      const t = await readPartitionTable(img).catch(() => undefined);
      const p1 = t?.partitions[0];
      if (t && p1) await run(['sh', '-c', XZ_HEAD_SH, 'xz-head', baseImage, String((p1.start + p1.size) * (t.sectorsize ?? 512)), img]);
    }
    const table = await readPartitionTable(img).catch(() => undefined);
    if (!table || table.label !== 'dos' || table.partitions.length < 2)
      throw new UnsupportedBaseError(`expected an MBR disk with a FAT boot and an ext4 root partition (Raspberry Pi OS layout), found ${table ? `${table.label} with ${table.partitions.length} partitions` : 'no partition table'}`);
    const boot = await readBootPartition(`${img}@@${table.partitions[0].start * (table.sectorsize ?? 512)}`);
    checkBootLayout(boot.files, boot.configTxt, pi.model, pi.arch ?? 'arm64');
  } catch (e) {
    throw new Error(`${baseImage}: ${(e as Error).message}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** File names at the FAT's top level and config.txt's text (mtools; no mount). */
async function readBootPartition(fat: string): Promise<{ files: string[]; configTxt?: string }> {
  const files = (await run(['mdir', '-b', '-i', fat, '::'])).stdout.split('\n').map((l) => l.trim().replace(/^::\/?/, '')).filter(Boolean);
  const configTxt = files.some((f) => f.toLowerCase() === 'config.txt') ? (await run(['mtype', '-i', fat, '::config.txt'])).stdout : undefined;
  return { files, configTxt };
}

/** The modules a kernel builds in (its modules.builtin and modules.builtin.modinfo in the root). */
function builtinModules(root: string, version: string): Set<string> {
  const dir = path.join(root, 'usr/lib/modules', version);
  const read = (n: string) => (existsSync(path.join(dir, n)) ? readFileSync(path.join(dir, n), 'latin1') : '');
  return parseBuiltin(read('modules.builtin'), read('modules.builtin.modinfo'));
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** A 16 MiB superfloppy (no partition table) holding the keyfile; FAT or ext4. */
async function makeUsbKey(out: string, label: string, fs: 'vfat' | 'ext4', keyFile: string, work: string): Promise<void> {
  const tmp = `${out}.tmp`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'w', 0o600);
  closeSync(fd);
  await run(['truncate', '-s', '16M', tmp]);
  if (fs === 'vfat') {
    await run(['mkfs.vfat', '-n', label, tmp]);
    await run(['mcopy', '-i', tmp, keyFile, `::${USB_KEY_FILE}`]);
  } else {
    const d = path.join(work, 'usbkey-root');
    mkdirSync(d, { mode: 0o700 });
    copyFileSync(keyFile, path.join(d, USB_KEY_FILE));
    chmodSync(path.join(d, USB_KEY_FILE), 0o400);
    await run(['mkfs.ext4', '-q', '-L', label, '-E', 'root_owner=0:0', '-d', d, tmp]);
    rmSync(d, { recursive: true });
  }
  renameSync(tmp, out);
  chmodSync(out, 0o600);
}
