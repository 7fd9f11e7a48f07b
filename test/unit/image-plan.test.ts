// provision-pi's pure part: LUKS parameters per model, boot-partition edits, rendered root files
// (golden files under test/unit/golden/image-*, reviewed by eye once), the build step list.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Inventory, PiSpec } from '../../contract/inventory-schema.ts';
import { loadTemplates } from '../../provision/image/build.ts';
import { phaseRunner } from '../../provision/image/phases.ts';
import {
  firmwareFlavours, initramfsModules, initramfsModulesMode, knownHostsLines, luksEncryptArgs, luksJob, luksPlan, planSteps, rootFiles, rootPackages,
  transformCmdline, transformConfigTxt, transformFstab, PI_PATHS,
} from '../../provision/image/plan.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const templates = loadTemplates();
const inventory = (): Inventory => {
  const inv = JSON.parse(readFileSync(path.join(REPO, 'inventory.json'), 'utf8')) as Inventory;
  return inv;
};
const pi = (over: Partial<PiSpec> = {}): PiSpec => ({ ...inventory().pi, ...over });
const UUID = '0b7f6a3e-2c1d-4e5f-8a9b-0c1d2e3f4a5b';
const facts = {
  rootUuid: UUID,
  sshPrivateKey: '-----BEGIN TEST SSH KEY-----\nSECRET\n-----END TEST SSH KEY-----\n',
  sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake pullvault@pi01\n',
  dataDiskKey: Buffer.alloc(64, 7),
  modulesMode: 'list' as const,
  arch: 'arm64' as const,
};

