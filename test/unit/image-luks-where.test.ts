import { describe, expect, it } from 'vitest';
import { guestMemoryMiB, guestQemuArgs, guestResult, guestTimeoutMs, luksWhere, type LuksFacts } from '../../provision/image/luks-where.ts';

const ADIANTUM = 'xchacha12,aes-adiantum-plain64';
const facts = (o: Partial<LuksFacts>): LuksFacts => ({ cipher: ADIANTUM, hostCanEncrypt: false, imageArch: 'amd64', hostArch: 'amd64', kvm: false, ...o });

describe('luksWhere: cipher × this machine × qemu', () => {
  it('this machine whenever its cryptsetup can (qemu or not)', () => {
    expect(luksWhere(facts({ hostCanEncrypt: true }))).toEqual({ where: 'host' });
    expect(luksWhere(facts({ hostCanEncrypt: true, qemu: '/usr/bin/qemu-system-x86_64', kvm: true }))).toEqual({ where: 'host' });
    expect(luksWhere(facts({ cipher: 'aes-xts-plain64', hostCanEncrypt: true }))).toEqual({ where: 'host' });
  });
  it('the VM when this machine cannot and qemu for the image arch is there; KVM only for the same arch', () => {
    expect(luksWhere(facts({ qemu: '/q' }))).toEqual({ where: 'guest', qemu: '/q', accel: 'tcg' });
    expect(luksWhere(facts({ qemu: '/q', kvm: true }))).toEqual({ where: 'guest', qemu: '/q', accel: 'kvm' });
    expect(luksWhere(facts({ qemu: '/q', kvm: true, imageArch: 'arm64' }))).toEqual({ where: 'guest', qemu: '/q', accel: 'tcg' });
  });
  it('neither: adiantum names qemu, a kernel with adiantum, and aes-xts with the Pi 4 speed note', () => {
    const msg = (() => {
      try {
        luksWhere(facts({ imageArch: 'arm64', hostError: 'Required kernel crypto interface not available.\nEnsure you have algif_skcipher kernel module loaded.' }));
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    })();
    expect(msg).toMatch(/^this machine cannot encrypt the root with xchacha12,aes-adiantum-plain64 \(Ensure you have algif_skcipher kernel module loaded\.\), and qemu-system-aarch64 is not installed/);
    expect(msg).toContain('apt-get install qemu-system-arm');
    expect(msg).toContain('modprobe algif_skcipher adiantum');
    expect(msg).toMatch(/pi\.luks\.cipher to "aes-xts-plain64" .*slower/);
  });
  it('neither, with AES: no adiantum advice', () => {
    expect(() => luksWhere(facts({ cipher: 'aes-xts-plain64' }))).toThrow(/qemu-system-x86_64 is not installed/);
    expect(() => luksWhere(facts({ cipher: 'aes-xts-plain64' }))).not.toThrow(/adiantum/i);
  });
});

describe('the VM', () => {
  const files = { kernel: '/w/vmlinuz', initrd: '/w/initrd', device: '/w/root.luks', secretsDisk: '/w/secrets.ext4' };
  it('argv: no network, secrets disk read-only, nothing secret on the kernel command line', () => {
    const a = guestQemuArgs({ where: 'guest', qemu: '/usr/bin/qemu-system-x86_64', accel: 'tcg' }, 'amd64', files, 512);
    expect(a[0]).toBe('/usr/bin/qemu-system-x86_64');
    expect(a).toContain('-nodefaults');
    expect(a.slice(a.indexOf('-nic'), a.indexOf('-nic') + 2)).toEqual(['-nic', 'none']);
    expect(a[a.indexOf('-append') + 1]).toBe('console=ttyS0 panic=-1 loglevel=3');
    expect(a).toContain('if=none,id=secrets,format=raw,readonly=on,file=/w/secrets.ext4');
    // the root is the first disk (/dev/vda), the secrets the second
    expect(a.findIndex((x) => x.includes('id=root'))).toBeLessThan(a.findIndex((x) => x.includes('id=secrets')));
    const arm = guestQemuArgs({ where: 'guest', qemu: 'qemu-system-aarch64', accel: 'tcg' }, 'arm64', files, 512);
    expect(arm.slice(arm.indexOf('-M'), arm.indexOf('-M') + 2)).toEqual(['-M', 'virt']);
    expect(arm[arm.indexOf('-append') + 1]).toMatch(/^console=ttyAMA0 /);
  });
  it('memory covers the argon2id cost; the time limit grows with the device and is longer without KVM', () => {
    const l = { cipher: ADIANTUM, keySizeBits: 256, pbkdf: 'argon2id' as const, pbkdfMemoryKiB: 262144, pbkdfIterations: 4, pbkdfParallel: 4, sectorSize: 4096 };
    expect(guestMemoryMiB(l)).toBeGreaterThan(256 + 256);
    expect(guestTimeoutMs(2 ** 31, 'tcg')).toBeGreaterThan(guestTimeoutMs(2 ** 30, 'tcg'));
    expect(guestTimeoutMs(2 ** 30, 'tcg')).toBeGreaterThan(guestTimeoutMs(2 ** 30, 'kvm'));
  });
  it('result: the exit status from the end marker, none when the VM never got there', () => {
    expect(guestResult('boot…\nPULLVAULT-LUKS-GUEST-END rc=0\n')).toEqual({ rc: 0 });
    expect(guestResult('PULLVAULT-LUKS-GUEST-END rc=2')).toEqual({ rc: 2 });
    expect(guestResult('Kernel panic')).toBeUndefined();
  });
});
