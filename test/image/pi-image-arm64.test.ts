// provision-pi against the arm64 Raspberry Pi OS-shaped base (pios-base.ts), on this amd64 machine:
// the chroot steps under qemu-user (private binfmt_misc), both kernel flavours rebuilt and checked,
// then boots under qemu-system-aarch64 `-M virt` with the card's own kernel8.img + initramfs8.
//   pi5 (aes-xts-plain64, encrypted on this machine): stick → unlocked by the keyfile; no stick → the
//   passphrase typed on an emulated USB keyboard into tty1 (/dev/console, as on the Pi's HDMI console)
//   unlocks; wrong stick → refused, then the typed passphrase unlocks.
//   pi4 (Adiantum: encrypted in provision-pi's qemu-system-aarch64 VM booting the image's kernel when
//   this machine's kernel lacks it, tang's keyslot 2 and clevis token written there too; pi.unlock
//   with a tang server and dropbear): stick → unlocked; the real tangd answering (guestfwd), no stick
//   → unlocked; ssh … cryptroot-unlock with the passphrase → unlocked; no stick, no tang server
//   answering, no passphrase → never mounted.
// An arm64 virt guest has no VGA text screen to read back: tty1 runs on the dummy console, so what is
// on it is judged from the kernel's log on the serial port (loglevel=7: the USB keyboard attached,
// "EXT4-fs (dm-0): mounted" once the root is open) instead of from the prompt's text.
// Needs root, qemu-user-static, qemu-system-arm, network to the Debian mirror on first run.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as provision } from '../../provision/cli.ts';
import { run } from '../../lib/proc/index.ts';
import { probeHostCipher } from '../../provision/image/luks-guest.ts';
import { piHostKeyPin } from '../../provision/image/access.ts';
import { SshExecutor, HostKeyMismatchError } from '../../provision/exec/ssh.ts';
import { loadInventory } from '../../provision/inventory/validate.ts';
import { PIOS_DISK_ID, piosBaseImage } from './pios-base.ts';
import { boot, bootFilesFromImage } from './qemu.ts';
import { makeTangServer, TANG_GUEST_URL, type TangServer } from './tang-server.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const isRoot = process.getuid?.() === 0;
const haveTools = existsSync('/usr/lib/binfmt.d/qemu-aarch64.conf') && existsSync('/usr/bin/qemu-system-aarch64');
const WORK = process.env.PULLVAULT_IMAGE_TEST_DIR ?? '/var/tmp/pullvault-image-test';
const BOOT_MS = 480_000;
const MARKER = /PILAB-MARKER: userspace reached; \/ is (\S+) (\S+)/;
const ROOT_MOUNTED = /EXT4-fs \(dm-\d+\): mounted filesystem/;
const KEYBOARD = /input: QEMU QEMU USB Keyboard/;
const ADIANTUM = 'xchacha12,aes-adiantum-plain64';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const UNLOCK_PORT = 2222;

let dir: string;
let logs: string;
let sshPort: number;
let tang: TangServer;

