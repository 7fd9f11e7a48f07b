// Boots a built SD image under qemu TCG the way the Pi firmware would: kernel, initramfs and
// cmdline are taken from the image's FAT partition (config.txt decides which files). The SD image
// is a virtio-blk disk (copy-on-write overlay, the image stays pristine), the USB key a usb-storage
// device on qemu-xhci. The serial console is qemu's stdio, which we read (and may write).
// console: 'tty1' keeps the image's own console= arguments, so /dev/console is tty1 as on the Pi:
// the initramfs talks to the screen (VGA text, read back through the monitor) and a USB keyboard
// on the xhci bus types into it (monitor sendkey); the serial port then only carries the kernel's
// log and what the test fixtures write to /dev/ttyS0. hostfwd: user-mode networking with the guest's
// port 22 forwarded from 127.0.0.1 only, restrict=on (the guest reaches nothing beyond qemu).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { run } from '../../lib/proc/index.ts';

export interface BootOptions {
  sdcard: string;
  /** USB stick image, or none */
  stick?: string;
  /** extra virtio disks (e.g. the data disk), with their serial (→ /dev/disk/by-id/virtio-<serial>) */
  disks?: { file: string; serial: string }[];
  /** grow the SD disk to this size (qcow2 overlay), to exercise the first-boot resize */
  sdSizeMiB?: number;
  /** appended to the image's cmdline (e.g. init=/usr/sbin/marker-init) */
  extraCmdline?: string;
  memMiB?: number;
  /**
   * vCPUs, default 1 (or $PULLVAULT_QEMU_SMP). Measured under TCG on this loaded 2-core host (load ~6),
   * full systemd boot: with 2 vCPUs a udev worker sat in a "soft lockup" for 108 s while the data disk
   * was being unlocked (cryptsetup waits for udev), so the unlock took 148 s — inside the device
   * timeout window, which is what failed before; with 1 vCPU the stall (22 s lockup, ~2 min) hit
   * systemd's generator phase instead, before any device job starts, and the disk was unlocked and
   * mounted ~14 s after udev saw it. Same total time; the initramfs boots take the same time either way.
   */
  smp?: number;
  log: string;
  /** amd64: q35 (the lab base); arm64: `-M virt`, the image's kernel8.img + initramfs8 (Pi OS-shaped base) */
  arch?: 'amd64' | 'arm64';
  /**
   * arm64 only: 'raspi3b' boots qemu's Raspberry Pi 3B (BCM2837: its SD host controller, dwc2 USB,
   * PL011, 1 GiB, 4 cores) with the card's own kernel8.img, initramfs8 and the board's DTB from the
   * FAT, the card as the SD card (grown to a power of two, as qemu's SD model needs). It has no
   * network and cannot power off: the test kills it by its PID.
   */
  machine?: 'virt' | 'raspi3b';
  /** 'serial' (default): console=ttyS0 only; 'tty1': the image's console= arguments, USB keyboard, monitor */
  console?: 'serial' | 'tty1';
  /** forward 127.0.0.1:<port> to the guest's sshd (user-mode networking, restricted) */
  sshPort?: number;
  /** more user-mode forwards: hostfwd=… (host → guest) and guestfwd=… (guest → a command on its stdio) */
  forwards?: string[];
  /** user-mode networking with no forward at all: the guest gets DHCP and reaches nothing */
  network?: boolean;
  /** qemu in its own network namespace (only lo): host forwards then bind there, not on the machine */
  privateNet?: boolean;
}

export interface BootFiles {
  kernel: string;
  initrd: string;
  cmdline: string;
  config: string;
}

/** the Pi 3B's device tree as Debian's kernel names it (Pi OS's own is bcm2710-rpi-3-b.dtb) */
const RASPI3B_DTBS = ['bcm2837-rpi-3-b.dtb', 'bcm2710-rpi-3-b.dtb'];

