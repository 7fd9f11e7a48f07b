// What the arm64 image suites share (pi-image-arm64.test.ts: bookworm, pi-image-trixie.test.ts):
// a work folder with the admin and unlock keys and a tang server, the cards provision-pi builds from
// one Pi OS-shaped base (built once per model, reused by every boot of that model), and the full
// systemd boot with what it must show. Needs root, qemu-user-static, qemu-system-arm.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { run } from '../../lib/proc/index.ts';
import { piHostKeyPin } from '../../provision/image/access.ts';
import { probeHostCipher } from '../../provision/image/luks-guest.ts';
import { main as provision } from '../../provision/cli.ts';
import { HostKeyMismatchError, SshExecutor } from '../../provision/exec/ssh.ts';
import { loadInventory } from '../../provision/inventory/validate.ts';
import { connectWhenUp, freePort, FULL_BOOT_CMDLINE, makeDataDisk } from './full-boot.ts';
import { backupFromGuest, type GuestRun, type GuestServer } from './guest-run.ts';
import { piosBaseImage, type PiosRelease } from './pios-base.ts';
import { boot, type Boot } from './qemu.ts';
import { makeTangServer, TANG_GUEST_URL, type TangServer } from './tang-server.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
export const isRoot = process.getuid?.() === 0;
export const haveArm64Tools = existsSync('/usr/lib/binfmt.d/qemu-aarch64.conf') && existsSync('/usr/bin/qemu-system-aarch64');
const WORK = process.env.PULLVAULT_IMAGE_TEST_DIR ?? '/var/tmp/pullvault-image-test';
export const BOOT_MS = 480_000;
export const MARKER = /PILAB-MARKER: userspace reached; \/ is (\S+) (\S+)/;
export const ROOT_MOUNTED = /EXT4-fs \(dm-\d+\): mounted filesystem/;
export const KEYBOARD = /input: QEMU QEMU USB Keyboard/;
/** the keyscript's kernel-log line just before askpass takes the console (seen with loglevel=7) */
export const ASKING = /pullvault-unlock: asking for the passphrase on the console/;
export const ADIANTUM = 'xchacha12,aes-adiantum-plain64';
export const UNLOCK_PORT = 2222;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export type Model = 'pi4' | 'pi5';

export interface Card {
  rc: number;
  /** provision-pi's output */
  log: string;
  /** state/pi01 of this card */
  state: string;
  invFile: string;
}

export interface Arm64Lab {
  release: PiosRelease;
  dir: string;
  logs: string;
  sshPort: number;
  tang: TangServer;
  base: { path: string; sha256: string };
  timings: Record<string, number>;
  /** the card for a model, built on first use */
  card(model: Model): Promise<Card>;
}

