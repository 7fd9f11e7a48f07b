// The long image suite: build a Pi-OS-shaped lab base image (amd64, cached), run provision-pi on it
// for real (chroot, mkfs.ext4 -d, userspace cryptsetup reencrypt), check the result statically, then
// boot it under qemu TCG (one qemu at a time). Two cards from the one base:
//   pi5 (aes-xts-plain64, encrypted on this machine): stick present → unlocked by the keyfile; no stick →
//   the prompt on tty1 (the Pi's /dev/console) and the recovery passphrase typed on an emulated USB
//   keyboard unlocks; wrong stick → refused, then the typed passphrase unlocks; one full systemd boot that
//   unlocks + mounts the LUKS data disk, grows the root, and accepts the admin's key over SSH with the
//   host key pinned in state/<pi>/known_hosts (install-runtime --dry-run against it).
//   pi4 (xchacha12,aes-adiantum-plain64: encrypted in provision-pi's qemu VM where this machine's kernel
//   lacks Adiantum): unlocked by the stick; no stick and no passphrase → root never mounted.
// Boot cases that differ only in how unlocking is attempted share one built card.
// Needs root, mmdebstrap + network to the Debian mirror (first run only), qemu-system-x86,
// qemu-utils, cryptsetup-bin, e2fsprogs, dosfstools, mtools, fdisk, attr, zstd, cpio.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as provision } from '../../provision/cli.ts';

const main = (argv: string[]) => provision(['provision-pi', ...argv]);
import { run } from '../../lib/proc/index.ts';
import { piHostKeyPin } from '../../provision/image/access.ts';
import { probeHostCipher } from '../../provision/image/luks-guest.ts';
import { SshExecutor, HostKeyMismatchError } from '../../provision/exec/ssh.ts';
import { loadInventory } from '../../provision/inventory/validate.ts';
import { installRuntimeOverSsh } from '../../provision/runtime-install.ts';
import { LAB_DISK_ID, labBaseImage } from './lab-base.ts';
import { connectWhenUp, freePort, FULL_BOOT_CMDLINE, makeDataDisk } from './full-boot.ts';
import { boot, bootFilesFromImage } from './qemu.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const isRoot = process.getuid?.() === 0;
const WORK = process.env.PULLVAULT_IMAGE_TEST_DIR ?? '/var/tmp/pullvault-image-test';
const MARKER = /PILAB-MARKER: userspace reached; \/ is (\S+) (\S+)/;
const PROMPT = /Please unlock disk cryptroot: insert the USB key PVKEY or type the recovery passphrase/g;
// on the 80-column screen the prompt wraps: its first row
const SCREEN_PROMPT = /Please unlock disk cryptroot: insert the USB key PVKEY or type the recovery/;
const BOOT_MS = 360_000;
const ADIANTUM = 'xchacha12,aes-adiantum-plain64';

let dir: string;
let stateDir: string;
let invFile: string;
let piState: string;
let logs: string;
let sshPort: number;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function labInventory(base: { path: string; sha256: string }, overrides: Record<string, unknown> = {}) {
  const inv = JSON.parse(readFileSync(path.join(REPO, 'inventory.json'), 'utf8'));
  delete inv.$schema;
  inv.pi = {
    ...inv.pi,
    model: 'pi5', // aes-xts-plain64, encrypted on this machine (OpenSSL); the pi4 card below is adiantum
    arch: 'amd64',
    baseImage: { path: base.path, sha256: base.sha256 },
    usbKey: { label: 'PVKEY', filesystem: 'vfat' },
    luks: { pbkdfMemoryKiB: 65536, pbkdfIterations: 4 }, // small: argon2 under TCG
    dataDisk: { device: '/dev/disk/by-id/virtio-pvdata', mountpoint: '/srv/pullvault', mapperName: 'pullvault-data' },
    // the full boot forwards 127.0.0.1:sshPort to the guest; no hostKey: install-runtime pins state/'s
    ssh: { host: '127.0.0.1', port: sshPort, admin: inv.pi.ssh.admin, adminKeyFile: path.join(dir, 'admin_key') },
    ...overrides,
  };
  for (const r of inv.recipients) r.publicKeyFile = path.join(REPO, r.publicKeyFile);
  return inv;
}