/** What the firmware would load: config.txt kernel=/initramfs lines, else kernel8.img + initramfs8 (auto_initramfs=1). */
export async function bootFilesFromImage(sdcard: string, dir: string): Promise<BootFiles> {
  const table = JSON.parse((await run(['sfdisk', '-J', sdcard])).stdout).partitiontable;
  const off = table.partitions[0].start * 512;
  const img = `${sdcard}@@${off}`;
  const config = path.join(dir, 'config.txt');
  const cmdline = path.join(dir, 'cmdline.txt');
  await run(['mcopy', '-n', '-i', img, '::config.txt', config]);
  await run(['mcopy', '-n', '-i', img, '::cmdline.txt', cmdline]);
  const cfg = readFileSync(config, 'utf8');
  const kernelName = /^kernel=(\S+)/m.exec(cfg)?.[1] ?? 'kernel8.img';
  let initrdName = /^initramfs\s+(\S+)/m.exec(cfg)?.[1];
  if (!initrdName && /^auto_initramfs=1/m.test(cfg)) initrdName = kernelName.replace(/^kernel/, 'initramfs').replace(/\.img$/, '');
  if (!initrdName) throw new Error('config.txt loads no initramfs');
  const kernel = path.join(dir, 'kernel');
  const initrd = path.join(dir, 'initrd');
  await run(['mcopy', '-n', '-i', img, `::${kernelName}`, kernel]);
  await run(['mcopy', '-n', '-i', img, `::${initrdName}`, initrd]);
  return { kernel, initrd, cmdline: readFileSync(cmdline, 'utf8'), config: cfg };
}

export class Boot {
  out = '';
  private input?: NodeJS.WritableStream;
  private exited = false;
  exitCode: number | null = null;
  readonly started = Date.now();
  constructor(
    private readonly child: ChildProcess,
    private readonly tmp: string,
    readonly logFile: string,
  ) {
    child.on('exit', (c) => {
      this.exited = true;
      this.exitCode = c;
    });
  }

  attach(output: NodeJS.ReadableStream, input: NodeJS.WritableStream): void {
    this.input = input;
    input.on('error', () => {});
    let lineStart = true;
    output.on('data', (b: Buffer) => {
      const s = b.toString('latin1');
      this.out += s;
      // the log gets host-side elapsed seconds at each line start (this.out stays the raw console)
      let t = '';
      for (const part of s.split(/(?<=\n)/)) {
        if (lineStart) t += `[+${this.seconds.toFixed(1).padStart(6)}s] `;
        t += part;
        lineStart = part.endsWith('\n');
      }
      appendFileSync(this.logFile, t);
    });
  }

  get seconds(): number {
    return (Date.now() - this.started) / 1000;
  }