describe('LUKS parameters by model', () => {
  it.each([
    ['pi3', 'xchacha12,aes-adiantum-plain64', 256],
    ['pi4', 'xchacha12,aes-adiantum-plain64', 256],
    ['pi400', 'xchacha12,aes-adiantum-plain64', 256],
    ['cm4', 'xchacha12,aes-adiantum-plain64', 256],
    ['pi5', 'aes-xts-plain64', 512],
    ['pi500', 'aes-xts-plain64', 512],
    ['cm5', 'aes-xts-plain64', 512],
  ] as const)('%s → %s (%i-bit), argon2id 256 MiB × 4 by default', (model, cipher, bits) => {
    const l = luksPlan(pi({ model }));
    expect(l).toMatchObject({ cipher, keySizeBits: bits, pbkdf: 'argon2id', pbkdfMemoryKiB: 262144, pbkdfIterations: 4 });
  });

  it('zero2w has no measured default: the inventory must name a cipher', () => {
    expect(() => luksPlan(pi({ model: 'zero2w' }))).toThrow(/set pi\.luks\.cipher/);
    expect(luksPlan(pi({ model: 'zero2w', luks: { cipher: 'xchacha12,aes-adiantum-plain64' } })).keySizeBits).toBe(256);
  });

  it('reencrypt argv: keyslot 0 from the keyfile, the chosen UUID, 32 MiB header room, fixed argon2 cost; no secret in argv', () => {
    const l = luksPlan(pi({ model: 'pi5', luks: { pbkdfMemoryKiB: 65536, pbkdfIterations: 6 } }));
    const argv = luksEncryptArgs(l, UUID, '/s/usbkey.key', '/w/root.luks');
    expect(argv.slice(0, 3)).toEqual(['cryptsetup', 'reencrypt', '--encrypt']);
    const opt = (k: string) => argv[argv.indexOf(k) + 1];
    expect(opt('--cipher')).toBe('aes-xts-plain64');
    expect(opt('--key-size')).toBe('512');
    expect(opt('--uuid')).toBe(UUID);
    expect(opt('--reduce-device-size')).toBe('32M');
    expect(opt('--pbkdf')).toBe('argon2id');
    expect(opt('--pbkdf-memory')).toBe('65536');
    expect(opt('--pbkdf-force-iterations')).toBe('6');
    expect(opt('--key-slot')).toBe('0');
    expect(opt('--key-file')).toBe('/s/usbkey.key');
    const files = { keyFile: '/s/usbkey.key', recoveryFile: '/s/recovery-passphrase.txt', device: '/w/root.luks' };
    const job = luksJob(l, UUID, files);
    expect(job[0]).toEqual(argv);
    expect(job).toHaveLength(2);
    const add = job[1];
    expect(add.slice(0, 2)).toEqual(['cryptsetup', 'luksAddKey']);
    expect(add[add.indexOf('--new-key-slot') + 1]).toBe('1');
    expect(add[add.indexOf('--key-file') + 1]).toBe('/s/usbkey.key');
    expect(add.slice(-2)).toEqual(['/w/root.luks', '/s/recovery-passphrase.txt']);
    // tang: keyslot 2 from its passphrase, opened with the keyfile, then the token that names it
    const withTang = luksJob(l, UUID, { ...files, tang: { keyFile: '/w/tang.key', tokenFile: '/w/tang-token.json' } });
    expect(withTang.slice(0, 2)).toEqual(job);
    expect(withTang[2][withTang[2].indexOf('--new-key-slot') + 1]).toBe('2');
    expect(withTang[2].slice(-2)).toEqual(['/w/root.luks', '/w/tang.key']);
    expect(withTang[3]).toEqual(['cryptsetup', 'token', 'import', '--json-file', '/w/tang-token.json', '/w/root.luks']);
  });

  it('initramfs modules: dm-crypt, the cipher, USB storage, the stick filesystem and codepages', () => {
    const adiantum = initramfsModules(pi({ model: 'pi4' }));
    expect(adiantum).toEqual(expect.arrayContaining(['dm_crypt', 'adiantum', 'nhpoly1305', 'chacha_generic', 'usb_storage', 'uas', 'vfat', 'nls_cp437', 'nls_iso8859_1', 'ext4']));
    const xts = initramfsModules(pi({ model: 'pi5' }));
    expect(xts).toEqual(expect.arrayContaining(['dm_crypt', 'xts', 'aes_ce_blk', 'usb_storage']));
    expect(xts).not.toContain('adiantum');
    expect(initramfsModules(pi({ usbKey: { label: 'K', filesystem: 'ext4' } }))).not.toContain('vfat');
    // the wired NICs only when the initramfs brings the network up (tang, dropbear)
    expect(xts).not.toContain('bcmgenet');
    const THP = 'l3fZGUCmnvKQF_OA6VZF9jf8z2s1BkTXxyT0nb3Ssls';
    expect(initramfsModules(pi({ model: 'pi4', unlock: { tang: [{ url: 'http://10.0.0.2', thumbprint: THP }] } }))).toEqual(expect.arrayContaining(['bcmgenet', 'macb', 'lan78xx', 'smsc95xx', 'virtio_net']));
    expect(initramfsModules(pi({ model: 'pi5', unlock: { ssh: { authorizedKeys: ['ssh-ed25519 AAAA'], port: 2222 } } }))).toContain('macb');
    expect(initramfsModulesMode('arm64', 'amd64')).toBe('list');
    expect(initramfsModulesMode('amd64', 'amd64')).toBe('most');
  });
});

