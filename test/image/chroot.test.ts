// A foreign-arch chroot (arm64 on this amd64 machine) runs its binaries under qemu-user-static in a
// binfmt_misc instance of its own: the machine's registrations stay exactly as they were, and uids
// inside map to the same uids outside (files chowned in the root keep their owners). The root is a
// real Debian arm64 busybox-static, extracted by mmdebstrap (no code of it runs outside the chroot).
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chroot, hostArch } from '../../provision/image/chroot.ts';
import { run } from '../../lib/proc/index.ts';

const isRoot = process.getuid?.() === 0;
const BINFMT = '/proc/sys/fs/binfmt_misc';
const hostBinfmt = () => (existsSync(`${BINFMT}/register`) ? readdirSync(BINFMT).sort() : 'not mounted');

describe.skipIf(!isRoot || hostArch() !== 'amd64' || !existsSync('/usr/lib/binfmt.d/qemu-aarch64.conf'))('chroot into an arm64 root', () => {
  let dir: string;
  let root: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join('/var/tmp', 'pv-chroot-'));
    root = path.join(dir, 'root');
    await run(['mmdebstrap', '--quiet', '--variant=extract', '--include=busybox-static', '--architectures=arm64', '--components=main', 'bookworm', root, 'deb http://deb.debian.org/debian bookworm main']);
    for (const d of ['dev', 'proc', 'sys', 'run', 'tmp']) await run(['mkdir', '-p', path.join(root, d)]);
  }, 300_000);
  afterAll(() => dir && rmSync(dir, { recursive: true, force: true }));

  it('runs arm64 binaries, keeps uids, and leaves the machine\'s binfmt registrations alone', async () => {
    const before = hostBinfmt();
    const r = await chroot(root, ['/bin/busybox', 'sh', '-c', 'busybox uname -m; busybox touch /owned; busybox chown 1234:2345 /owned; busybox id -u'], { arch: 'arm64' });
    expect(r.stdout.split('\n').slice(0, 2)).toEqual(['aarch64', '0']);
    expect(statSync(path.join(root, 'owned'))).toMatchObject({ uid: 1234, gid: 2345 });
    expect(hostBinfmt()).toEqual(before);
  }, 120_000);
});