/** A TCP port free on 127.0.0.1 now (the full boot forwards it to the guest's sshd). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

function inventory(base: { path: string; sha256: string }, model: 'pi4' | 'pi5') {
  const inv = JSON.parse(readFileSync(path.join(REPO, 'inventory.json'), 'utf8'));
  delete inv.$schema;
  inv.pi = {
    ...inv.pi,
    model,
    arch: 'arm64',
    baseImage: { path: base.path, sha256: base.sha256 },
    usbKey: { label: 'PVKEY', filesystem: 'vfat' },
    luks: { pbkdfMemoryKiB: 65536, pbkdfIterations: 4 }, // small: argon2 under TCG
    dataDisk: { device: '/dev/disk/by-id/virtio-pvdata', mountpoint: '/srv/pullvault', mapperName: 'pullvault-data' },
    ssh: { host: '127.0.0.1', port: sshPort, admin: inv.pi.ssh.admin, adminKeyFile: path.join(dir, 'admin_key') },
  };
  // the Pi 4 card also unlocks by tang (bound offline from the saved advertisement) and by dropbear
  if (model === 'pi4') {
    inv.pi.unlock = {
      tang: [{ url: TANG_GUEST_URL, thumbprint: tang.thumbprint, adv: tang.advFile }],
      ssh: { authorizedKeys: [readFileSync(path.join(dir, 'unlock_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')], port: UNLOCK_PORT },
    };
  }
  for (const r of inv.recipients) r.publicKeyFile = path.join(REPO, r.publicKeyFile);
  return inv;
}

async function partitionFile(image: string, index: number, out: string): Promise<void> {
  const t = JSON.parse((await run(['sfdisk', '-J', image])).stdout).partitiontable;
  const p = t.partitions[index];
  await run(['dd', `if=${image}`, `of=${out}`, 'bs=4M', `skip=${p.start * 512}`, `count=${p.size * 512}`, 'iflag=skip_bytes,count_bytes', 'conv=sparse', 'status=none']);
}

describe.skipIf(!isRoot || !haveTools)('provision-pi on the arm64 Pi OS-shaped base (qemu-user build, qemu-system-aarch64 boots)', () => {
  let base: { path: string; sha256: string };
  const timings: Record<string, number> = {};
  const cards: Partial<Record<'pi4' | 'pi5', Promise<{ rc: number; log: string; state: string }>>> = {};
  const card = async (model: 'pi4' | 'pi5'): Promise<{ log: string; state: string }> => {
    cards[model] ??= (async () => {
      const inv = path.join(dir, `inventory-${model}.json`);
      if (!existsSync(inv)) writeFileSync(inv, JSON.stringify(inventory(base, model), null, 1));
      const stateDir = path.join(dir, `state-${model}`);
      const buildLog = path.join(dir, `build-${model}.log`);
      // PULLVAULT_IMAGE_TEST_REUSE=<a kept run dir>: boot the cards built there instead of building anew
      if (existsSync(path.join(stateDir, 'pi01', 'sdcard.img')) && existsSync(buildLog)) return { rc: 0, log: readFileSync(buildLog, 'utf8'), state: path.join(stateDir, 'pi01') };
      const lines: string[] = [];
      const orig = console.log;
      console.log = (...a: unknown[]) => {
        lines.push(a.map(String).join(' '));
        orig(...a);
      };
      const t = Date.now();
      try {
        const rc = await provision(['provision-pi', '--inventory', inv, '--state', stateDir]);
        timings[`build-${model}`] = (Date.now() - t) / 1000;
        if (rc === 0) writeFileSync(buildLog, lines.join('\n'));
        return { rc, log: lines.join('\n'), state: path.join(stateDir, 'pi01') };
      } finally {
        console.log = orig;
      }
    })();
    const r = await cards[model]!;
    expect(r.rc, `provision-pi (${model})`).toBe(0);
    return r;
  };

  beforeAll(async () => {
    mkdirSync(WORK, { recursive: true, mode: 0o700 });
    dir = process.env.PULLVAULT_IMAGE_TEST_REUSE ?? mkdtempSync(path.join(WORK, 'arm64-'));
    logs = path.join(dir, 'logs');
    const t = Date.now();
    base = await piosBaseImage('bookworm', (s) => console.log(s));
    timings.base = (Date.now() - t) / 1000;
    for (const k of ['admin_key', 'unlock_key']) if (!existsSync(path.join(dir, k))) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${k}@lab`, '-f', path.join(dir, k)]);
    // a reused pi4 card is bound to the tang keys it was built with
    tang = await makeTangServer(path.join(dir, 'tang'), { reuse: true });
    // a reused card pins the port it was built for
    const inv = path.join(dir, 'inventory-pi5.json');
    sshPort = existsSync(inv) ? JSON.parse(readFileSync(inv, 'utf8')).pi.ssh.port : await freePort();
  }, 3_600_000);

  afterAll(() => {
    console.log(`arm64 image suite timings (s): ${JSON.stringify(timings)}`);
    if (!process.env.PULLVAULT_KEEP_IMAGE_TEST && !process.env.PULLVAULT_IMAGE_TEST_REUSE) rmSync(dir, { recursive: true, force: true });
  });

  it('pi5: both flavours rebuilt (initramfs8 and initramfs_2712 carry the unlock), built-in drivers accepted, fresh disk id, root on the mapper', async () => {
    const { log, state } = await card('pi5');
    // Pi OS builds usb-storage, uas and the HID drivers in: counted as present, no .ko needed
    expect(log).toMatch(/initramfs: rebuild the initramfs for every installed kernel \(MODULES=list\)/);
    expect(log).toMatch(/-arm64: kernel8\.img \+ initramfs8/);
    expect(log).toMatch(/\+rpt-rpi-2712: kernel_2712\.img \+ initramfs_2712/);
    expect(log).toMatch(/node v(1[89]|[2-9]\d)\./);
    const d = mkdtempSync(path.join(dir, 'static-'));
    const f = await bootFilesFromImage(path.join(state, 'sdcard.img'), d);
    expect(f.cmdline).toMatch(/(^| )root=\/dev\/mapper\/cryptroot( |$)/);
    expect(f.cmdline).not.toMatch(/init=|PARTUUID/);
    expect(f.config).toMatch(/^auto_initramfs=1$/m);
    const img = `${path.join(state, 'sdcard.img')}@@${JSON.parse((await run(['sfdisk', '-J', path.join(state, 'sdcard.img')])).stdout).partitiontable.partitions[0].start * 512}`;
    for (const initramfs of ['initramfs8', 'initramfs_2712']) {
      const list = execFileSync('sh', ['-c', 'mtype -i "$1" "::$2" | zstd -dc | cpio -it 2>/dev/null', 'sh', img, initramfs], { maxBuffer: 64 << 20 }).toString();
      for (const need of [/usr\/local\/lib\/pullvault\/unlock-keyscript$/m, /cryptroot\/crypttab$/m, /dm-crypt\.ko/, /lib\/cryptsetup\/askpass$/m]) expect(list, `${initramfs} ${need}`).toMatch(need);
      expect(list, initramfs).not.toMatch(/\/usb-storage\.ko(\.(xz|zst|gz))?$/m);
    }
    const diskId = JSON.parse((await run(['sfdisk', '-J', path.join(state, 'sdcard.img')])).stdout).partitiontable.id;
    expect(diskId).not.toBe(PIOS_DISK_ID);
    rmSync(d, { recursive: true, force: true });
  }, 3_600_000);

  it('pi5 boot (-M virt) with the USB key: unlocked by the keyfile, root mounted from /dev/mapper/cryptroot', async () => {
    const { state } = await card('pi5');
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), stick: path.join(state, 'usbkey.img'), extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'arm64-stick.log'), memMiB: 768 });
    try {
      await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      const m = await b.expect(MARKER, 120_000);
      expect(m[1]).toBe('/dev/mapper/cryptroot');
      expect(m[2]).toBe('ext4');
      expect(b.out).toContain('pullvault-unlock: USB key PVKEY found');
      timings.bootStick = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 120_000);

  it('pi5 boot without the USB key: nothing mounts while it waits on tty1; the passphrase typed on a USB keyboard unlocks', async () => {
    const { state } = await card('pi5');
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), console: 'tty1', extraCmdline: 'init=/usr/sbin/marker-init loglevel=7', log: path.join(logs, 'arm64-keyboard.log'), memMiB: 768 });
    try {
      // the keyboard driver came up in the initramfs (Pi OS: built in; here the profile's stand-in)
      await b.expect(KEYBOARD, BOOT_MS, /Kernel panic/);
      // the keyscript waits for the stick before it asks: give it that time, root must stay closed
      await b.expect(/device-mapper: ioctl: .*initialised/, 120_000, /Kernel panic/);
      await sleep(30_000);
      expect(b.out).not.toMatch(ROOT_MOUNTED);
      await b.typeKeys(readFileSync(path.join(state, 'recovery-passphrase.txt'), 'utf8'));
      await b.expect(ROOT_MOUNTED, 240_000, /Kernel panic/);
      // /dev/console is tty1: the prompt never went to the serial port
      expect(b.out).not.toMatch(/Please unlock disk cryptroot/);
      timings.bootKeyboard = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 420_000);

  it('pi5 boot with a stick holding the wrong key: refused, not mounted; then the typed passphrase unlocks', async () => {
    const { state } = await card('pi5');
    const wrong = path.join(dir, 'wrongstick.img');
    const wrongKey = path.join(dir, 'wrong.key');
    writeFileSync(wrongKey, randomBytes(64));
    await run(['truncate', '-s', '16M', wrong]);
    await run(['mkfs.vfat', '-n', 'PVKEY', wrong]);
    await run(['mcopy', '-i', wrong, wrongKey, '::pullvault-root.key']);
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), stick: wrong, console: 'tty1', extraCmdline: 'init=/usr/sbin/marker-init loglevel=7', log: path.join(logs, 'arm64-wrongstick.log'), memMiB: 768 });
    try {
      await b.expect(KEYBOARD, BOOT_MS, /Kernel panic/);
      await b.expect(/\[sd[a-z]\] Attached SCSI (removable )?disk/, BOOT_MS, /Kernel panic/);
      // the stick's key is tried first (two argon2id keyslots under TCG) before the prompt reads tty1
      await sleep(120_000);
      expect(b.out).not.toMatch(ROOT_MOUNTED);
      await b.typeKeys(readFileSync(path.join(state, 'recovery-passphrase.txt'), 'utf8'));
      await b.expect(ROOT_MOUNTED, 240_000, /Kernel panic/);
      timings.bootWrongStick = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 420_000);

  it('pi5 full systemd boot (-M virt): data disk unlocked and mounted, root grown, sshd accepts the admin key with the host key pinned in state/', async () => {
    const { state } = await card('pi5');
    const data = path.join(dir, 'data.img');
    const seed = mkdtempSync(path.join(dir, 'data-seed-'));
    const token = randomBytes(16).toString('hex');
    writeFileSync(path.join(seed, 'pilab-data-marker'), token + '\n');
    await run(['truncate', '-s', '96M', data]);
    await run(['mkfs.ext4', '-q', '-L', 'pvdata', '-d', seed, data, '64M']);
    rmSync(seed, { recursive: true, force: true });
    await run(['cryptsetup', 'reencrypt', '--encrypt', '--type', 'luks2', '--batch-mode', '--reduce-device-size', '32M', '--pbkdf', 'argon2id', '--pbkdf-memory', '65536', '--pbkdf-force-iterations', '4', '--key-file', path.join(state, 'data-disk.key'), data], { cwd: path.dirname(data) });
    const sdBytes = statSync(path.join(state, 'sdcard.img')).size;
    const b = await boot({
      arch: 'arm64',
      sdcard: path.join(state, 'sdcard.img'),
      stick: path.join(state, 'usbkey.img'),
      disks: [{ file: data, serial: 'pvdata' }],
      sdSizeMiB: Math.ceil(sdBytes / 1048576) + 512,
      // as the amd64 full boot: systemd-networkd from ip=dhcp stands in for Pi OS's NetworkManager
      extraCmdline: 'systemd.show_status=1 ip=dhcp systemd.wants=systemd-network-generator.service systemd.wants=systemd-networkd.service systemd.mask=pilab-report.service',
      sshPort,
      log: path.join(logs, 'arm64-full.log'),
      memMiB: 1024,
    });
    try {
      await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      const invFile = path.join(dir, 'inventory-pi5.json');
      const loaded = await loadInventory(invFile);
      const knownHosts = path.join(state, 'known_hosts');
      const pin = piHostKeyPin(loaded.inventory, readFileSync(knownHosts, 'utf8'), knownHosts);
      expect(pin.source).toBe(knownHosts);
      const target = { name: 'pi01', host: '127.0.0.1', port: sshPort, username: 'root', hostKey: pin.hostKey, privateKey: readFileSync(path.join(dir, 'admin_key')), readyTimeoutMs: 60_000 };
      const end = Date.now() + 900_000;
      let exec: SshExecutor | undefined;
      for (let tries = 1; !exec; tries++) {
        exec = await SshExecutor.connect(target).catch((e: Error) => {
          if (Date.now() > end || b.out.includes('Kernel panic')) throw new Error(`sshd not reachable after ${tries} tries: ${e.message} (log ${b.logFile})`);
          return undefined;
        });
        if (!exec) await sleep(5_000);
      }
      timings.fullBootSshReady = b.seconds;
      expect((await exec.run(['hostname'])).stdout.trim()).toBe('pi01');
      expect((await exec.run(['uname', '-m'])).stdout.trim()).toBe('aarch64');
      await exec.run(['systemd-run', '--no-block', '--unit', 'pilab-report-now', '/usr/local/sbin/pilab-report']);
      await exec.close().catch(() => {});
      const stranger = path.join(dir, 'stranger_key');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
      await expect(SshExecutor.connect({ ...target, hostKey: readFileSync(`${stranger}.pub`, 'utf8').split(' ').slice(0, 2).join(' ') })).rejects.toBeInstanceOf(HostKeyMismatchError);
      const report = (await b.expect(/PILAB-FULLINIT-BEGIN([\s\S]*?)PILAB-FULLINIT-END/, 900_000, /Kernel panic/))[1];
      expect(report).toMatch(/^SYSTEM (running|degraded)$/m);
      expect(report).toMatch(/^MOUNT \/dev\/mapper\/cryptroot \/ ext4/m);
      expect(report).toMatch(/^MOUNT \/dev\/mapper\/pullvault-data \/srv\/pullvault ext4/m);
      expect(report).toMatch(new RegExp(`^DATAMARKER ${token}$`, 'm'));
      expect(report).toMatch(/^GROWN /m);
      expect(report).toMatch(/^MOUNT \/dev\/vda1 \/boot\/firmware vfat/m);
      expect(report).toMatch(/^SSHD active$/m);
      const pub = (f: string) => readFileSync(f, 'utf8').split(' ').slice(0, 2).join(' ');
      expect(report.match(/^HOSTKEY .*$/gm)).toEqual([`HOSTKEY ${pub(path.join(state, 'ssh_host_ed25519_key.pub'))}`]);
      expect(report).toMatch(/^UNIT userconfig masked$/m);
      expect(report).toMatch(/^UNIT regenerate_ssh_host_keys masked$/m);
      expect(b.out).not.toContain('PILAB-USERCONF-WIZARD-RAN');
      expect(report.match(/^AUTHKEY .*$/gm)).toEqual([`AUTHKEY ${pub(path.join(dir, 'admin_key.pub'))}`]);
      expect(report).toMatch(/^INITRAMFS_CONF MODULES=(most|dep)$/m);
      expect(Number(/^NODE v(\d+)\./m.exec(report)?.[1])).toBeGreaterThanOrEqual(18);
      await b.waitExit(180_000);
      timings.bootFull = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 1_800_000);

  it('pi4: Adiantum, encrypted in a qemu-system-aarch64 VM booting the image kernel where this machine lacks it; the stick unlocks it under -M virt', async () => {
    const { log, state } = await card('pi4');
    const host = await probeHostCipher(ADIANTUM, 256, dir);
    if (!host.ok) expect(log).toMatch(/encrypting in a arm64 VM \(qemu-system-aarch64\) booting the image's own kernel/);
    const p2 = path.join(dir, 'pi4-p2.luks');
    await partitionFile(path.join(state, 'sdcard.img'), 1, p2);
    const dump = (await run(['cryptsetup', 'luksDump', p2])).stdout;
    rmSync(p2);
    expect(dump).toMatch(/cipher:\s+xchacha12,aes-adiantum-plain64/);
    // tang's keyslot and token went in with the others, wherever the LUKS step ran
    expect(dump.split(/^Tokens:/m)[0].match(/^\s+\d+: luks2$/gm)?.map((x) => x.trim())).toEqual(['0: luks2', '1: luks2', '2: luks2']);
    expect(dump.split(/^Tokens:/m)[1]).toMatch(/^\s+0: clevis\n\s+Keyslot:\s+2$/m);
    expect(log).toMatch(/keyslot 2: clevis tang \(http:\/\/10\.0\.2\.100\), thumbprints pinned/);
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), stick: path.join(state, 'usbkey.img'), extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'arm64-pi4-stick.log'), memMiB: 768 });
    try {
      await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      expect((await b.expect(MARKER, 120_000))[1]).toBe('/dev/mapper/cryptroot');
      timings.bootPi4Stick = b.seconds;
    } finally {
      await b.stop();
    }
  }, 7_200_000);

  it('pi4 boot, tang answering (the real tangd), no stick, nobody typing: unlocked by tang, root mounted', async () => {
    const { state } = await card('pi4');
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), forwards: [tang.guestfwd], extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'arm64-pi4-tang.log'), memMiB: 768 });
    try {
      await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      expect((await b.expect(MARKER, 120_000))[1]).toBe('/dev/mapper/cryptroot');
      expect(b.out).not.toContain('USB key PVKEY found');
      expect(readFileSync(tang.logFile, 'utf8')).toMatch(/POST \/rec\/\S+ => 200/);
      timings.bootPi4Tang = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 180_000);

  it('pi4 dropbear: the unlock key gets no shell; ssh … cryptroot-unlock with the passphrase unlocks', async () => {
    const { state } = await card('pi4');
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), privateNet: true, forwards: [`hostfwd=tcp:127.0.0.1:${UNLOCK_PORT}-:${UNLOCK_PORT}`], extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'arm64-pi4-dropbear.log'), memMiB: 768 });
    // ssh inside qemu's network namespace, dropbear's host key pinned from state/
    const ssh = (args: string[], input = '') =>
      run(
        ['nsenter', `--net=/proc/${b.pid}/ns/net`, '--', 'ssh', '-p', String(UNLOCK_PORT), '-i', path.join(dir, 'unlock_key'), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
          '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${path.join(state, 'known_hosts')}`, '-o', 'ConnectTimeout=30', ...args],
        { input, okCodes: [0, 1, 2, 255], timeoutMs: 180_000 },
      );
    try {
      await b.expect(/Please unlock disk cryptroot/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      let r = await ssh(['root@127.0.0.1', 'sh', '-c', '"echo SHELL-$((6*7))"']);
      for (let i = 0; i < 40 && /Connection refused|reset|closed|timed out/.test(r.stderr) && !r.stdout; i++) {
        await sleep(5_000);
        r = await ssh(['root@127.0.0.1', 'sh', '-c', '"echo SHELL-$((6*7))"']);
      }
      expect(r.stdout + r.stderr).not.toContain('SHELL-42');
      expect(r.stdout + r.stderr).toMatch(/cryptroot|passphrase|unlock/i);
      expect(b.out).not.toMatch(MARKER);
      const u = await ssh(['root@127.0.0.1', 'cryptroot-unlock'], readFileSync(path.join(state, 'recovery-passphrase.txt'), 'utf8'));
      expect(u.stdout + u.stderr).toMatch(/cryptroot.*(set up successfully|unlocked)/i);
      expect((await b.expect(MARKER, 240_000))[1]).toBe('/dev/mapper/cryptroot');
      timings.bootPi4Dropbear = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 600_000);

  it('pi4 boot with no stick, no tang server answering and no passphrase: the root is never mounted', async () => {
    const { state } = await card('pi4');
    // the network is up (DHCP from qemu) but nothing answers at the tang server's address
    const b = await boot({ arch: 'arm64', sdcard: path.join(state, 'sdcard.img'), console: 'tty1', network: true, extraCmdline: 'init=/usr/sbin/marker-init loglevel=7', log: path.join(logs, 'arm64-pi4-nothing.log'), memMiB: 768 });
    try {
      await b.expect(KEYBOARD, BOOT_MS, /Kernel panic/);
      await sleep(90_000);
      expect(b.out).not.toMatch(ROOT_MOUNTED);
      expect(b.out).not.toMatch(/PILAB-MARKER|Kernel panic/);
      expect(await b.waitExit(0)).toBe(false);
      process.kill(b.pid!, 'SIGKILL');
      expect(await b.waitExit(10_000)).toBe(true);
      timings.bootPi4NoUnlock = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 200_000);
});