describe('boot partition edits', () => {
  const PIOS = 'console=serial0,115200 console=tty1 root=PARTUUID=9a6c1b4a-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot splash plymouth.ignore-serial-consoles\n';

  it('cmdline.txt: one line, root on the mapper, no splash, no first-boot init=', () => {
    const c = transformCmdline(PIOS);
    expect(c).toBe('console=serial0,115200 console=tty1 root=/dev/mapper/cryptroot rootfstype=ext4 fsck.repair=yes rootwait quiet');
    expect(transformCmdline(c)).toBe(c); // idempotent
    expect(transformCmdline('console=tty1\nroot=/dev/mmcblk0p2\n')).toBe('console=tty1 root=/dev/mapper/cryptroot rootfstype=ext4 rootwait');
  });

  it('config.txt: auto_initramfs=1 kept when present, added before the first [section] when not', () => {
    const pios = '# comment\ndtparam=audio=on\nauto_initramfs=1\narm_64bit=1\n[cm4]\notg_mode=1\n[all]\n';
    expect(transformConfigTxt(pios)).toBe(pios);
    const without = '# comment\ndtparam=audio=on\n[pi4]\nauto_initramfs=1\n[all]\n';
    const out = transformConfigTxt(without);
    expect(out.split('\n').slice(0, 4)).toEqual(['# comment', 'dtparam=audio=on', '# pullvault: the encrypted root needs the initramfs', 'auto_initramfs=1']);
    expect(transformConfigTxt(out)).toBe(out);
    expect(transformConfigTxt('kernel=vmlinuz\ninitramfs initrd.img followkernel\n')).toBe('kernel=vmlinuz\ninitramfs initrd.img followkernel\n');
  });

  it('firmware flavours: Pi OS kernels map to the files auto_initramfs loads', () => {
    expect(firmwareFlavours(['6.6.51+rpt-rpi-v8', '6.6.51+rpt-rpi-2712', '6.1.0-56-amd64'])).toEqual([
      { version: '6.6.51+rpt-rpi-v8', kernel: 'kernel8.img', initramfs: 'initramfs8' },
      { version: '6.6.51+rpt-rpi-2712', kernel: 'kernel_2712.img', initramfs: 'initramfs_2712' },
      { version: '6.1.0-56-amd64', kernel: 'kernel8.img', initramfs: 'initramfs8' },
    ]);
  });
});