  /** Resolves with the match, or rejects on timeout / qemu exit / a fail pattern. */
  async expect(ok: RegExp, timeoutMs: number, fail?: RegExp): Promise<RegExpExecArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = ok.exec(this.out);
      if (m) {
        console.log(`  ${path.basename(this.logFile)}: +${this.seconds.toFixed(0)} s ${ok.source.slice(0, 60)}`);
        return m;
      }
      if (fail?.test(this.out)) throw new Error(`boot: saw ${fail} while waiting for ${ok} (log ${this.logFile})`);
      if (this.exited) throw new Error(`boot: qemu exited (${this.exitCode}) before ${ok} (log ${this.logFile})`);
      if (Date.now() > end) throw new Error(`boot: no ${ok} after ${timeoutMs / 1000} s (log ${this.logFile})`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  monitorSocket?: string;
  arch: 'amd64' | 'arm64' = 'amd64';

  /** One HMP command on the monitor socket; resolves with its output. */
  async monitor(cmd: string): Promise<string> {
    if (!this.monitorSocket) throw new Error('boot: started without a monitor (console: tty1)');
    // qemu creates the socket a moment after it starts
    const open = () => new Promise<ReturnType<typeof connect>>((resolve, reject) => {
      const c = connect(this.monitorSocket!);
      c.once('connect', () => resolve(c)).once('error', reject);
    });
    let sock: ReturnType<typeof connect> | undefined;
    for (const end = Date.now() + 30_000; !sock; ) {
      sock = await open().catch((e: Error) => {
        if (Date.now() > end || this.exited) throw new Error(`boot: monitor ${this.monitorSocket}: ${e.message}`);
        return undefined;
      });
      if (!sock) await new Promise((r) => setTimeout(r, 200));
    }
    let out = '';
    sock.on('data', (b) => (out += b.toString('latin1')));
    const prompts = () => out.split('(qemu)').length - 1;
    const wait = async (n: number) => {
      const end = Date.now() + 20_000;
      while (prompts() < n && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    };
    await wait(1);
    sock.write(`${cmd}\n`);
    await wait(2);
    sock.end();
    return out;
  }

  /** Types on the USB keyboard, key by key (monitor sendkey), then Enter. */
  async typeKeys(text: string): Promise<void> {
    for (const ch of text) {
      const key = /^[a-z0-9]$/.test(ch) ? ch : ch === '-' ? 'minus' : undefined;
      if (!key) throw new Error(`typeKeys: no key for ${JSON.stringify(ch)}`);
      await this.monitor(`sendkey ${key}`);
    }
    await this.monitor('sendkey ret');
  }

  /**
   * The VGA text memory behind tty1 (vgacon): character + attribute cells at 0xb8000, 80 a row. vgacon
   * scrolls by moving the display origin through the whole 32 KiB window (and copies the screen back to
   * its start when it reaches the end), so the window holds the visible screen plus earlier lines: what
   * a test looks for is in it once it has been shown.
   */
  async screen(): Promise<string> {
    if (this.arch === 'arm64') throw new Error('boot: an arm64 guest has no VGA text screen to read (tty1 runs on the dummy console); judge by the serial log');
    const f = path.join(this.tmp, 'screen.bin');
    const said = await this.monitor(`pmemsave 0xb8000 0x8000 "${f}"`);
    let b: Buffer;
    try {
      b = readFileSync(f);
    } catch {
      throw new Error(`boot: pmemsave wrote nothing: ${said}`);
    }
    const rows: string[] = [];
    for (let r = 0; r < Math.floor(b.length / 160); r++) {
      let line = '';
      for (let c = 0; c < 80; c++) line += String.fromCharCode(b[(r * 80 + c) * 2] || 32);
      rows.push(line.trimEnd());
    }
    return rows.join('\n');
  }

  /** Resolves once the screen matches, or rejects on timeout / qemu exit. */
  async expectScreen(ok: RegExp, timeoutMs: number): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const text = this.exited ? '' : await this.screen();
      if (ok.test(text)) {
        console.log(`  ${path.basename(this.logFile)}: +${this.seconds.toFixed(0)} s screen shows ${ok.source.slice(0, 60)}`);
        appendFileSync(this.logFile, `\n# screen at +${this.seconds.toFixed(0)} s:\n${text}\n`);
        return text;
      }
      if (this.exited) throw new Error(`boot: qemu exited (${this.exitCode}) before the screen showed ${ok} (log ${this.logFile})`);
      if (Date.now() > end) {
        appendFileSync(this.logFile, `\n# screen at +${this.seconds.toFixed(0)} s:\n${text}\n`);
        throw new Error(`boot: the screen did not show ${ok} after ${timeoutMs / 1000} s (log ${this.logFile})`);
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Types on the serial console. */
  type(text: string): void {
    this.input?.write(text);
  }

  async waitExit(timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!this.exited && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
    return this.exited;
  }

  async stop(): Promise<void> {
    if (!this.exited) {
      this.child.kill('SIGTERM');
      await this.waitExit(10_000);
      if (!this.exited) this.child.kill('SIGKILL');
      await this.waitExit(5_000);
    }
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** The Pi 3B's DTB from the card's FAT (the firmware would pick it by board revision). */
async function raspiDtb(sdcard: string, dir: string): Promise<string> {
  const table = JSON.parse((await run(['sfdisk', '-J', sdcard])).stdout).partitiontable;
  const img = `${sdcard}@@${table.partitions[0].start * 512}`;
  const names = (await run(['mdir', '-b', '-i', img, '::'])).stdout.split('\n').map((l) => l.trim().replace(/^::\/?/, ''));
  const name = RASPI3B_DTBS.find((d) => names.includes(d));
  if (!name) throw new Error(`boot: the card's FAT has no Pi 3B device tree (${RASPI3B_DTBS.join(' or ')})`);
  const out = path.join(dir, name);
  await run(['mcopy', '-n', '-i', img, `::${name}`, out]);
  return out;
}

export async function boot(o: BootOptions): Promise<Boot> {
  mkdirSync(path.dirname(o.log), { recursive: true });
  const tmp = mkdtempSync(path.join(path.dirname(o.log), '.boot-'));
  const files = await bootFilesFromImage(o.sdcard, tmp);
  // 'serial': the lab console is ttyS0 (qemu's serial) only; 'tty1': the image's own console= args
  // (the lab base's cmdline names ttyS0 for the Pi's serial0, then tty1, as Pi OS does)
  const tty1 = o.console === 'tty1';
  const arm64 = o.arch === 'arm64';
  const serial = arm64 ? 'ttyAMA0' : 'ttyS0';
  // the Pi firmware resolves serial0 to the board's UART; on virt that is the PL011, ttyAMA0
  const own = arm64 ? files.cmdline.trim().replace(/(^| )console=serial0(,\S*)?/g, ` console=${serial},115200`) : files.cmdline.trim();
  const base = tty1 ? own : `${files.cmdline.trim().replace(/(^| )console=\S+/g, '')} console=${serial},115200`;
  const cmdline = `${base} ${o.extraCmdline ?? ''}`.replace(/\s+/g, ' ').trim();
  let sd = o.sdcard;
  let sdFormat = 'raw';
  const raspi = arm64 && o.machine === 'raspi3b';
  const overlay = path.join(tmp, 'sd.qcow2');
  const args = ['create', '-q', '-f', 'qcow2', '-b', path.resolve(o.sdcard), '-F', 'raw', overlay];
  if (raspi) args.push(String(2 ** Math.ceil(Math.log2(Math.max(statSync(o.sdcard).size, (o.sdSizeMiB ?? 0) * 1048576)))));
  else if (o.sdSizeMiB) args.push(`${o.sdSizeMiB}M`);
  await run(['qemu-img', ...args]);
  sd = overlay;
  sdFormat = 'qcow2';
  const machine = raspi
    ? ['qemu-system-aarch64', '-M', 'raspi3b', '-dtb', await raspiDtb(o.sdcard, tmp)]
    : [...(arm64 ? ['qemu-system-aarch64', '-accel', 'tcg', '-M', 'virt', '-cpu', 'cortex-a72'] : ['qemu-system-x86_64', '-accel', 'tcg', '-M', 'q35', '-cpu', 'max']), '-smp', String(o.smp ?? (Number(process.env.PULLVAULT_QEMU_SMP) || 1)), '-m', String(o.memMiB ?? 1024)];
  // the Pi 3B has its own USB (dwc2) and SD controller; the others get xHCI and a virtio disk
  const usbBus = raspi ? [] : ['bus=xhci.0'];
  const q = [
    ...machine,
    '-kernel', files.kernel, '-initrd', files.initrd, '-append', cmdline,
    ...(raspi ? ['-drive', `if=sd,format=${sdFormat},file=${sd}`] : ['-drive', `if=none,id=sd,format=${sdFormat},file=${sd}`, '-device', 'virtio-blk-pci,drive=sd', '-device', 'qemu-xhci,id=xhci']),
    '-display', 'none', '-no-reboot',
    '-serial', 'stdio',
  ];
  const monitorSocket = path.join(tmp, 'monitor.sock');
  q.push('-monitor', tty1 ? `unix:${monitorSocket},server=on,wait=off` : 'none');
  // tty1: a powered-off guest stays (-no-shutdown) so its last screen can still be read; stop() kills it
  if (tty1) q.push('-device', ['usb-kbd', ...usbBus].join(','), '-no-shutdown');
  const fwd = [...(o.sshPort ? [`hostfwd=tcp:127.0.0.1:${o.sshPort}-:22`] : []), ...(o.forwards ?? [])];
  if (raspi && (fwd.length || o.network)) throw new Error('boot: the raspi3b machine has no network here');
  if (!raspi) q.push('-nic', fwd.length || o.network ? ['user', 'model=virtio-net-pci', 'restrict=on', ...fwd].join(',') : 'none');
  if (o.stick) q.push('-drive', `if=none,id=stick,format=raw,file=${o.stick},readonly=on`, '-device', ['usb-storage', ...usbBus, 'drive=stick'].join(','));
  for (const [i, d] of (o.disks ?? []).entries()) q.push('-drive', `if=none,id=d${i},format=raw,file=${d.file}`, '-device', `virtio-blk-pci,drive=d${i},serial=${d.serial}`);
  mkdirSync(path.dirname(o.log), { recursive: true });
  writeFileSync(o.log, `# ${q.join(' ')}\n`);
  // serial on qemu's stdin/stdout: we read the console and type into it
  console.log(`  ${path.basename(o.log)}: qemu started`);
  // privateNet: unshare execs sh in a new network namespace, which execs qemu (same PID throughout)
  const argv = o.privateNet ? ['unshare', '--net', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'netns-sh', ...q] : q;
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const b = new Boot(child, tmp, o.log);
  if (tty1) b.monitorSocket = monitorSocket;
  if (arm64) b.arch = 'arm64';
  child.stderr?.on('data', (x: Buffer) => appendFileSync(o.log, `\n# qemu stderr: ${x.toString()}`));
  b.attach(child.stdout!, child.stdin!);
  return b;
}
