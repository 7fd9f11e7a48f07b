// provision-pi refuses a base image that is not laid out like Raspberry Pi OS in seconds, from the
// partition table and the FAT alone (real sfdisk, mkfs.vfat, mtools, xz): before secrets are made
// or anything slow runs. The images here are small disks shaped like the real ones' boot partitions.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkBaseLayout, sha256File } from '../../provision/image/build.ts';
import { main as provision } from '../../provision/cli.ts';

const main = (argv: string[]) => provision(['provision-pi', ...argv]);
import type { PiSpec } from '../../contract/inventory-schema.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(path.join(tmpdir(), 'pv-base-layout-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PIOS_CONFIG = '# Automatically load initramfs files, if found\nauto_initramfs=1\narm_64bit=1\n[all]\n';
const DEBIAN_CONFIG = '# Do not modify this file!\narm_64bit=1\nkernel=vmlinuz-6.1.0-28-arm64\ninitramfs initrd.img-6.1.0-28-arm64\n';

/** An MBR disk: p1 FAT32 holding `files`, p2 an (empty) Linux partition. */
function disk(name: string, files: Record<string, string>): string {
  const d = path.join(dir, name);
  mkdirSync(d);
  const fat = path.join(d, 'boot.vfat');
  execFileSync('mkfs.vfat', ['-F', '32', '-n', 'bootfs', '-C', fat, String(64 * 1024)], { stdio: 'ignore' });
  for (const [f, text] of Object.entries(files)) {
    writeFileSync(path.join(d, f), text);
    execFileSync('mcopy', ['-i', fat, path.join(d, f), `::${f}`]);
  }
  const img = path.join(d, 'disk.img');
  execFileSync('truncate', ['-s', '100M', img]);
  execFileSync('sfdisk', ['-q', img], { input: 'label: dos\nlabel-id: 0x9a6c1b4a\nstart=4MiB, size=64MiB, type=c\nstart=68MiB, type=83\n' });
  execFileSync('dd', [`if=${fat}`, `of=${img}`, 'bs=1M', 'seek=4', 'conv=notrunc', 'status=none']);
  return img;
}

const pios = (extra: Record<string, string> = {}) => ({ 'config.txt': PIOS_CONFIG, 'cmdline.txt': 'console=tty1 root=PARTUUID=9a6c1b4a-02 rootwait\n', 'kernel8.img': 'k8', 'kernel_2712.img': 'k2712', 'initramfs8': 'i8', ...extra });
const piOf = (model: PiSpec['model']) => ({ model, arch: 'arm64' }) as PiSpec;

describe('base image layout, checked up front', () => {
  it('a Raspberry Pi OS-shaped disk passes, also as .img.xz (only its head decompressed)', async () => {
    const img = disk('pios', pios());
    await expect(checkBaseLayout(img, piOf('pi5'))).resolves.toBeUndefined();
    execFileSync('xz', ['-0', '-k', '-T0', img]);
    await expect(checkBaseLayout(`${img}.xz`, piOf('pi4'))).resolves.toBeUndefined();
  });

  it('a Debian raspi-firmware disk is refused, naming the image, the reason and what to use', async () => {
    const img = disk('debian', { 'config.txt': DEBIAN_CONFIG, 'cmdline.txt': 'console=tty0 root=/dev/mmcblk0p2 rw\n', 'vmlinuz-6.1.0-28-arm64': 'k', 'initrd.img-6.1.0-28-arm64': 'i' });
    await expect(checkBaseLayout(img, piOf('pi4'))).rejects.toThrow(new RegExp(`^${img.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: this is a Debian raspi-firmware layout .*Raspberry Pi OS Lite \\(arm64\\)`));
  });

  it('a Pi 5 image without kernel_2712.img, and a disk with no partition table, are refused', async () => {
    const files = pios();
    delete (files as Record<string, string>)['kernel_2712.img'];
    const img = disk('no2712', files);
    await expect(checkBaseLayout(img, piOf('pi4'))).resolves.toBeUndefined();
    await expect(checkBaseLayout(img, piOf('pi5'))).rejects.toThrow(/lacks kernel_2712\.img/);
    const blank = path.join(dir, 'blank.img');
    execFileSync('truncate', ['-s', '8M', blank]);
    await expect(checkBaseLayout(blank, piOf('pi4'))).rejects.toThrow(/expected an MBR disk .*no partition table/);
  });

  it('provision-pi stops on it before making any secret or touching state/', async () => {
    const img = disk('debian-main', { 'config.txt': DEBIAN_CONFIG, 'cmdline.txt': 'root=/dev/mmcblk0p2\n', 'vmlinuz-6.1.0-28-arm64': 'k' });
    const inv = JSON.parse(readFileSync(path.join(REPO, 'inventory.json'), 'utf8'));
    delete inv.$schema;
    inv.pi.baseImage = { path: img, sha256: await sha256File(img) };
    for (const r of inv.recipients) r.publicKeyFile = path.join(REPO, r.publicKeyFile);
    const invFile = path.join(dir, 'inventory.json');
    writeFileSync(invFile, JSON.stringify(inv));
    const state = path.join(dir, 'state');
    const errs: string[] = [];
    const origErr = console.error;
    const origLog = console.log;
    console.error = (s: string) => errs.push(String(s));
    console.log = () => {};
    try {
      expect(await main(['--inventory', invFile, '--state', state])).toBe(1);
    } finally {
      console.error = origErr;
      console.log = origLog;
    }
    expect(errs.join('\n')).toMatch(/Debian raspi-firmware layout/);
    expect(existsSync(state)).toBe(false);
  });
});