describe('rendered root files (golden)', () => {
  const files = rootFiles(inventory(), facts, templates);
  const byPath = new Map(files.map((f) => [f.path, f]));
  const text = (p: string) => String(byPath.get(p)?.content);

  it.each([
    ['/etc/crypttab', 'image-crypttab.txt'],
    [PI_PATHS.keyscript, 'image-keyscript.sh'],
    [PI_PATHS.initramfsHook, 'image-initramfs-hook.sh'],
    [PI_PATHS.initramfsConf, 'image-initramfs-conf.txt'],
    [PI_PATHS.initramfsModules, 'image-initramfs-modules.txt'],
    [`/etc/kernel/postinst.d/${PI_PATHS.guardName}`, 'image-kernel-guard.sh'],
    [PI_PATHS.growScript, 'image-grow-root.sh'],
    [PI_PATHS.growService, 'image-grow-root.service'],
    [PI_PATHS.knownHosts, 'image-known_hosts.txt'],
    [PI_PATHS.rpiUpdateStub, 'image-rpi-update.sh'],
  ])('%s', async (p, golden) => {
    await expect(text(p)).toMatchFileSnapshot(`golden/${golden}`);
  });

  it('fstab: Pi OS lines kept, root and data disk on their mappers, data disk nofail', async () => {
    const pios = 'proc            /proc           proc    defaults          0       0\nPARTUUID=9a6c1b4a-01  /boot/firmware  vfat    defaults          0       2\nPARTUUID=9a6c1b4a-02  /               ext4    defaults,noatime  0       1\n';
    const out = transformFstab(pios, inventory().pi, templates);
    await expect(out).toMatchFileSnapshot('golden/image-fstab.txt');
    expect(out).not.toMatch(/PARTUUID=9a6c1b4a-02/);
    expect(transformFstab(out, inventory().pi, templates)).toBe(out);
  });

  it('crypttab: root with the keyscript + initramfs + tries=0, data disk nofail with its key in cryptsetup-keys.d', () => {
    const ct = text('/etc/crypttab');
    expect(ct).toMatch(new RegExp(`^cryptroot UUID=${UUID} PVKEY luks,discard,initramfs,keyscript=/usr/local/lib/pullvault/unlock-keyscript,tries=0$`, 'm'));
    expect(ct).toMatch(/^pullvault-data \/dev\/disk\/by-id\/usb-WD_Elements_25A3_57584B3141383746-0:0 \/etc\/cryptsetup-keys\.d\/pullvault-data\.key luks,nofail/m);
  });

  it('secrets: marked sensitive, private modes; known_hosts pins every server (port 22 bare, others [host]:port)', () => {
    expect(byPath.get('/etc/cryptsetup-keys.d/pullvault-data.key')).toMatchObject({ mode: 0o400, sensitive: true });
    expect(byPath.get(PI_PATHS.sshKey)).toMatchObject({ mode: 0o600, sensitive: true });
    expect(byPath.get(`${PI_PATHS.sshKey}.pub`)?.sensitive).toBeFalsy();
    expect(knownHostsLines(inventory())).toEqual([
      'web1.example.net ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJcNr5V3zp0OnhjbNC1892KaG24ttX16frQCfNpG5Gjn',
      '[db1.example.net]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBsQm3Ucr8JhhPbgkdXSZWPPNveKtDJtbUpY7KJVPP0R',
    ]);
    expect(files.some((f) => f.path === PI_PATHS.s3Credentials)).toBe(false);
    const withS3 = rootFiles(inventory(), { ...facts, s3Credentials: '{"AccessKeyId":"AKIA"}' }, templates);
    expect(withS3.find((f) => f.path === PI_PATHS.s3Credentials)).toMatchObject({ mode: 0o600, sensitive: true });
  });

  it('dropbear files only when pi.unlock.ssh is set: keys forced to cryptroot-unlock, the port from the inventory', () => {
    expect(files.some((f) => f.path.includes('dropbear'))).toBe(false);
    const inv = inventory();
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMnrFkJQ2xUcELSoX2wVt0gzJWvS6t+kUOOqU+rcFQ1R';
    inv.pi.unlock = { ssh: { authorizedKeys: [key], port: 2022 } };
    const got = rootFiles(inv, facts, templates);
    const ak = got.find((f) => f.path === '/etc/dropbear/initramfs/authorized_keys');
    expect(ak?.mode).toBe(0o600);
    expect(ak?.content).toBe(`command="cryptroot-unlock",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty ${key}\n`);
    expect(got.find((f) => f.path === '/etc/dropbear/initramfs/dropbear.conf')?.content).toMatch(/^DROPBEAR_OPTIONS="-p 2022 -s -j -k -c cryptroot-unlock"$/m);
    expect(rootPackages(inv.pi)).toContain('dropbear-initramfs');
    expect(rootPackages(inv.pi)).not.toContain('clevis');
  });

  it('tang: clevis packages, the keyscript tries clevis luks pass on keyslot 2, the hook copies it', () => {
    expect(text(PI_PATHS.keyscript)).not.toMatch(/clevis/);
    expect(rootPackages(inventory().pi)).not.toContain('clevis');
    const inv = inventory();
    inv.pi.unlock = { tang: [{ url: 'http://192.168.1.10', thumbprint: 'l3fZGUCmnvKQF_OA6VZF9jf8z2s1BkTXxyT0nb3Ssls' }] };
    const got = rootFiles(inv, facts, templates);
    const ks = String(got.find((f) => f.path === PI_PATHS.keyscript)?.content);
    expect(ks).toMatch(/clevis luks pass -d "\$CRYPTTAB_SOURCE" -s "\$TANG_SLOT"/);
    expect(ks).toMatch(/^TANG_SLOT=2$/m);
    expect(ks).toMatch(/try_stick && exit 0\n\s+try_tang && exit 0/);
    expect(String(got.find((f) => f.path === PI_PATHS.initramfsHook)?.content)).toMatch(/^copy_exec \/usr\/bin\/clevis-luks-pass$/m);
    expect(rootPackages(inv.pi)).toEqual(expect.arrayContaining(['clevis', 'clevis-luks', 'clevis-initramfs']));
  });

  it('the keyscript races the stick against askpass and never offers a failed stick twice', () => {
    const ks = text(PI_PATHS.keyscript);
    expect(ks).toMatch(/"\$ASKPASS" "\$PROMPT" < \/dev\/console > "\$RUN\/pass" &/);
    expect(ks).toContain('/dev/disk/by-label/$LABEL');
    expect(ks).toMatch(/grep -qx "\$sum" "\$RUN\/tried"/);
    expect(ks).not.toMatch(/\{\{|\}\}/);
  });
});

