// `make write-sd DEVICE=…` / `make write-usbkey DEVICE=…`: writes state/<pi>/sdcard.img or usbkey.img to
// a removable USB/MMC device, with every check a tired admin needs: refuses a device that is not a
// removable USB/MMC disk, is mounted (or a partition/holder of it is), holds / or swap, or whose size
// is implausible; shows model, serial and size and asks (or --yes); writes everything but the first
// MiB, then the first MiB (a half-written card never looks bootable), fsyncs, and reads the device
// back bypassing the page cache (O_DIRECT) to compare sha256.
//
// The facts about a device come from a DeviceProbe reading /sys/block/*/removable, `lsblk -J`,
// /proc/mounts and /proc/swaps; tests inject a probe with fake facts only where no real device
// exists (the write + read-back path itself runs against real files).
import { createHash } from 'node:crypto';
import { closeSync, constants, existsSync, openSync, readFileSync, readSync, realpathSync, statSync, writeSync, fsyncSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { defineCommand, UsageError } from './cli-common.ts';
import { run, start } from '../lib/proc/index.ts';

export interface DeviceFacts {
  /** the path given, resolved (e.g. /dev/sdb) */
  path: string;
  /** kernel name, e.g. sdb, mmcblk0 */
  name: string;
  type: string; // lsblk TYPE: disk, part, loop, rom, …
  removable: boolean; // /sys/block/<name>/removable
  hotplug: boolean;
  transport: string; // lsblk TRAN: usb, mmc, sata, nvme, virtio, "" …
  model: string;
  serial: string;
  sizeBytes: number;
  /** mount points of the device, its partitions and anything stacked on them (/proc/mounts) */
  mounts: string[];
  /** the device, a partition or a holder is an active swap (/proc/swaps) */
  swap: boolean;
}

export interface DeviceProbe {
  facts(device: string): Promise<DeviceFacts>;
}

export interface ProbeSources {
  sysBlock: string; // /sys/block
  procMounts: string; // /proc/mounts
  procSwaps: string; // /proc/swaps
  lsblk: (dev: string) => Promise<string>; // lsblk -J output
}

interface LsblkDev {
  name: string;
  path?: string;
  type: string;
  size: number | string;
  model?: string | null;
  serial?: string | null;
  tran?: string | null;
  rm?: boolean | string;
  hotplug?: boolean | string;
  children?: LsblkDev[];
}

const bool = (v: unknown) => v === true || v === '1' || v === 1;

/** The probe of this machine, with its sources replaceable for tests. */
export function systemProbe(src: Partial<ProbeSources> = {}): DeviceProbe {
  const s: ProbeSources = {
    sysBlock: '/sys/block',
    procMounts: '/proc/mounts',
    procSwaps: '/proc/swaps',
    lsblk: async (dev) => (await run(['lsblk', '-J', '-b', '-o', 'NAME,PATH,TYPE,SIZE,MODEL,SERIAL,TRAN,RM,HOTPLUG', dev])).stdout,
    ...src,
  };
  return {
    async facts(device: string): Promise<DeviceFacts> {
      const resolved = existsSync(device) ? realpathSync(device) : device;
      const tree = (JSON.parse(await s.lsblk(resolved)) as { blockdevices: LsblkDev[] }).blockdevices[0];
      if (!tree) throw new Error(`${device}: lsblk knows no such block device`);
      const names: string[] = [];
      const walk = (d: LsblkDev) => {
        names.push(d.name);
        (d.children ?? []).forEach(walk);
      };
      walk(tree);
      let removable = false;
      try {
        removable = readFileSync(path.join(s.sysBlock, tree.name, 'removable'), 'utf8').trim() === '1';
      } catch {}
      // holders (dm-crypt, LVM on top of a partition) count as the device being in use
      const holderNames = new Set(names);
      const devPaths = new Set(names.map((n) => `/dev/${n}`));
      const mounts: string[] = [];
      for (const line of readFileSync(s.procMounts, 'utf8').split('\n')) {
        const [src, mnt] = line.split(' ');
        if (!src || !src.startsWith('/dev/')) continue;
        let real = src;
        try {
          real = realpathSync(src);
        } catch {}
        if (devPaths.has(src) || devPaths.has(real) || holderNames.has(path.basename(real))) mounts.push(`${src} on ${mnt?.replace(/\\040/g, ' ')}`);
      }
      const swap = readFileSync(s.procSwaps, 'utf8')
        .split('\n')
        .slice(1)
        .some((l) => {
          const f = l.split(/\s+/)[0];
          if (!f) return false;
          let real = f;
          try {
            real = realpathSync(f);
          } catch {}
          return devPaths.has(f) || devPaths.has(real);
        });
      return {
        path: resolved,
        name: tree.name,
        type: tree.type,
        removable: removable || bool(tree.rm),
        hotplug: bool(tree.hotplug),
        transport: tree.tran ?? '',
        model: (tree.model ?? '').trim(),
        serial: (tree.serial ?? '').trim(),
        sizeBytes: Number(tree.size),
        mounts,
        swap,
      };
    },
  };
}

const MiB = 1048576;
const GiB = 1024 * MiB;
/** larger than any SD card / USB stick one would sacrifice for this: surely a system or data disk */
const MAX_PLAUSIBLE_BYTES = 2048 * GiB;

/** Pure: why this device must not be written (empty = acceptable). */
export function deviceProblems(f: DeviceFacts, imageBytes: number): string[] {
  const p: string[] = [];
  const what = `${f.path}${f.model ? ` (${f.model})` : ''}`;
  if (f.type !== 'disk') p.push(`${what} is a ${f.type || 'non-disk device'}, not a whole removable disk (give the disk, e.g. /dev/sdb, not a partition)`);
  const usbOrMmc = f.transport === 'usb' || f.transport === 'mmc' || /^mmcblk\d+$/.test(f.name);
  if (!usbOrMmc) p.push(`${what} is not a USB or MMC/SD device (transport: ${f.transport || 'none'})`);
  else if (!(f.removable || f.hotplug || f.transport === 'mmc' || /^mmcblk/.test(f.name))) p.push(`${what} is not removable`);
  if (f.mounts.some((m) => / on \/$/.test(m))) p.push(`${what} holds the running system's root filesystem`);
  if (f.mounts.length) p.push(`${what} is mounted: ${f.mounts.join(', ')} (unmount it first)`);
  if (f.swap) p.push(`${what} is in use as swap`);
  if (f.sizeBytes <= 0) p.push(`${what} has no medium (size 0)`);
  else if (f.sizeBytes < imageBytes) p.push(`${what} is too small: ${fmtSize(f.sizeBytes)} < the image's ${fmtSize(imageBytes)}`);
  else if (f.sizeBytes > MAX_PLAUSIBLE_BYTES) p.push(`${what} is ${fmtSize(f.sizeBytes)}: implausibly large for an SD card or USB key`);
  return p;
}

function fmtSize(b: number): string {
  return b >= GiB ? `${(b / GiB).toFixed(1)} GiB` : `${(b / MiB).toFixed(1)} MiB`;
}

export interface WriteObserver {
  (offset: number, length: number): void;
}

/** Writes image → target: everything after the first MiB, then the first MiB; fsync. */
export function writeImage(image: string, target: string, onWrite?: WriteObserver, progress?: (done: number, total: number) => void): void {
  const total = statSync(image).size;
  const inFd = openSync(image, 'r');
  // O_EXCL on a block device: fails if the kernel has it mounted or otherwise claimed
  const isBlock = existsSync(target) && statSync(target).isBlockDevice();
  const outFd = openSync(target, constants.O_WRONLY | (isBlock ? constants.O_EXCL : constants.O_CREAT));
  try {
    const buf = Buffer.alloc(4 * MiB);
    const copy = (from: number, to: number) => {
      let off = from;
      while (off < to) {
        const n = readSync(inFd, buf, 0, Math.min(buf.length, to - off), off);
        if (n <= 0) throw new Error(`short read from ${image} at ${off}`);
        let w = 0;
        while (w < n) w += writeSync(outFd, buf, w, n - w, off + w);
        onWrite?.(off, n);
        off += n;
        progress?.(off, total);
      }
    };
    const head = Math.min(MiB, total);
    copy(head, total);
    fsyncSync(outFd);
    copy(0, head);
    fsyncSync(outFd);
  } finally {
    closeSync(outFd);
    closeSync(inFd);
  }
}

export async function sha256Of(file: string, bytes: number, direct: boolean): Promise<string> {
  const h = createHash('sha256');
  const argv = ['dd', `if=${file}`, 'bs=4M', `count=${bytes}`, `iflag=count_bytes${direct ? ',direct' : ''}`, 'status=none'];
  const dd = start(argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  dd.child.stdout!.on('data', (b: Buffer) => h.update(b));
  await dd.done;
  return h.digest('hex');
}

const USAGE = `usage: write-device --device DEV --image sd|usbkey [--yes] [--inventory FILE] [--state DIR]

Writes state/<pi>/sdcard.img (--image sd) or state/<pi>/usbkey.img (--image usbkey) to DEV, a removable
USB or SD/MMC disk (e.g. /dev/sdb, /dev/mmcblk0, /dev/disk/by-id/usb-…). Refuses system, mounted, swap
and implausibly sized devices; asks before writing unless --yes; verifies by reading back (O_DIRECT).`;

export interface WriteDeps {
  probe?: DeviceProbe;
  /** answers the confirmation question (tests); default: the terminal */
  confirm?: (question: string) => Promise<boolean>;
  log?: (s: string) => void;
}

/** write-device, with what it asks and probes replaceable (tests); `image` preset by write-sd / write-usbkey. */
export function writeDeviceCommand(deps: WriteDeps = {}, preset?: 'sd' | 'usbkey') {
  return defineCommand({
    help: USAGE,
    options: {
      device: { type: 'string' },
      image: { type: 'string' },
      yes: { type: 'boolean', short: 'y', default: false },
    },
    inventory: true,
    run: ({ values, loaded, state }) => {
      const device = values.device || process.env.DEVICE || '';
      const image = values.image ?? preset;
      if (!device) throw new UsageError('--device is required (e.g. make write-sd DEVICE=/dev/sdb)');
      if (image !== 'sd' && image !== 'usbkey') throw new UsageError('--image must be sd or usbkey');
      return writeDevice({ device, image, yes: values.yes, file: path.join(state, loaded.inventory.pi.name, image === 'sd' ? 'sdcard.img' : 'usbkey.img') }, deps);
    },
  });
}

export const command = writeDeviceCommand();
export const writeSdCommand = writeDeviceCommand({}, 'sd');
export const writeUsbkeyCommand = writeDeviceCommand({}, 'usbkey');

async function writeDevice(o: { device: string; image: string; yes: boolean; file: string }, deps: WriteDeps): Promise<number> {
  const log = deps.log ?? ((s: string) => console.log(s));
  const { file, yes } = o;
  if (!existsSync(file)) throw new Error(`${file} does not exist: run make provision-pi first`);
  const bytes = statSync(file).size;
  const facts = await (deps.probe ?? systemProbe()).facts(o.device);
  const problems = deviceProblems(facts, bytes);
  if (problems.length) {
    console.error(`write-device: refusing to write ${facts.path}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    return 1;
  }
  log(`target: ${facts.path}  model: ${facts.model || '?'}  serial: ${facts.serial || '?'}  size: ${fmtSize(facts.sizeBytes)}  (${facts.transport}, removable)`);
  log(`image:  ${file} (${fmtSize(bytes)})`);
  if (!yes) {
    const ask =
      deps.confirm ??
      (async (q: string) => {
        if (!process.stdin.isTTY) throw new Error('not a terminal: pass --yes to write without asking');
        const rl = createInterface({ input: process.stdin, output: process.stdout });
        const a = await rl.question(q);
        rl.close();
        return a.trim() === 'yes';
      });
    if (!(await ask(`ALL DATA on ${facts.path} (${facts.model || 'unknown model'}, serial ${facts.serial || '?'}) will be lost. Type "yes" to write: `))) {
      log('not written');
      return 1;
    }
  }
  const t0 = Date.now();
  let lastPct = -1;
  writeImage(file, facts.path, undefined, (done, total) => {
    const pct = Math.floor((done / total) * 10) * 10;
    if (pct !== lastPct) {
      lastPct = pct;
      log(`  written ${pct}%`);
    }
  });
  log(`written in ${((Date.now() - t0) / 1000).toFixed(1)} s (first MiB last, fsync'd); reading back with O_DIRECT …`);
  const [want, got] = [await sha256Of(file, bytes, false), await sha256Of(facts.path, bytes, true)];
  if (want !== got) {
    console.error(`write-device: VERIFY FAILED: ${facts.path} reads back ${got}, the image is ${want}. The device may be faulty or counterfeit.`);
    return 1;
  }
  log(`verified: sha256 ${want}`);
  return 0;
}