async function partitionFile(image: string, index: number, out: string): Promise<void> {
  const t = JSON.parse((await run(['sfdisk', '-J', image])).stdout).partitiontable;
  const p = t.partitions[index];
  await run(['dd', `if=${image}`, `of=${out}`, 'bs=4M', `skip=${p.start * 512}`, `count=${p.size * 512}`, 'iflag=skip_bytes,count_bytes', 'conv=sparse', 'status=none']);
}

describe.skipIf(!isRoot)('provision-pi image (amd64 lab, qemu TCG)', () => {
  let base: { path: string; sha256: string };
  const timings: Record<string, number> = {};
  // One image for the whole file, built by the first test that needs it (so `-t <boot test>` works too)
  let building: Promise<number> | undefined;
  const built = async (): Promise<void> => {
    building ??= (async () => {
      const t = Date.now();
      console.log('image suite: provision-pi build …');
      const rc = await main(['--inventory', invFile, '--state', stateDir]);
      timings.build = (Date.now() - t) / 1000;
      console.log(`image suite: build rc ${rc} in ${timings.build.toFixed(0)} s`);
      return rc;
    })();
    expect(await building, 'provision-pi build').toBe(0);
  };

  // the pi4 card: adiantum, in provision-pi's VM when this machine's kernel lacks it
  let pi4Inv: string;
  let pi4State: string;
  let pi4Building: Promise<{ rc: number; log: string }> | undefined;
  const pi4Built = async (): Promise<string> => {
    pi4Building ??= (async () => {
      const t = Date.now();
      console.log('image suite: provision-pi build (pi4, adiantum) …');
      const lines: string[] = [];
      const orig = console.log;
      console.log = (...a: unknown[]) => {
        lines.push(a.map(String).join(' '));
        orig(...a);
      };
      try {
        const rc = await main(['--inventory', pi4Inv, '--state', pi4State]);
        timings.buildPi4 = (Date.now() - t) / 1000;
        return { rc, log: lines.join('\n') };
      } finally {
        console.log = orig;
      }
    })();
    const r = await pi4Building;
    expect(r.rc, 'provision-pi build (pi4)').toBe(0);
    return r.log;
  };

  beforeAll(async () => {
    mkdirSync(WORK, { recursive: true, mode: 0o700 });
    dir = mkdtempSync(path.join(WORK, 'run-'));
    stateDir = path.join(dir, 'state');
    logs = path.join(dir, 'logs');
    let t = Date.now();
    base = await labBaseImage('amd64', (s) => console.log(s));
    timings.base = (Date.now() - t) / 1000;
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'admin@lab', '-f', path.join(dir, 'admin_key')]);
    sshPort = await freePort();
    invFile = path.join(dir, 'inventory.json');
    writeFileSync(invFile, JSON.stringify(labInventory(base), null, 1));
    piState = path.join(stateDir, 'pi01');
    pi4Inv = path.join(dir, 'inventory-pi4.json');
    pi4State = path.join(dir, 'state-pi4');
    writeFileSync(pi4Inv, JSON.stringify(labInventory(base, { model: 'pi4' }), null, 1));
  }, 900_000);

  afterAll(() => {
    console.log(`image suite timings (s): ${JSON.stringify(timings)}`);
    if (!process.env.PULLVAULT_KEEP_IMAGE_TEST) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a base image whose sha256 differs from the inventory, before doing anything', async () => {
    const bad = path.join(dir, 'bad-inventory.json');
    writeFileSync(bad, JSON.stringify(labInventory(base, { baseImage: { path: base.path, sha256: 'f'.repeat(64) } })));
    const errs: string[] = [];
    const orig = console.error;
    console.error = (s: string) => errs.push(String(s));
    try {
      expect(await main(['--inventory', bad, '--state', stateDir])).toBe(1);
    } finally {
      console.error = orig;
    }
    expect(errs.join('\n')).toMatch(/pi\.baseImage\.sha256: .* has sha256 [0-9a-f]{64}, the inventory pins f{64}/);
    expect(existsSync(stateDir)).toBe(false);
  });

  it('--dry-run lists the steps and changes nothing', async () => {
    const out: string[] = [];
    const orig = console.log;
    console.log = (s: string) => out.push(String(s));
    try {
      expect(await main(['--inventory', invFile, '--state', stateDir, '--dry-run'])).toBe(0);
    } finally {
      console.log = orig;
    }
    const text = out.join('\n');
    expect(text).toContain('aes-xts-plain64, 512-bit, argon2id 65536 KiB × 4');
    expect(text).toMatch(/runtime: install the pullvault runtime into the root \(installRuntimeInto\)/);
    expect(text).toContain('nothing changed');
    expect(existsSync(stateDir)).toBe(false);
  });

  it('builds sdcard.img and usbkey.img (state 0700, secrets 0600)', async () => {
    await built();
    for (const f of ['sdcard.img', 'usbkey.img', 'usbkey.key', 'recovery-passphrase.txt', 'data-disk.key', 'pi_ssh_key', 'identity.json'])
      expect((statSync(path.join(piState, f)).mode & 0o777).toString(8), f).toBe('600');
    expect((statSync(stateDir).mode & 0o777).toString(8)).toBe('700');
    expect((statSync(piState).mode & 0o777).toString(8)).toBe('700');
    expect(readFileSync(path.join(piState, 'pi_ssh_key.pub'), 'utf8')).toMatch(/^ssh-ed25519 /);
    expect(existsSync(path.join(piState, 'work'))).toBe(false);
    // the Pi's host key, pinned in state/ the way install-runtime dials the Pi
    const hostPub = readFileSync(path.join(piState, 'ssh_host_ed25519_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
    expect((statSync(path.join(piState, 'ssh_host_ed25519_key')).mode & 0o777).toString(8)).toBe('600');
    expect(readFileSync(path.join(piState, 'known_hosts'), 'utf8')).toBe(`[127.0.0.1]:${sshPort} ${hostPub}\n`);
  }, 900_000);

  it('static: cmdline.txt, config.txt, initramfs contents', async () => {
    await built();
    const d = mkdtempSync(path.join(dir, 'static-'));
    const f = await bootFilesFromImage(path.join(piState, 'sdcard.img'), d);
    const lines = f.cmdline.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(f.cmdline.endsWith('\n')).toBe(true);
    expect(lines[0]).toMatch(/(^| )root=\/dev\/mapper\/cryptroot( |$)/);
    expect(lines[0]).not.toMatch(/splash|init=|PARTUUID/);
    expect(f.config).toMatch(/^auto_initramfs=1$/m);
    const list = execFileSync('sh', ['-c', 'zstd -dc "$1" | cpio -it 2>/dev/null', 'sh', f.initrd], { maxBuffer: 64 << 20 }).toString();
    // a fresh disk id, not the base image's
    const diskId = JSON.parse((await run(['sfdisk', '-J', path.join(piState, 'sdcard.img')])).stdout).partitiontable.id;
    expect(diskId).toMatch(/^0x[0-9a-f]{8}$/);
    expect(diskId).not.toBe(LAB_DISK_ID);
    for (const need of [/\/usbhid\.ko/, /\/hid-generic\.ko/, /usr\/local\/lib\/pullvault\/unlock-keyscript$/m, /^(usr\/)?s?bin\/cryptsetup$/m, /dm-crypt\.ko/, /\/xts\.ko/, /usb-storage\.ko/, /\/uas\.ko/, /\/vfat\.ko/, /nls_cp437\.ko/, /cryptroot\/crypttab$/m, /lib\/cryptsetup\/askpass$/m])
      expect(list).toMatch(need);
    // the crypttab inside the initramfs names our UUID, keyscript, initramfs option
    const ird = path.join(d, 'ird');
    mkdirSync(ird);
    execFileSync('sh', ['-c', 'cd "$2" && zstd -dc "$1" | cpio -id cryptroot/crypttab usr/local/lib/pullvault/unlock-keyscript 2>/dev/null', 'sh', f.initrd, ird]);
    const uuid = JSON.parse(readFileSync(path.join(piState, 'identity.json'), 'utf8')).rootUuid;
    expect(readFileSync(path.join(ird, 'cryptroot/crypttab'), 'utf8')).toMatch(new RegExp(`^cryptroot UUID=${uuid} PVKEY luks,discard,initramfs,keyscript=/usr/local/lib/pullvault/unlock-keyscript,tries=0$`, 'm'));
    rmSync(d, { recursive: true, force: true });
  }, 900_000);

  it('static: LUKS header has the model cipher, argon2id with the set memory, two keyslots, the state UUID', async () => {
    await built();
    const p2 = path.join(dir, 'p2.luks');
    await partitionFile(path.join(piState, 'sdcard.img'), 1, p2);
    const dump = (await run(['cryptsetup', 'luksDump', p2])).stdout;
    rmSync(p2);
    const uuid = JSON.parse(readFileSync(path.join(piState, 'identity.json'), 'utf8')).rootUuid;
    expect(dump).toMatch(new RegExp(`^UUID:\\s+${uuid}$`, 'm'));
    expect(dump).toMatch(/cipher:\s+aes-xts-plain64/);
    expect(dump).toMatch(/Cipher key:\s+512 bits/);
    expect(dump).toMatch(/sector:\s+4096/);
    const slots = dump.split(/^Tokens:/m)[0].split(/^Keyslots:/m)[1];
    expect(slots.match(/^[ \t]+\d+: luks2$/gm)?.map((s) => s.trim())).toEqual(['0: luks2', '1: luks2']);
    expect(slots.match(/PBKDF:\s+argon2id/g)).toHaveLength(2);
    expect(slots.match(/Memory:\s+65536/g)).toHaveLength(2);
    expect(slots.match(/Time cost:\s+4/g)).toHaveLength(2);
  });

  it('static: no plaintext key material in the SD image (keyfile, passphrase, data key, SSH key)', async () => {
    await built();
    const img = readFileSync(path.join(piState, 'sdcard.img'));
    const key = readFileSync(path.join(piState, 'usbkey.key'));
    const needles: [string, Buffer][] = [
      ['usb keyfile', key],
      ['recovery passphrase', readFileSync(path.join(piState, 'recovery-passphrase.txt'))],
      ['data-disk key', readFileSync(path.join(piState, 'data-disk.key'))],
      ['pi ssh private key body', Buffer.from(readFileSync(path.join(piState, 'pi_ssh_key'), 'utf8').split('\n')[2])],
    ];
    for (const [name, n] of needles) expect(img.indexOf(n), name).toBe(-1);
    // the search itself works: the stick image does hold the keyfile in plain
    expect(readFileSync(path.join(piState, 'usbkey.img')).indexOf(key)).toBeGreaterThan(0);
  });

  it('boot with the USB key: unlocked by the keyfile, root mounted from /dev/mapper/cryptroot', async () => {
    await built();
    const b = await boot({ sdcard: path.join(piState, 'sdcard.img'), stick: path.join(piState, 'usbkey.img'), extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'boot-stick.log'), memMiB: 768 });
    try {
      await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      const m = await b.expect(MARKER, 60_000);
      expect(m[1]).toBe('/dev/mapper/cryptroot');
      expect(m[2]).toBe('ext4');
      expect(b.out).toContain('pullvault-unlock: USB key PVKEY found');
      timings.bootStick = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 90_000);

  it('boot without the USB key: the prompt on tty1, root never mounted; the passphrase typed on a USB keyboard unlocks', async () => {
    await built();
    const b = await boot({ sdcard: path.join(piState, 'sdcard.img'), console: 'tty1', extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'boot-keyboard.log'), memMiB: 768 });
    try {
      await b.expectScreen(SCREEN_PROMPT, BOOT_MS);
      await sleep(10_000);
      expect(await b.screen()).not.toMatch(MARKER);
      // /dev/console is tty1 as on the Pi: the prompt is on the screen, not on the serial port
      expect(b.out).not.toMatch(PROMPT);
      const pass = readFileSync(path.join(piState, 'recovery-passphrase.txt'), 'utf8');
      await b.typeKeys(pass);
      const screen = await b.expectScreen(MARKER, 180_000);
      expect(MARKER.exec(screen)?.[1]).toBe('/dev/mapper/cryptroot');
      // askpass does not echo what is typed
      expect(screen).not.toContain(pass.slice(0, 11));
      timings.bootKeyboard = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 300_000);

  it('boot with a stick holding the wrong key: refused, never mounted, then the passphrase typed on the keyboard unlocks', async () => {
    await built();
    const wrong = path.join(dir, 'wrongstick.img');
    const wrongKey = path.join(dir, 'wrong.key');
    writeFileSync(wrongKey, randomBytes(64));
    await run(['truncate', '-s', '16M', wrong]);
    await run(['mkfs.vfat', '-n', 'PVKEY', wrong]);
    await run(['mcopy', '-i', wrong, wrongKey, '::pullvault-root.key']);
    const b = await boot({ sdcard: path.join(piState, 'sdcard.img'), stick: wrong, console: 'tty1', extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'boot-wrongstick.log'), memMiB: 768 });
    try {
      const refused = await b.expectScreen(/the key did not unlock cryptroot; type the recovery/, BOOT_MS);
      expect(refused).toMatch(/cryptroot: cryptsetup failed, bad password or options/);
      await b.expectScreen(SCREEN_PROMPT, 60_000);
      await sleep(10_000);
      const waiting = await b.screen();
      expect(waiting).not.toMatch(MARKER);
      expect(waiting).not.toMatch(/set up successfully/);
      // the wrong stick is not offered again: one attempt with it
      expect(waiting.match(/USB key PVKEY found/g)?.length ?? 0).toBeLessThanOrEqual(1);
      await b.typeKeys(readFileSync(path.join(piState, 'recovery-passphrase.txt'), 'utf8'));
      expect(MARKER.exec(await b.expectScreen(MARKER, 180_000))?.[1]).toBe('/dev/mapper/cryptroot');
      timings.bootWrongStick = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 300_000);

  it('full systemd boot: data disk unlocked and mounted; root grown; sshd accepts the admin key with the host key pinned in state/', async () => {
    await built();
    // the data disk: ext4 holding a marker, encrypted with the key provision-pi put on the root
    const { file: data, token } = await makeDataDisk(dir, path.join(piState, 'data-disk.key'));
    const sdBytes = statSync(path.join(piState, 'sdcard.img')).size;
    const b = await boot({
      sdcard: path.join(piState, 'sdcard.img'),
      stick: path.join(piState, 'usbkey.img'),
      disks: [{ file: data, serial: 'pvdata' }],
      sdSizeMiB: Math.ceil(sdBytes / 1048576) + 512,
      extraCmdline: FULL_BOOT_CMDLINE,
      sshPort,
      log: path.join(logs, 'boot-full.log'),
      memMiB: 1024,
    });
    try {
      await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      // sshd, dialled the way install-runtime does: the host key pinned in state/<pi>/known_hosts
      const loaded = await loadInventory(invFile);
      const knownHosts = path.join(piState, 'known_hosts');
      const pin = piHostKeyPin(loaded.inventory, readFileSync(knownHosts, 'utf8'), knownHosts);
      expect(pin.source).toBe(knownHosts);
      const target = { name: 'pi01', host: '127.0.0.1', port: sshPort, username: 'root', hostKey: pin.hostKey, privateKey: readFileSync(path.join(dir, 'admin_key')), readyTimeoutMs: 60_000 };
      const exec = await connectWhenUp(b, target, 600_000);
      timings.fullBootSshReady = b.seconds;
      console.log(`  boot-full.log: +${b.seconds.toFixed(0)} s sshd accepted the admin key`);
      expect((await exec.run(['hostname'])).stdout.trim()).toBe('pi01');
      await exec.close();
      // adversarial: another host key pinned, or a key that is not the admin's → refused
      const stranger = path.join(dir, 'stranger_key');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
      const strangerPub = readFileSync(`${stranger}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
      await expect(SshExecutor.connect({ ...target, hostKey: strangerPub })).rejects.toBeInstanceOf(HostKeyMismatchError);
      await expect(SshExecutor.connect({ ...target, privateKey: readFileSync(stranger) })).rejects.toThrow(/login as root refused/);
      // install-runtime itself: pins the key from state/, connects, checks the Pi, changes nothing (--dry-run)
      const t = Date.now();
      const inst = await installRuntimeOverSsh(loaded, { dryRun: true, stateDir });
      timings.installRuntimeDryRun = (Date.now() - t) / 1000;
      expect(inst.summary.failed).toBe(0);
      expect(inst.warnings.filter((w) => /no node|lacks|no SSH key/.test(w))).toEqual([]);
      // the report fixture: waits for the boot to end, prints to the serial port, powers off
      const last = await SshExecutor.connect(target);
      await last.run(['systemd-run', '--no-block', '--unit', 'pilab-report-now', '/usr/local/sbin/pilab-report']);
      await last.close().catch(() => {});
      const m = await b.expect(/PILAB-FULLINIT-BEGIN([\s\S]*?)PILAB-FULLINIT-END/, 600_000, /Kernel panic/);
      const report = m[1];
      // the report waited for every boot job to end (not timed out while still "starting")
      expect(report).toMatch(/^SYSTEM (running|degraded)$/m);
      expect(report).toMatch(/^MOUNT \/dev\/mapper\/cryptroot \/ ext4/m);
      expect(report).toMatch(/^MOUNT \/dev\/mapper\/pullvault-data \/srv\/pullvault ext4/m);
      expect(report).toMatch(/^MAPPER pullvault-data/m);
      // read from the mounted data disk: unlocked with the key from the encrypted root, right contents
      expect(report).toMatch(new RegExp(`^DATAMARKER ${token}$`, 'm'));
      expect(report).toMatch(/^GROWN /m);
      const kb = Number(/^ROOTSIZE_KB (\d+)/m.exec(report)?.[1]);
      // built with ~1 GiB ext4; after growing into +512 MiB it must be clearly larger
      const before = JSON.parse((await run(['sfdisk', '-J', path.join(piState, 'sdcard.img')])).stdout).partitiontable.partitions[1].size * 512;
      expect(kb * 1024).toBeGreaterThan(before + 400 * 1048576);
      expect(report).not.toMatch(/^FAILED .*(cryptsetup|pullvault|srv-pullvault)/m);
      // reachable: sshd on with only the host key pinned in state/, the admin's key authorized,
      // Pi OS's first-boot key regeneration and user wizard masked (their stand-ins never ran)
      const pub = (f: string) => readFileSync(f, 'utf8').split(' ').slice(0, 2).join(' ');
      // the boot partition is mounted by the PARTUUID of the card's fresh disk id
      expect(report).toMatch(/^MOUNT \/dev\/vda1 \/boot\/firmware vfat/m);
      expect(report).toMatch(/^SSHD active$/m);
      expect(report.match(/^HOSTKEY .*$/gm)).toEqual([`HOSTKEY ${pub(path.join(piState, 'ssh_host_ed25519_key.pub'))}`]);
      expect(report).toMatch(/^UNIT userconfig masked$/m);
      expect(report).toMatch(/^UNIT regenerate_ssh_host_keys masked$/m);
      expect(b.out).not.toContain('PILAB-USERCONF-WIZARD-RAN');
      expect(report.match(/^AUTHKEY .*$/gm)).toEqual([`AUTHKEY ${pub(path.join(dir, 'admin_key.pub'))}`]);
      // later initramfs builds on the Pi judge by its hardware, not the image build's list
      expect(report).toMatch(/^INITRAMFS_CONF MODULES=(most|dep)$/m);
      expect(Number(/^NODE v(\d+)\./m.exec(report)?.[1])).toBeGreaterThanOrEqual(18);
      await b.waitExit(120_000);
      timings.bootFull = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 900_000);

  it('pi4: built with Adiantum (in the VM when this machine lacks it); the LUKS header says so', async () => {
    const log = await pi4Built();
    const host = await probeHostCipher(ADIANTUM, 256, dir);
    if (!host.ok) expect(log).toMatch(/encrypting in a amd64 VM \(qemu-system-x86_64\) booting the image's own kernel/);
    expect(log).toMatch(/encrypted in the VM in \d+ s|on this machine \(cryptsetup in userspace\)/);
    const p2 = path.join(dir, 'pi4-p2.luks');
    await partitionFile(path.join(pi4State, 'pi01', 'sdcard.img'), 1, p2);
    const dump = (await run(['cryptsetup', 'luksDump', p2])).stdout;
    rmSync(p2);
    const uuid = JSON.parse(readFileSync(path.join(pi4State, 'pi01', 'identity.json'), 'utf8')).rootUuid;
    expect(dump).toMatch(new RegExp(`^UUID:\\s+${uuid}$`, 'm'));
    expect(dump).toMatch(/cipher:\s+xchacha12,aes-adiantum-plain64/);
    expect(dump).toMatch(/sector:\s+4096/);
    const slots = dump.split(/^Tokens:/m)[0].split(/^Keyslots:/m)[1];
    expect(slots.match(/^[ \t]+\d+: luks2$/gm)?.map((x) => x.trim())).toEqual(['0: luks2', '1: luks2']);
    expect(slots.match(/Memory:\s+65536/g)).toHaveLength(2);
    // the VM's scratch (a copy of the key and passphrase) is gone
    expect(existsSync(path.join(pi4State, 'pi01', 'work'))).toBe(false);
  }, 1_800_000);

  it('pi4 boot with the USB key: the Adiantum root unlocked by the keyfile and mounted', async () => {
    await pi4Built();
    const s = path.join(pi4State, 'pi01');
    const b = await boot({ sdcard: path.join(s, 'sdcard.img'), stick: path.join(s, 'usbkey.img'), extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'boot-pi4-stick.log'), memMiB: 768 });
    try {
      await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      const m = await b.expect(MARKER, 60_000);
      expect(m[1]).toBe('/dev/mapper/cryptroot');
      expect(m[2]).toBe('ext4');
      timings.bootPi4Stick = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 90_000);

  it('pi4 boot with no stick and no passphrase: the prompt waits on tty1 and the root is never mounted', async () => {
    await pi4Built();
    const s = path.join(pi4State, 'pi01');
    // loglevel=6: the kernel's "EXT4-fs (dm-0): mounted" line would show on the serial port
    const b = await boot({ sdcard: path.join(s, 'sdcard.img'), console: 'tty1', extraCmdline: 'init=/usr/sbin/marker-init loglevel=6', log: path.join(logs, 'boot-pi4-nothing.log'), memMiB: 768 });
    try {
      await b.expectScreen(SCREEN_PROMPT, BOOT_MS);
      const seen = b.seconds;
      const WAIT_S = 45;
      while (b.seconds < seen + WAIT_S) {
        await sleep(5_000);
        expect(await b.screen()).not.toMatch(MARKER);
      }
      expect(b.out).not.toMatch(/EXT4-fs \(dm-\d+\): mounted|PILAB-MARKER/);
      expect(await b.screen()).toMatch(SCREEN_PROMPT);
      // still waiting: kill the VM by its PID
      expect(await b.waitExit(0)).toBe(false);
      process.kill(b.pid!, 'SIGKILL');
      expect(await b.waitExit(10_000)).toBe(true);
      timings.bootPi4NoUnlock = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 120_000);
});

