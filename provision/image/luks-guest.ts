// The root's LUKS step, on this machine or in a throwaway qemu VM (luks-where.ts decides). The VM
// boots the image's own kernel with its own initramfs plus a small /init (templates/pi/
// luks-guest-init.hbs) and runs the same cryptsetup commands as the host path on the root image
// attached as a virtio disk. The key, the passphrase and the commands go in on a second,
// read-only disk made in the work folder under state/<pi>/ (0700) and deleted afterwards.
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { whichSync } from '../../lib/proc/index.ts';
import { shellJoin } from '../exec/quote.ts';
import { hostArch } from './chroot.ts';
import { GUEST_END_MARKER, guestMemoryMiB, guestQemuArgs, guestResult, guestTimeoutMs, luksWhere, QEMU_FOR_ARCH, type ImageArch, type LuksWhere } from './luks-where.ts';
import { HEADER, luksJob, render, type LuksPlan, type Templates } from './plan.ts';
import { run } from '../../lib/proc/index.ts';

/**
 * Can this machine's cryptsetup encrypt with the cipher offline (no device-mapper)? Userspace
 * reencryption uses OpenSSL or the kernel's AF_ALG; Adiantum needs AF_ALG + the adiantum module,
 * which some kernels lack. Tried on a tiny file so the long build never fails at its end.
 */
export async function probeHostCipher(cipher: string, keySizeBits: number, dir: string): Promise<{ ok: true } | { ok: false; error: string }> {
  const f = path.join(dir, `.cipher-probe-${process.pid}`);
  const k = `${f}.key`;
  try {
    writeFileSync(k, 'probe', { mode: 0o600 });
    closeSync(openSync(f, 'w', 0o600));
    await run(['truncate', '-s', '40M', f]);
    await run(['cryptsetup', 'reencrypt', '--encrypt', '--type', 'luks2', '--batch-mode', '--cipher', cipher, '--key-size', String(keySizeBits), '--reduce-device-size', '32M', '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000', '--key-file', k, f], { cwd: dir });
    return { ok: true };
  } catch (e) {
    const err = e as Error & { stderr?: string };
    return { ok: false, error: err.stderr?.trim() || err.message };
  } finally {
    rmSync(f, { force: true });
    rmSync(k, { force: true });
  }
}

function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The preflight: where this build will encrypt the root, or an error saying how to go on. */
export async function decideLuksWhere(l: LuksPlan, imageArch: ImageArch, dir: string, opts: { qemu?: string | null } = {}): Promise<LuksWhere> {
  const probe = await probeHostCipher(l.cipher, l.keySizeBits, dir);
  const qemu = opts.qemu === undefined ? whichSync(QEMU_FOR_ARCH[imageArch].binary) : opts.qemu;
  return luksWhere({
    cipher: l.cipher,
    hostCanEncrypt: probe.ok,
    hostError: probe.ok ? undefined : probe.error,
    imageArch,
    hostArch: hostArch(),
    qemu: qemu ?? undefined,
    kvm: kvmUsable(),
  });
}

export interface EncryptRoot {
  where: LuksWhere;
  plan: LuksPlan;
  uuid: string;
  keyFile: string;
  recoveryFile: string;
  /** pi.unlock.tang: keyslot 2's passphrase and its clevis token (unlock.ts tangKeyslot) */
  tang?: { keyFile: string; tokenFile: string };
  /** the ext4 image with LUKS_HEADER_MIB of room at its end, encrypted in place */
  device: string;
  /** for the VM: the image's kernel and initramfs (paths on this machine), and its arch */
  kernel: string;
  initrd: string;
  arch: ImageArch;
  /** the kernel modules the VM loads before cryptsetup runs */
  modules: string[];
  /** private scratch folder (inside state/<pi>/work) */
  work: string;
  templates: Templates;
  log: (line: string) => void;
}

/** keyslot 0: the USB keyfile; 1: the recovery passphrase; 2: tang's, when configured (plan.ts luksJob). */
export async function encryptRoot(o: EncryptRoot): Promise<void> {
  if (o.where.where === 'host') {
    // reencrypt keeps a temporary header file in its working directory: the build's, not the caller's
    for (const argv of luksJob(o.plan, o.uuid, { keyFile: o.keyFile, recoveryFile: o.recoveryFile, tang: o.tang, device: o.device })) await run(argv, { cwd: o.work });
    return;
  }
  await encryptInGuest(o, o.where);
}

const JOB_FILE = 'job.sh';
/** the VM's disks, before the image's own list (initramfs-tools' MODULES=most has them, a list build may not) */
const GUEST_DISK_MODULES = ['virtio_pci', 'virtio_blk', 'ext4'];

