// The long image suite: build a Pi-OS-shaped lab base image (amd64, cached), run provision-pi on it
// for real (chroot, mkfs.ext4 -d, userspace cryptsetup reencrypt), check the result statically, then
// boot it under qemu TCG (one qemu at a time):
//   stick present → unlocked by the keyfile; no stick → askpass waits, the recovery passphrase typed
//   on the serial console unlocks; wrong stick → refused, then the passphrase unlocks; and one full
//   systemd boot that unlocks + mounts the LUKS data disk and grows the root to fill the card.
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
import { LAB_DISK_ID, labBaseImage } from './lab-base.ts';
import { boot, bootFilesFromImage } from './qemu.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const isRoot = process.getuid?.() === 0;
const WORK = process.env.PULLVAULT_IMAGE_TEST_DIR ?? '/var/tmp/pullvault-image-test';
const MARKER = /PILAB-MARKER: userspace reached; \/ is (\S+) (\S+)/;
const PROMPT = /Please unlock disk cryptroot: insert the USB key PVKEY or type the recovery passphrase/g;
const BOOT_MS = 360_000;

let dir: string;
let stateDir: string;
let invFile: string;
let piState: string;
let logs: string;

function labInventory(base: { path: string; sha256: string }, overrides: Record<string, unknown> = {}) {
  const inv = JSON.parse(readFileSync(path.join(REPO, 'inventory.json'), 'utf8'));
  delete inv.$schema;
  inv.pi = {
    ...inv.pi,
    model: 'pi5', // aes-xts-plain64: this host's kernel has no AF_ALG/adiantum, so userspace reencrypt can only do AES here
    arch: 'amd64',
    baseImage: { path: base.path, sha256: base.sha256 },
    usbKey: { label: 'PVKEY', filesystem: 'vfat' },
    luks: { pbkdfMemoryKiB: 65536, pbkdfIterations: 4 }, // small: argon2 under TCG
    dataDisk: { device: '/dev/disk/by-id/virtio-pvdata', mountpoint: '/srv/pullvault', mapperName: 'pullvault-data' },
    ssh: { ...inv.pi.ssh, adminKeyFile: path.join(dir, 'admin_key') },
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

  beforeAll(async () => {
    mkdirSync(WORK, { recursive: true, mode: 0o700 });
    dir = mkdtempSync(path.join(WORK, 'run-'));
    stateDir = path.join(dir, 'state');
    logs = path.join(dir, 'logs');
    let t = Date.now();
    base = await labBaseImage('amd64', (s) => console.log(s));
    timings.base = (Date.now() - t) / 1000;
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'admin@lab', '-f', path.join(dir, 'admin_key')]);
    invFile = path.join(dir, 'inventory.json');
    writeFileSync(invFile, JSON.stringify(labInventory(base), null, 1));
    piState = path.join(stateDir, 'pi01');
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
    expect(readFileSync(path.join(piState, 'known_hosts'), 'utf8')).toBe(`pi01.home.arpa ${hostPub}\n`);
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

  it('boot without the USB key: root never mounted; the recovery passphrase typed on the console unlocks', async () => {
    await built();
    const b = await boot({ sdcard: path.join(piState, 'sdcard.img'), extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'boot-nostick.log'), memMiB: 768 });
    try {
      await b.expect(PROMPT, BOOT_MS, /Kernel panic|Dropping to a shell/);
      await new Promise((r) => setTimeout(r, 10_000));
      expect(b.out).not.toMatch(MARKER);
      expect(b.out).not.toMatch(/set up successfully/);
      b.type(readFileSync(path.join(piState, 'recovery-passphrase.txt'), 'utf8') + '\n');
      await b.expect(/cryptroot: set up successfully/, 120_000, /Kernel panic/);
      const m = await b.expect(MARKER, 60_000);
      expect(m[1]).toBe('/dev/mapper/cryptroot');
      timings.bootPassphrase = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 200_000);

  it('boot with a stick holding the wrong key: refused, never mounted, then the passphrase still unlocks', async () => {
    await built();
    const wrong = path.join(dir, 'wrongstick.img');
    const wrongKey = path.join(dir, 'wrong.key');
    writeFileSync(wrongKey, Buffer.from(execFileSync('head', ['-c', '64', '/dev/urandom'])));
    await run(['truncate', '-s', '16M', wrong]);
    await run(['mkfs.vfat', '-n', 'PVKEY', wrong]);
    await run(['mcopy', '-i', wrong, wrongKey, '::pullvault-root.key']);
    const b = await boot({ sdcard: path.join(piState, 'sdcard.img'), stick: wrong, extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'boot-wrongstick.log'), memMiB: 768 });
    try {
      await b.expect(/pullvault-unlock: USB key PVKEY found/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      await b.expect(/cryptroot: cryptsetup failed, bad password or options/, 120_000);
      await b.expect(/the key did not unlock cryptroot; type the recovery passphrase/, 60_000);
      await new Promise((r) => setTimeout(r, 10_000));
      expect(b.out).not.toMatch(MARKER);
      expect(b.out).not.toMatch(/set up successfully/);
      // the wrong stick is not offered again: only one attempt with it
      expect(b.out.match(/USB key PVKEY found/g)).toHaveLength(1);
      b.type(readFileSync(path.join(piState, 'recovery-passphrase.txt'), 'utf8') + '\n');
      await b.expect(/cryptroot: set up successfully/, 120_000);
      expect((await b.expect(MARKER, 60_000))[1]).toBe('/dev/mapper/cryptroot');
      timings.bootWrongStick = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 200_000);

  it('full systemd boot: data disk unlocked by its key on the root and mounted; root grown to fill the card', async () => {
    await built();
    // the data disk: ext4 holding a marker, encrypted in userspace with the key provision-pi put on the root
    const data = path.join(dir, 'data.img');
    const seed = mkdtempSync(path.join(dir, 'data-seed-'));
    const token = randomBytes(16).toString('hex');
    writeFileSync(path.join(seed, 'pilab-data-marker'), token + '\n');
    await run(['truncate', '-s', '96M', data]);
    await run(['mkfs.ext4', '-q', '-L', 'pvdata', '-d', seed, data, '64M']);
    rmSync(seed, { recursive: true, force: true });
    await run(['cryptsetup', 'reencrypt', '--encrypt', '--type', 'luks2', '--batch-mode', '--reduce-device-size', '32M', '--pbkdf', 'argon2id', '--pbkdf-memory', '65536', '--pbkdf-force-iterations', '4', '--key-file', path.join(piState, 'data-disk.key'), data]);
    const sdBytes = statSync(path.join(piState, 'sdcard.img')).size;
    const b = await boot({
      sdcard: path.join(piState, 'sdcard.img'),
      stick: path.join(piState, 'usbkey.img'),
      disks: [{ file: data, serial: 'pvdata' }],
      sdSizeMiB: Math.ceil(sdBytes / 1048576) + 512,
      // unit status lines on the console: the log then shows which job waited for what
      extraCmdline: 'systemd.show_status=1',
      log: path.join(logs, 'boot-full.log'),
      memMiB: 1024,
    });
    try {
      await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
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
  }, BOOT_MS + 700_000);
});

