// The card writer. Refusals are decided from DeviceFacts; the facts come from a probe that reads
// /sys/block/*/removable, lsblk -J, /proc/mounts and /proc/swaps. Where a real device exists (this
// machine's own system disk) the REAL probe is used; fake sysfs/lsblk/mounts files stand in only for
// devices that do not exist here (a USB stick, an SD reader). The write + O_DIRECT read-back path
// runs for real against sparse image files.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, closeSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/proc/index.ts';
import { runCommand } from '../../provision/cli-common.ts';
import { deviceProblems, systemProbe, writeDeviceCommand, writeImage, sha256Of, type DeviceFacts, type DeviceProbe } from '../../provision/write-device.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const MiB = 1048576;
// O_DIRECT needs a real filesystem (tmpfs refuses it): /var/tmp, not /tmp
const WORK = mkdtempSync(path.join(process.env.PULLVAULT_TEST_TMP ?? '/var/tmp', 'pv-writedev-'));

/** A fake /sys/block + /proc for one disk `name` (and its partitions), with lsblk's JSON for it. */
function fakeSources(o: { name: string; tran: string | null; rm: boolean; type?: string; size: number; mounts?: string; swaps?: string; children?: string[]; model?: string; serial?: string }) {
  const d = mkdtempSync(path.join(WORK, 'sys-'));
  mkdirSync(path.join(d, 'block', o.name), { recursive: true });
  writeFileSync(path.join(d, 'block', o.name, 'removable'), o.rm ? '1\n' : '0\n');
  writeFileSync(path.join(d, 'mounts'), o.mounts ?? 'proc /proc proc rw 0 0\n/dev/vda / ext4 rw 0 0\n');
  writeFileSync(path.join(d, 'swaps'), `Filename\tType\tSize\tUsed\tPriority\n${o.swaps ?? ''}`);
  const lsblk = JSON.stringify({
    blockdevices: [
      {
        name: o.name, path: `/dev/${o.name}`, type: o.type ?? 'disk', size: o.size, model: o.model ?? 'Fake Reader', serial: o.serial ?? 'FAKE123', tran: o.tran, rm: o.rm, hotplug: o.rm,
        children: (o.children ?? []).map((c) => ({ name: c, path: `/dev/${c}`, type: 'part', size: o.size / 2, tran: o.tran, rm: o.rm, hotplug: o.rm })),
      },
    ],
  });
  return systemProbe({ sysBlock: path.join(d, 'block'), procMounts: path.join(d, 'mounts'), procSwaps: path.join(d, 'swaps'), lsblk: async () => lsblk });
}

function sparseImage(file: string, sizeMiB: number): void {
  const fd = openSync(file, 'w');
  // distinct data at the start, the middle and the end; holes elsewhere
  writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, 0);
  writeSync(fd, Buffer.from('middle of the image'), 0, 19, (sizeMiB / 2) * MiB + 123);
  writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, sizeMiB * MiB - 4096);
  closeSync(fd);
}

const facts = (o: Partial<DeviceFacts>): DeviceFacts => ({
  path: '/dev/sdz', name: 'sdz', type: 'disk', removable: true, hotplug: true, transport: 'usb', model: 'Reader', serial: 'S1', sizeBytes: 32 * 1024 * MiB, mounts: [], swap: false, ...o,
});

let invFile: string;
let stateDir: string;

beforeAll(() => {
  const inv = JSON.parse(readFileSync(path.join(REPO, 'inventory.json'), 'utf8'));
  delete inv.$schema;
  for (const r of inv.recipients) r.publicKeyFile = path.join(REPO, r.publicKeyFile);
  invFile = path.join(WORK, 'inventory.json');
  writeFileSync(invFile, JSON.stringify(inv));
  stateDir = path.join(WORK, 'state');
  mkdirSync(path.join(stateDir, 'pi01'), { recursive: true });
  sparseImage(path.join(stateDir, 'pi01', 'sdcard.img'), 24);
});
afterAll(() => rmSync(WORK, { recursive: true, force: true }));