function inventory(lab: Omit<Arm64Lab, 'card'>, model: Model) {
  const inv = JSON.parse(readFileSync(path.join(REPO, 'inventory.json'), 'utf8'));
  delete inv.$schema;
  inv.pi = {
    ...inv.pi,
    model,
    arch: 'arm64',
    baseImage: { path: lab.base.path, sha256: lab.base.sha256 },
    usbKey: { label: 'PVKEY', filesystem: 'vfat' },
    luks: { pbkdfMemoryKiB: 65536, pbkdfIterations: 4 }, // small: argon2 under TCG
    dataDisk: { device: '/dev/disk/by-id/virtio-pvdata', mountpoint: '/srv/pullvault', mapperName: 'pullvault-data' },
    ssh: { host: '127.0.0.1', port: lab.sshPort, admin: inv.pi.ssh.admin, adminKeyFile: path.join(lab.dir, 'admin_key') },
  };
  // the Pi 4 card also unlocks by tang (bound offline from the saved advertisement) and by dropbear
  if (model === 'pi4') {
    inv.pi.unlock = {
      tang: [{ url: TANG_GUEST_URL, thumbprint: lab.tang.thumbprint, adv: lab.tang.advFile }],
      ssh: { authorizedKeys: [readFileSync(path.join(lab.dir, 'unlock_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')], port: UNLOCK_PORT },
    };
  }
  for (const r of inv.recipients) r.publicKeyFile = path.join(REPO, r.publicKeyFile);
  return inv;
}

/** beforeAll: the base (cached), keys, the tang server; PULLVAULT_IMAGE_TEST_REUSE=<kept dir> boots the cards built there. */
export async function startArm64Lab(release: PiosRelease): Promise<Arm64Lab> {
  mkdirSync(WORK, { recursive: true, mode: 0o700 });
  const dir = process.env.PULLVAULT_IMAGE_TEST_REUSE ?? mkdtempSync(path.join(WORK, `arm64-${release}-`));
  const timings: Record<string, number> = {};
  const t = Date.now();
  const base = await piosBaseImage(release, (s) => console.log(s));
  timings.base = (Date.now() - t) / 1000;
  for (const k of ['admin_key', 'unlock_key']) if (!existsSync(path.join(dir, k))) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${k}@lab`, '-f', path.join(dir, k)]);
  // a reused pi4 card is bound to the tang keys it was built with, and pins the port it was built for
  const tang = await makeTangServer(path.join(dir, 'tang'), { reuse: true });
  const inv5 = path.join(dir, 'inventory-pi5.json');
  const sshPort = existsSync(inv5) ? JSON.parse(readFileSync(inv5, 'utf8')).pi.ssh.port : await freePort();
  const lab = { release, dir, logs: path.join(dir, 'logs'), sshPort, tang, base, timings };
  const built: Partial<Record<Model, Promise<Card>>> = {};
  const card = async (model: Model): Promise<Card> => {
    built[model] ??= buildCard(lab, model);
    const r = await built[model]!;
    expect(r.rc, `provision-pi (${release} ${model})`).toBe(0);
    return r;
  };
  return { ...lab, card };
}

async function buildCard(lab: Omit<Arm64Lab, 'card'>, model: Model): Promise<Card> {
  const invFile = path.join(lab.dir, `inventory-${model}.json`);
  if (!existsSync(invFile)) writeFileSync(invFile, JSON.stringify(inventory(lab, model), null, 1));
  const stateDir = path.join(lab.dir, `state-${model}`);
  const state = path.join(stateDir, 'pi01');
  const buildLog = path.join(lab.dir, `build-${model}.log`);
  if (existsSync(path.join(state, 'sdcard.img')) && existsSync(buildLog)) return { rc: 0, log: readFileSync(buildLog, 'utf8'), state, invFile };
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => {
    lines.push(a.map(String).join(' '));
    orig(...a);
  };
  const t = Date.now();
  try {
    const rc = await provision(['provision-pi', '--inventory', invFile, '--state', stateDir]);
    lab.timings[`build-${model}`] = (Date.now() - t) / 1000;
    if (rc === 0) writeFileSync(buildLog, lines.join('\n'));
    return { rc, log: lines.join('\n'), state, invFile };
  } finally {
    console.log = orig;
  }
}

export function stopArm64Lab(lab: Arm64Lab | undefined): void {
  if (!lab) return;
  console.log(`arm64 ${lab.release} image suite timings (s): ${JSON.stringify(lab.timings)}`);
  if (!process.env.PULLVAULT_KEEP_IMAGE_TEST && !process.env.PULLVAULT_IMAGE_TEST_REUSE) rmSync(lab.dir, { recursive: true, force: true });
}

export async function partitionFile(image: string, index: number, out: string): Promise<void> {
  const t = JSON.parse((await run(['sfdisk', '-J', image])).stdout).partitiontable;
  const p = t.partitions[index];
  await run(['dd', `if=${image}`, `of=${out}`, 'bs=4M', `skip=${p.start * 512}`, `count=${p.size * 512}`, 'iflag=skip_bytes,count_bytes', 'conv=sparse', 'status=none']);
}

/** The card booted with its stick (marker-init): unlocked by the keyfile, root on the mapper. */
export async function stickUnlocks(lab: Arm64Lab, model: Model, name: string): Promise<void> {
  const { state } = await lab.card(model);
  // the pi4 card brings its network up in the initramfs (tang, dropbear): a Pi 4 always has its NIC, and
  // with none at all initramfs-tools waits 180 s for one after the unlock
  const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), stick: path.join(state, 'usbkey.img'), network: model === 'pi4', extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(lab.logs, `${name}.log`), memMiB: 768 });
  try {
    await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
    const m = await b.expect(MARKER, 120_000);
    expect(m[1]).toBe('/dev/mapper/cryptroot');
    expect(m[2]).toBe('ext4');
    expect(b.out).toContain('pullvault-unlock: USB key PVKEY found');
    lab.timings[name] = b.seconds;
  } finally {
    await b.stop();
  }
}

/** No stick: nothing mounts while it waits on tty1; the passphrase typed on the USB keyboard unlocks. */
export async function typedPassphraseUnlocks(lab: Arm64Lab, model: Model, name: string): Promise<void> {
  const { state } = await lab.card(model);
  const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), console: 'tty1', extraCmdline: 'init=/usr/sbin/marker-init loglevel=7', log: path.join(lab.logs, `${name}.log`), memMiB: 768 });
  try {
    // the keyboard driver came up in the initramfs (Pi OS: built in; here the profile's stand-in)
    await b.expect(KEYBOARD, BOOT_MS, /Kernel panic/);
    // keys typed before askpass holds the console are flushed (as on a Pi before the prompt shows)
    await b.expect(ASKING, BOOT_MS, /Kernel panic/);
    await sleep(15_000);
    expect(b.out).not.toMatch(ROOT_MOUNTED);
    await b.typeKeys(readFileSync(path.join(state, 'recovery-passphrase.txt'), 'utf8'));
    await b.expect(ROOT_MOUNTED, 240_000, /Kernel panic/);
    // /dev/console is tty1: the prompt never went to the serial port
    expect(b.out).not.toMatch(/Please unlock disk cryptroot/);
    lab.timings[name] = b.seconds;
  } finally {
    await b.stop();
  }
}

/** The pi4 card's root header (Adiantum), after checking where it was encrypted; returns luksDump. */
export async function pi4AdiantumHeader(lab: Arm64Lab): Promise<string> {
  const { log, state } = await lab.card('pi4');
  const host = await probeHostCipher(ADIANTUM, 256, lab.dir);
  if (!host.ok) expect(log).toMatch(/encrypting in a arm64 VM \(qemu-system-aarch64\) booting the image's own kernel/);
  const p2 = path.join(lab.dir, 'pi4-p2.luks');
  await partitionFile(path.join(state, 'sdcard.img'), 1, p2);
  const dump = (await run(['cryptsetup', 'luksDump', p2])).stdout;
  rmSync(p2);
  expect(dump).toMatch(/cipher:\s+xchacha12,aes-adiantum-plain64/);
  return dump;
}

export interface FullBoot {
  /** what pilab-report printed between its markers */
  report: string;
  /** the serial console, whole */
  out: string;
  backup?: GuestRun;
}

/**
 * The pi5 card booted to systemd with the stick and a LUKS data disk: sshd must accept the admin key
 * under the host key pinned in state/ (and refuse to be taken for another key); with `server`,
 * install-runtime and one `pullvault run` inside the guest against that lab server. Asserts what every
 * release must show; returns the report for the release's own checks.
 */
export async function fullBoot(lab: Arm64Lab, o: { server?: GuestServer; name: string }): Promise<FullBoot> {
  const { state, invFile } = await lab.card('pi5');
  const data = await makeDataDisk(lab.dir, path.join(state, 'data-disk.key'), 128);
  const sdBytes = statSync(path.join(state, 'sdcard.img')).size;
  const b: Boot = await boot({
    arch: 'arm64',
    sdcard: path.join(state, 'sdcard.img'),
    stick: path.join(state, 'usbkey.img'),
    disks: [{ file: data.file, serial: 'pvdata' }],
    sdSizeMiB: Math.ceil(sdBytes / 1048576) + 512,
    extraCmdline: FULL_BOOT_CMDLINE,
    sshPort: lab.sshPort,
    log: path.join(lab.logs, `${o.name}.log`),
    memMiB: 1024,
    ...(o.server ? { forwards: [o.server.guestfwd] } : {}),
  });
  try {
    await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
    const loaded = await loadInventory(invFile);
    const knownHosts = path.join(state, 'known_hosts');
    const pin = piHostKeyPin(loaded.inventory, readFileSync(knownHosts, 'utf8'), knownHosts);
    expect(pin.source).toBe(knownHosts);
    const target = { name: 'pi01', host: '127.0.0.1', port: lab.sshPort, username: 'root', hostKey: pin.hostKey, privateKey: readFileSync(path.join(lab.dir, 'admin_key')), readyTimeoutMs: 60_000 };
    const exec = await connectWhenUp(b, target, 900_000);
    lab.timings[`${o.name}SshReady`] = b.seconds;
    expect((await exec.run(['hostname'])).stdout.trim()).toBe('pi01');
    expect((await exec.run(['uname', '-m'])).stdout.trim()).toBe('aarch64');
    let backup: GuestRun | undefined;
    if (o.server) {
      // the Pi's job, on the Pi: the runtime (arm64 Node from the image) pulls the lab server over SSH
      const t = Date.now();
      backup = await backupFromGuest({ invFile, stateDir: path.dirname(state), server: o.server, exec, log: (l) => console.log(l) });
      lab.timings[`${o.name}GuestRun`] = (Date.now() - t) / 1000;
      expect(backup.code, backup.output).toBe(0);
      expect(backup.snapshot).toMatch(/^\d{8}T\d{6}Z$/);
      expect(backup.file).toBe(o.server.content);
      expect(backup.status).toMatch(/\bok\b/);
    }
    await exec.run(['systemd-run', '--no-block', '--unit', 'pilab-report-now', '/usr/local/sbin/pilab-report']);
    await exec.close().catch(() => {});
    const stranger = path.join(lab.dir, `stranger_key_${o.name}`);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
    await expect(SshExecutor.connect({ ...target, hostKey: readFileSync(`${stranger}.pub`, 'utf8').split(' ').slice(0, 2).join(' ') })).rejects.toBeInstanceOf(HostKeyMismatchError);
    const report = (await b.expect(/PILAB-FULLINIT-BEGIN([\s\S]*?)PILAB-FULLINIT-END/, 900_000, /Kernel panic/))[1];
    expect(report).toMatch(/^SYSTEM (running|degraded)$/m);
    expect(report).toMatch(/^MOUNT \/dev\/mapper\/cryptroot \/ ext4/m);
    expect(report).toMatch(/^MOUNT \/dev\/mapper\/pullvault-data \/srv\/pullvault ext4/m);
    expect(report).toMatch(new RegExp(`^DATAMARKER ${data.token}$`, 'm'));
    expect(report).toMatch(/^GROWN /m);
    expect(report).toMatch(/^MOUNT \/dev\/vda1 \/boot\/firmware vfat/m);
    expect(report).toMatch(/^SSHD active$/m);
    const pub = (f: string) => readFileSync(f, 'utf8').split(' ').slice(0, 2).join(' ');
    expect(report.match(/^HOSTKEY .*$/gm)).toEqual([`HOSTKEY ${pub(path.join(state, 'ssh_host_ed25519_key.pub'))}`]);
    expect(report).toMatch(/^UNIT userconfig masked$/m);
    expect(report).toMatch(/^UNIT regenerate_ssh_host_keys masked$/m);
    expect(b.out).not.toContain('PILAB-USERCONF-WIZARD-RAN');
    expect(report.match(/^AUTHKEY .*$/gm)).toEqual([`AUTHKEY ${pub(path.join(lab.dir, 'admin_key.pub'))}`]);
    expect(report).toMatch(/^INITRAMFS_CONF MODULES=(most|dep)$/m);
    expect(Number(/^NODE v(\d+)\./m.exec(report)?.[1])).toBeGreaterThanOrEqual(18);
    await b.waitExit(180_000);
    lab.timings[o.name] = b.seconds;
    return { report, out: b.out, backup };
  } finally {
    await b.stop();
  }
}