describe('build steps', () => {
  const base = { baseImage: '/img/raspios.img.xz', stateDir: '/s', rotate: false, haveState: false, haveS3Credentials: false, hostArch: 'amd64' };
  it('lists every phase, the runtime installed into the root among them', () => {
    const steps = planSteps(inventory(), base);
    expect(steps.map((s) => s.id)).toEqual(['verify-base', 'check-base', 'preflight', 'secrets', 'extract', 'configure', 'packages', 'runtime', 'access', 'initramfs', 'boot', 'root', 'assemble', 'usbkey']);
    expect(steps.find((s) => s.id === 'runtime')?.title).toMatch(/installRuntimeInto/);
    expect(steps.find((s) => s.id === 'configure')?.detail).toMatch(/qemu-user \(arm64\)/);
    expect(steps.find((s) => s.id === 'initramfs')?.title).toMatch(/MODULES=list/);
  });
  it('reuse vs rotate, S3 credentials', () => {
    expect(planSteps(inventory(), { ...base, haveState: true }).find((s) => s.id === 'secrets')?.title).toMatch(/^reuse/);
    expect(planSteps(inventory(), { ...base, haveState: true, rotate: true }).find((s) => s.id === 'secrets')?.title).toMatch(/^generate/);
    expect(planSteps(inventory(), { ...base, haveS3Credentials: true }).find((s) => s.id === 'configure')?.title).toMatch(/writer-credentials.json \(0600\)/);
  });
});

describe('the plan is what the build runs', () => {
  const base = { baseImage: '/img/raspios.img.xz', stateDir: '/s', rotate: false, haveState: false, haveS3Credentials: false, hostArch: 'amd64' };
  const source = (f: string) => readFileSync(path.join(REPO, f), 'utf8');

  it("provision-pi and buildImage run exactly the plan's phases, in its order", () => {
    // every phase the sources can run: pi.unlock's tang and ssh steps are in the plan only when configured
    const inv = inventory();
    inv.pi.unlock = { tang: [{ url: 'http://10.0.0.2', thumbprint: 'l3fZGUCmnvKQF_OA6VZF9jf8z2s1BkTXxyT0nb3Ssls' }], ssh: { authorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMnrFkJQ2xUcELSoX2wVt0gzJWvS6t+kUOOqU+rcFQ1R'] } };
    const ids = planSteps(inv, base).map((s) => s.id);
    const called = [...`${source('provision/pi.ts')}\n${source('provision/image/build.ts')}`.matchAll(/\bphase\('([a-z0-9-]+)'/g)].map((m) => m[1]);
    expect(called).toEqual(ids);
  });

  it('a phase the plan does not list, or out of its order, stops the build; a skipped one fails it at the end', async () => {
    const plan = planSteps(inventory(), base);
    const lines: string[] = [];
    const r = phaseRunner(plan, (l) => lines.push(l), () => 0);
    await r.phase('verify-base', async () => 1);
    expect(lines).toEqual(['verify-base: verify the base image sha256 …', 'verify-base: done in 0.0 s']);
    await expect(r.phase('s3-credentials', async () => 1)).rejects.toThrow(/not in the plan/);
    await r.phase('extract', async () => 1);
    await expect(r.phase('secrets', async () => 1)).rejects.toThrow(/runs after extract, but the plan has it before/);
    expect(() => r.finish()).toThrow(/skipped planned phases check-base, preflight, secrets, configure/);
  });
});