describe('deviceProblems (pure)', () => {
  it('accepts a removable USB disk or an SD card of plausible size', () => {
    expect(deviceProblems(facts({}), 1300 * MiB)).toEqual([]);
    expect(deviceProblems(facts({ name: 'mmcblk0', path: '/dev/mmcblk0', transport: '', removable: false, hotplug: false }), 1300 * MiB)).toEqual([]);
  });
  it('refuses partitions, non-USB/MMC, non-removable, mounted, root, swap, too small, implausibly large, no medium', () => {
    expect(deviceProblems(facts({ type: 'part' }), MiB).join()).toMatch(/not a whole removable disk/);
    expect(deviceProblems(facts({ transport: 'sata', removable: false, hotplug: false }), MiB).join()).toMatch(/not a USB or MMC/);
    expect(deviceProblems(facts({ removable: false, hotplug: false }), MiB).join()).toMatch(/not removable/);
    expect(deviceProblems(facts({ mounts: ['/dev/sdz1 on /media/x'] }), MiB).join()).toMatch(/is mounted: \/dev\/sdz1 on \/media\/x/);
    expect(deviceProblems(facts({ mounts: ['/dev/sdz2 on /'] }), MiB).join()).toMatch(/holds the running system's root/);
    expect(deviceProblems(facts({ swap: true }), MiB).join()).toMatch(/swap/);
    expect(deviceProblems(facts({ sizeBytes: 8 * MiB }), 24 * MiB).join()).toMatch(/too small: 8\.0 MiB < the image's 24\.0 MiB/);
    expect(deviceProblems(facts({ sizeBytes: 4096 * 1024 * MiB }), MiB).join()).toMatch(/implausibly large/);
    expect(deviceProblems(facts({ sizeBytes: 0 }), MiB).join()).toMatch(/no medium/);
  });
});

describe('probe', () => {
  it('the REAL probe on this machine\'s system disk: refused (holds /, not removable USB/MMC)', async () => {
    const rootSrc = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[1] === '/' && f[0].startsWith('/dev/'))?.[0];
    if (!rootSrc) return expect.soft(rootSrc, 'no /dev root on this machine (container?)').toBeUndefined();
    const base = path.basename(rootSrc);
    const parent = statSync(`/sys/block/${base}`, { throwIfNoEntry: false }) ? base : (await run(['lsblk', '-no', 'PKNAME', rootSrc])).stdout.trim();
    const f = await systemProbe().facts(`/dev/${parent}`);
    expect(f.type).toBe('disk');
    const p = deviceProblems(f, MiB);
    expect(p.join('\n')).toMatch(/not a USB or MMC|not removable|root filesystem/);
  });

  it('a loop-device-like stand-in for a system disk (fake sysfs: virtio, not removable, holds /): refused', async () => {
    const f = await fakeSources({ name: 'vdz', tran: null, rm: false, size: 256 * 1024 * MiB, mounts: '/dev/vdz1 / ext4 rw 0 0\n', children: ['vdz1'] }).facts('/dev/vdz');
    expect(f.mounts).toEqual(['/dev/vdz1 on /']);
    expect(deviceProblems(f, MiB).join('\n')).toMatch(/not a USB or MMC[\s\S]*root filesystem/);
    const loop = await fakeSources({ name: 'loop7', tran: null, rm: false, type: 'loop', size: 2048 * MiB }).facts('/dev/loop7');
    expect(deviceProblems(loop, MiB).join('\n')).toMatch(/is a loop, not a whole removable disk/);
  });

  it('a mounted USB stick (partition in /proc/mounts, escaped spaces) and one used as swap: refused', async () => {
    const f = await fakeSources({ name: 'sdy', tran: 'usb', rm: true, size: 16 * 1024 * MiB, mounts: '/dev/sdy1 /media/my\\040stick vfat rw 0 0\n', children: ['sdy1'] }).facts('/dev/sdy');
    expect(deviceProblems(f, MiB)).toEqual(['/dev/sdy (Fake Reader) is mounted: /dev/sdy1 on /media/my stick (unmount it first)']);
    const s = await fakeSources({ name: 'sdx', tran: 'usb', rm: true, size: 16 * 1024 * MiB, swaps: '/dev/sdx2\tpartition\t1024\t0\t-2\n', children: ['sdx1', 'sdx2'] }).facts('/dev/sdx');
    expect(deviceProblems(s, MiB)).toEqual(['/dev/sdx (Fake Reader) is in use as swap']);
  });
});

describe('write + read-back (real files)', () => {
  it('writes the first MiB last, then the read-back (O_DIRECT) sha256 matches', async () => {
    const img = path.join(WORK, 'w.img');
    sparseImage(img, 8);
    const target = path.join(WORK, 'target.bin');
    writeFileSync(target, Buffer.alloc(16 * MiB, 0xff)); // old contents everywhere
    const writes: [number, number][] = [];
    writeImage(img, target, (off, len) => writes.push([off, len]));
    expect(writes.at(-1)).toEqual([0, MiB]);
    expect(writes[0][0]).toBe(MiB);
    expect(writes.filter(([o]) => o === 0)).toHaveLength(1);
    expect(await sha256Of(target, 8 * MiB, true)).toBe(await sha256Of(img, 8 * MiB, false));
    // the holes were written as zeros over the old 0xff contents
    const back = readFileSync(target);
    expect(back[2 * MiB]).toBe(0);
    expect(back[8 * MiB]).toBe(0xff); // beyond the image: untouched
  });

  it('main: refuses a too-small device (fake facts) without writing', async () => {
    const target = path.join(WORK, 'small.bin');
    writeFileSync(target, Buffer.alloc(MiB, 0xee));
    const probe: DeviceProbe = { facts: async () => facts({ path: target, sizeBytes: 8 * MiB }) };
    const errs: string[] = [];
    const orig = console.error;
    console.error = (s: string) => errs.push(s);
    try {
      expect(await runCommand(writeDeviceCommand({ probe, log: () => {} }), ['--device', target, '--image', 'sd', '--yes', '--inventory', invFile, '--state', stateDir], 'write-device')).toBe(1);
    } finally {
      console.error = orig;
    }
    expect(errs.join()).toMatch(/too small/);
    expect(readFileSync(target).every((b) => b === 0xee)).toBe(true);
  });

  it('main: asks (shows model, serial, size), writes, verifies; "no" writes nothing', async () => {
    const target = path.join(WORK, 'stick.bin');
    writeFileSync(target, Buffer.alloc(32 * MiB, 0x11));
    const probe: DeviceProbe = { facts: async () => facts({ path: target, sizeBytes: 32 * MiB, model: 'SanDisk Ultra', serial: '4C530001' }) };
    const out: string[] = [];
    let asked = '';
    expect(await runCommand(writeDeviceCommand({ probe, log: (s) => out.push(s), confirm: async (q) => ((asked = q), false) }), ['--device', target, '--image', 'sd', '--inventory', invFile, '--state', stateDir], 'write-device')).toBe(1);
    expect(asked).toMatch(/SanDisk Ultra, serial 4C530001/);
    expect(out.join('\n')).toMatch(/model: SanDisk Ultra {2}serial: 4C530001 {2}size: 32\.0 MiB/);
    expect(readFileSync(target).every((b) => b === 0x11)).toBe(true);
    expect(await runCommand(writeDeviceCommand({ probe, log: (s) => out.push(s), confirm: async () => true }), ['--device', target, '--image', 'sd', '--inventory', invFile, '--state', stateDir], 'write-device')).toBe(0);
    expect(out.join('\n')).toMatch(/verified: sha256 [0-9a-f]{64}/);
    expect(await sha256Of(target, 24 * MiB, true)).toBe(await sha256Of(path.join(stateDir, 'pi01', 'sdcard.img'), 24 * MiB, false));
  });
});
