// pi.unlock boot tests (amd64 lab, qemu TCG): one card built by provision-pi with a tang server
// (clevis keyslot 2, thumbprint pinned, bound offline from the saved advertisement) and SSH unlock
// (dropbear in the initramfs). The real tangd answers the guest through qemu's guestfwd (stdio),
// dropbear is reached through a hostfwd bound inside qemu's own network namespace.
//   tang answering, no stick, nobody typing → unlocked and root mounted;
//   tang not answering, no stick → waits, root never mounted (qemu killed by PID);
//   a tang server with other keys → refused, root never mounted;
//   ssh -p PORT root@guest cryptroot-unlock with the passphrase on stdin → unlocked; that key gets
//   neither a shell nor a forward.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as provision } from '../../provision/cli.ts';
import { run } from '../../lib/proc/index.ts';
import { labBaseImage } from './lab-base.ts';
import { boot, bootFilesFromImage, type Boot } from './qemu.ts';
import { makeTangServer, TANG_GUEST_URL, type TangServer } from './tang-server.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const isRoot = process.getuid?.() === 0;
const haveTools = existsSync('/usr/libexec/tangd') && existsSync('/usr/bin/clevis-luks-bind');
const WORK = process.env.PULLVAULT_IMAGE_TEST_DIR ?? '/var/tmp/pullvault-image-test';
const MARKER = /PILAB-MARKER: userspace reached; \/ is (\S+) (\S+)/;
const BOOT_MS = 360_000;
const UNLOCK_PORT = 2222;
const GUEST_FWD_PORT = 10022;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!isRoot || !haveTools)('pi.unlock: tang and dropbear (amd64 lab, qemu TCG)', () => {
  let dir: string;
  let stateDir: string;
  let piState: string;
  let logs: string;
  let tang: TangServer;
  let otherTang: TangServer;
  const timings: Record<string, number> = {};
  let building: Promise<number> | undefined;
  let invFile: string;
  const built = async (): Promise<void> => {
    building ??= (async () => {
      const t = Date.now();
      const rc = await provision(['provision-pi', '--inventory', invFile, '--state', stateDir]);
      timings.build = (Date.now() - t) / 1000;
      return rc;
    })();
    expect(await building, 'provision-pi build').toBe(0);
  };

  beforeAll(async () => {
    mkdirSync(WORK, { recursive: true, mode: 0o700 });
    dir = mkdtempSync(path.join(WORK, 'unlock-'));
    stateDir = path.join(dir, 'state');
    piState = path.join(stateDir, 'pi01');
    logs = path.join(dir, 'logs');
    const base = await labBaseImage('amd64', (s) => console.log(s));
    tang = await makeTangServer(path.join(dir, 'tang'));
    otherTang = await makeTangServer(path.join(dir, 'tang-other'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'admin@lab', '-f', path.join(dir, 'admin_key')]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'unlock@lab', '-f', path.join(dir, 'unlock_key')]);
    const inv = JSON.parse(readFileSync(path.join(REPO, 'inventory.json'), 'utf8'));
    delete inv.$schema;
    inv.pi = {
      ...inv.pi,
      model: 'pi5',
      arch: 'amd64',
      baseImage: { path: base.path, sha256: base.sha256 },
      usbKey: { label: 'PVKEY', filesystem: 'vfat' },
      luks: { pbkdfMemoryKiB: 65536, pbkdfIterations: 4 },
      dataDisk: { device: '/dev/disk/by-id/virtio-pvdata', mountpoint: '/srv/pullvault', mapperName: 'pullvault-data' },
      ssh: { host: '127.0.0.1', port: GUEST_FWD_PORT, admin: inv.pi.ssh.admin, adminKeyFile: path.join(dir, 'admin_key') },
      // bound offline from the saved advertisement: the build needs no network
      unlock: {
        tang: [{ url: TANG_GUEST_URL, thumbprint: tang.thumbprint, adv: tang.advFile }],
        ssh: { authorizedKeys: [readFileSync(path.join(dir, 'unlock_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')], port: UNLOCK_PORT },
      },
    };
    for (const r of inv.recipients) r.publicKeyFile = path.join(REPO, r.publicKeyFile);
    invFile = path.join(dir, 'inventory.json');
    writeFileSync(invFile, JSON.stringify(inv, null, 1));
  }, 900_000);

  afterAll(() => {
    console.log(`unlock suite timings (s): ${JSON.stringify(timings)}`);
    if (!process.env.PULLVAULT_KEEP_IMAGE_TEST) rmSync(dir, { recursive: true, force: true });
  });

  it('a thumbprint that is not the server\'s signing key: refused before anything is built', async () => {
    const bad = JSON.parse(readFileSync(invFile, 'utf8'));
    bad.pi.unlock.tang[0].thumbprint = otherTang.thumbprint;
    const f = path.join(dir, 'inventory-badthp.json');
    writeFileSync(f, JSON.stringify(bad));
    const errs: string[] = [];
    const orig = console.error;
    console.error = (s: string) => errs.push(String(s));
    try {
      expect(await provision(['provision-pi', '--inventory', f, '--state', path.join(dir, 'state-badthp')])).toBe(1);
    } finally {
      console.error = orig;
    }
    expect(errs.join('\n')).toMatch(/pi\.unlock\.tang\[0\]: [\s\S]*did not sign the advertisement/);
    expect(existsSync(path.join(dir, 'state-badthp', 'pi01', 'sdcard.img'))).toBe(false);
  }, 900_000);

  it('builds: keyslot 2 bound by clevis, dropbear and clevis in the initramfs, ip=dhcp, the dropbear key pinned', async () => {
    await built();
    const t = JSON.parse((await run(['sfdisk', '-J', path.join(piState, 'sdcard.img')])).stdout).partitiontable;
    const p = t.partitions[1];
    const p2 = path.join(dir, 'p2.luks');
    await run(['dd', `if=${path.join(piState, 'sdcard.img')}`, `of=${p2}`, 'bs=4M', `skip=${p.start * 512}`, `count=${32 << 20}`, 'iflag=skip_bytes,count_bytes', 'status=none']);
    const dump = (await run(['cryptsetup', 'luksDump', p2])).stdout;
    rmSync(p2);
    expect(dump.split(/^Tokens:/m)[1]).toMatch(/^\s+0: clevis\n\s+Keyslot:\s+2$/m);
    expect(dump.split(/^Tokens:/m)[0].match(/^\s+\d+: luks2$/gm)?.map((s) => s.trim())).toEqual(['0: luks2', '1: luks2', '2: luks2']);
    const d = mkdtempSync(path.join(dir, 'static-'));
    const f = await bootFilesFromImage(path.join(piState, 'sdcard.img'), d);
    expect(f.cmdline.trim()).toMatch(/(^| )ip=dhcp( |$)/);
    const list = execFileSync('sh', ['-c', 'zstd -dc "$1" | cpio -it 2>/dev/null', 'sh', f.initrd], { maxBuffer: 64 << 20 }).toString();
    for (const need of [/bin\/clevis-luks-pass$/m, /bin\/clevis-decrypt-tang$/m, /sbin\/dropbear$/m, /bin\/cryptroot-unlock$/m, /etc\/dropbear\/dropbear_ed25519_host_key$/m]) expect(list).toMatch(need);
    expect(list).not.toMatch(/dropbear_(rsa|ecdsa)_host_key$/m);
    const ird = path.join(d, 'ird');
    mkdirSync(ird);
    execFileSync('sh', ['-c', 'cd "$2" && zstd -dc "$1" | cpio -id "root-*/.ssh/authorized_keys" "*/authorized_keys" etc/dropbear/config 2>/dev/null; true', 'sh', f.initrd, ird]);
    const ak = execFileSync('sh', ['-c', 'cat "$1"/root*/.ssh/authorized_keys', 'sh', ird]).toString();
    expect(ak.trim()).toBe(`command="cryptroot-unlock",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty ${readFileSync(path.join(dir, 'unlock_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}`);
    rmSync(d, { recursive: true, force: true });
    const pub = readFileSync(path.join(piState, 'initramfs_ssh_host_ed25519_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
    expect(readFileSync(path.join(piState, 'known_hosts'), 'utf8')).toContain(`[127.0.0.1]:${UNLOCK_PORT} ${pub}\n`);
  }, 900_000);

  const sd = () => path.join(piState, 'sdcard.img');

  it('tang answering, no stick, nobody typing: unlocked by tang, root mounted', async () => {
    await built();
    const b = await boot({ sdcard: sd(), forwards: [tang.guestfwd], extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'boot-tang.log'), memMiB: 768 });
    try {
      // by the keyscript's clevis luks pass or clevis-initramfs's own loop feeding the prompt's fifo,
      // whichever is first: no stick and nobody typing, so tang's answer is the only key there is
      await b.expect(/cryptroot: set up successfully/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      const m = await b.expect(MARKER, 120_000);
      expect(b.out).not.toContain('USB key PVKEY found');
      // the real tangd did the key exchange for the bound key
      expect(readFileSync(tang.logFile, 'utf8')).toMatch(/POST \/rec\/\S+ => 200/);
      expect(m[1]).toBe('/dev/mapper/cryptroot');
      timings.bootTang = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 180_000);

  const neverMounted = async (b: Boot, name: string) => {
    await b.expect(/tang: no server with the bound keys answered/, BOOT_MS, /Kernel panic|Dropping to a shell/);
    const seen = b.seconds;
    while (b.seconds < seen + 45) {
      await sleep(5_000);
      expect(b.out).not.toMatch(/PILAB-MARKER|cryptroot: set up successfully|tang answered/);
    }
    // still waiting: kill the VM by its PID
    expect(await b.waitExit(0)).toBe(false);
    process.kill(b.pid!, 'SIGKILL');
    expect(await b.waitExit(10_000)).toBe(true);
    timings[name] = b.seconds;
  };

  it('tang not answering, no stick: waits, the root is never mounted', async () => {
    await built();
    const b = await boot({ sdcard: sd(), network: true, extraCmdline: 'init=/usr/sbin/marker-init loglevel=6', log: path.join(logs, 'boot-tang-down.log'), memMiB: 768 });
    try {
      await neverMounted(b, 'bootTangDown');
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 120_000);

  it('a tang server with other keys at the same address: refused, the root is never mounted', async () => {
    await built();
    const b = await boot({ sdcard: sd(), forwards: [otherTang.guestfwd], extraCmdline: 'init=/usr/sbin/marker-init loglevel=6', log: path.join(logs, 'boot-tang-other.log'), memMiB: 768 });
    try {
      await neverMounted(b, 'bootTangOther');
      // it was asked (so the refusal is tang's, not the network's) and knew no such key
      const asked = readFileSync(otherTang.logFile, 'utf8');
      expect(asked).toMatch(/POST \/rec\/\S+ => [45]\d\d/);
      expect(asked).not.toMatch(/=> 200/);
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 120_000);

  it('dropbear: the unlock key gets no shell and no forward; ssh … cryptroot-unlock with the passphrase unlocks', async () => {
    await built();
    const b = await boot({ sdcard: sd(), privateNet: true, forwards: [`hostfwd=tcp:127.0.0.1:${UNLOCK_PORT}-:${UNLOCK_PORT}`], extraCmdline: 'init=/usr/sbin/marker-init', log: path.join(logs, 'boot-dropbear.log'), memMiB: 768 });
    // ssh inside qemu's network namespace, the dropbear host key pinned from state/
    const ssh = (args: string[], input = '') =>
      run(
        ['nsenter', `--net=/proc/${b.pid}/ns/net`, '--', 'ssh', '-p', String(UNLOCK_PORT), '-i', path.join(dir, 'unlock_key'), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
          '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${path.join(piState, 'known_hosts')}`, '-o', 'ConnectTimeout=20', ...args],
        { input, okCodes: [0, 1, 2, 255], timeoutMs: 120_000 },
      );
    try {
      await b.expect(/Please unlock disk cryptroot/, BOOT_MS, /Kernel panic|Dropping to a shell/);
      let r = await ssh(['root@127.0.0.1', 'sh', '-c', '"echo SHELL-$((6*7))"']);
      for (let i = 0; i < 30 && /Connection refused|reset|closed/.test(r.stderr) && !r.stdout; i++) {
        await sleep(5_000);
        r = await ssh(['root@127.0.0.1', 'sh', '-c', '"echo SHELL-$((6*7))"']);
      }
      // the forced command ran instead of the shell (it asks for the passphrase, gets none)
      expect(r.stdout + r.stderr).not.toContain('SHELL-42');
      expect(r.stdout + r.stderr).toMatch(/cryptroot|passphrase|unlock/i);
      const fwd = await ssh(['-o', 'ExitOnForwardFailure=yes', '-W', '10.0.2.2:22', 'root@127.0.0.1']);
      expect(fwd.code).not.toBe(0);
      expect(fwd.stderr).toMatch(/open failed|administratively prohibited|forwarding/i);
      expect(b.out).not.toMatch(MARKER);
      const pass = readFileSync(path.join(piState, 'recovery-passphrase.txt'), 'utf8');
      // not a tty: cryptroot-unlock hands stdin to the askpass fifo as it is (no newline)
      const u = await ssh(['root@127.0.0.1', 'cryptroot-unlock'], pass);
      expect(u.stdout + u.stderr).toMatch(/cryptroot.*(set up successfully|unlocked)/i);
      expect((await b.expect(MARKER, 180_000))[1]).toBe('/dev/mapper/cryptroot');
      timings.bootDropbear = b.seconds;
    } finally {
      await b.stop();
    }
  }, BOOT_MS + 400_000);
});