async function encryptInGuest(o: EncryptRoot, w: Extract<LuksWhere, { where: 'guest' }>): Promise<void> {
  const dir = path.join(o.work, 'luks-guest');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  try {
    // the second disk: key, passphrase, commands (the same argv as the host path, device /dev/vda)
    const seed = path.join(dir, 'secrets');
    mkdirSync(seed, { mode: 0o700 });
    const secrets: [string, string][] = [[o.keyFile, 'key'], [o.recoveryFile, 'recovery'], ...(o.tang ? ([[o.tang.keyFile, 'tang-key'], [o.tang.tokenFile, 'tang-token.json']] as [string, string][]) : [])];
    for (const [from, name] of secrets) {
      copyFileSync(from, path.join(seed, name));
      chmodSync(path.join(seed, name), 0o600);
    }
    const job = luksJob(o.plan, o.uuid, {
      keyFile: '/secrets/key',
      recoveryFile: '/secrets/recovery',
      tang: o.tang ? { keyFile: '/secrets/tang-key', tokenFile: '/secrets/tang-token.json' } : undefined,
      device: '/dev/vda',
    });
    writeFileSync(path.join(seed, JOB_FILE), job.map(shellJoin).join('\n') + '\n', { mode: 0o600 });
    const secretsDisk = path.join(dir, 'secrets.ext4');
    closeSync(openSync(secretsDisk, 'w', 0o600));
    await run(['truncate', '-s', '16M', secretsDisk]);
    await run(['mkfs.ext4', '-q', '-E', 'root_owner=0:0', '-d', seed, secretsDisk]);
    rmSync(seed, { recursive: true, force: true });

    // the image's initramfs with our /init appended (the kernel unpacks concatenated archives in order)
    const initDir = path.join(dir, 'init');
    mkdirSync(initDir, { mode: 0o700 });
    writeFileSync(path.join(initDir, 'init'), render(o.templates, 'luks-guest-init', { header: HEADER, modules: [...GUEST_DISK_MODULES, ...o.modules].join(' '), jobFile: JOB_FILE, endMarker: GUEST_END_MARKER }), { mode: 0o755 });
    const initCpio = path.join(dir, 'init.cpio');
    const fd = openSync(initCpio, 'w', 0o600);
    try {
      await run(['cpio', '--quiet', '-o', '-H', 'newc', '-R', '0:0'], { cwd: initDir, input: 'init\n', stdoutFd: fd });
    } finally {
      closeSync(fd);
    }
    const initrd = path.join(dir, 'initrd');
    writeFileSync(initrd, Buffer.concat([padTo4(readFileSync(o.initrd)), readFileSync(initCpio)]), { mode: 0o600 });
    if (!existsSync(o.kernel)) throw new Error(`luks-guest: the image's kernel ${o.kernel} is missing`);

    const bytes = statSync(o.device).size;
    const t0 = Date.now();
    o.log(`  this machine's kernel lacks ${o.plan.cipher}: encrypting in a ${o.arch} VM (${path.basename(w.qemu)}) booting the image's own kernel`);
    let vm = await runVm(o, w, { initrd, secretsDisk }, bytes);
    // a KVM that fails before the guest prints anything (nested virtualisation, an MSR qemu cannot
    // set) has not touched the disk: the same VM under TCG
    if (w.accel === 'kvm' && !vm.console.trim()) {
      o.log(`  KVM did not start the VM (${firstLine(vm.error ?? `qemu exit ${vm.code}`)}); again under TCG`);
      vm = await runVm(o, { ...w, accel: 'tcg' }, { initrd, secretsDisk }, bytes);
    }
    const console = vm.console;
    if (vm.error) throw new Error(`luks-guest: the VM did not finish (${firstLine(vm.error)}); its console:\n${tail(console)}`);
    const res = guestResult(console);
    if (!res) throw new Error(`luks-guest: the VM ended (qemu exit ${vm.code}) without reporting; the image's kernel may not boot under ${path.basename(w.qemu)}. Its console:\n${tail(console)}`);
    if (res.rc !== 0) throw new Error(`luks-guest: cryptsetup in the VM failed (exit ${res.rc}); its console:\n${tail(console)}`);
    o.log(`  encrypted in the VM in ${((Date.now() - t0) / 1000).toFixed(0)} s (${(bytes / 1048576).toFixed(0)} MiB)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runVm(o: EncryptRoot, w: Extract<LuksWhere, { where: 'guest' }>, f: { initrd: string; secretsDisk: string }, bytes: number): Promise<{ console: string; code?: number; error?: string }> {
  const argv = guestQemuArgs(w, o.arch, { kernel: o.kernel, initrd: f.initrd, device: o.device, secretsDisk: f.secretsDisk }, guestMemoryMiB(o.plan));
  let console = '';
  let pending = '';
  try {
    const r = await run(argv, {
      timeoutMs: guestTimeoutMs(bytes, w.accel),
      okCodes: [0, 1],
      onStdout: (chunk) => {
        console += chunk;
        pending += chunk;
        const lines = pending.split(/\r?\n|\r/);
        pending = lines.pop() ?? '';
        for (const line of lines) if (/luks-guest|cryptsetup|Key slot|Progress|error|fail/i.test(line)) o.log(`  vm: ${line.trim()}`);
      },
    });
    return { console, code: r.code };
  } catch (e) {
    const err = e as Error & { stderr?: string };
    const why = err.stderr?.trim().split('\n').slice(-1)[0];
    // "exit code N" or "killed by SIGTERM" (the time limit), and qemu's last word
    const how = err.message.split('\n')[1]?.trim();
    return { console, error: [how, why].filter(Boolean).join(': ') || err.message };
  }
}

/** cpio archives start on a 4-byte boundary */
function padTo4(b: Buffer): Buffer {
  const pad = (4 - (b.length % 4)) % 4;
  return pad ? Buffer.concat([b, Buffer.alloc(pad)]) : b;
}

function firstLine(s: string): string {
  return s.split('\n')[0];
}

function tail(s: string): string {
  return s.trim().split(/\r?\n/).slice(-25).map((l) => `    ${l}`).join('\n');
}
