// Runs a command inside the unpacked root: a private mount namespace with the API filesystems, then
// chroot. All mounts vanish with the namespace, even if we are killed.
//
// A foreign-arch root (arm64 on an amd64 admin machine) runs under qemu-user-static, which needs a
// binfmt_misc registration. Registering it on the machine would change the machine for everyone, so
// the chroot gets its own: a user namespace whose uids and gids map to themselves (the map is written
// from outside, by root, before the script goes on) owning a fresh binfmt_misc instance (Linux ≥ 6.7
// keeps one per user namespace), into which qemu-user-static's own registration
// (/usr/lib/binfmt.d/qemu-<arch>.conf, flag F: the interpreter is opened at registration, so it need
// not exist inside the root) is written. The machine's registrations are neither read nor changed.
import { existsSync, readlinkSync, writeFileSync } from 'node:fs';
import { run, type RunOptions, type RunResult } from '../../lib/proc/index.ts';

// Constant scripts (never built from values). In the foreign case /sys is bound, not mounted anew: a
// user namespace may not mount sysfs without its own network namespace, and the chroot needs the
// network (apt).
const CHROOT_SH = 'r=$1; shift; mount --rbind /dev "$r/dev"; mount -t proc proc "$r/proc"; mount -t sysfs sysfs "$r/sys"; mount -t tmpfs tmpfs "$r/run"; mount -t tmpfs tmpfs "$r/tmp"; exec chroot "$r" "$@"';
const FOREIGN_CHROOT_SH = 'r=$1; shift; mount --rbind /dev "$r/dev"; mount -t proc proc "$r/proc"; mount --rbind /sys "$r/sys"; mount -t tmpfs tmpfs "$r/run"; mount -t tmpfs tmpfs "$r/tmp"; exec chroot "$r" "$@"';
// waits for the identity map, mounts the namespace's own binfmt_misc, registers qemu-user there, runs "$@"
const FOREIGN_SH =
  'n=0; until [ -n "$(cat /proc/self/uid_map)" ] && [ -n "$(cat /proc/self/gid_map)" ]; do n=$((n+1)); [ $n -lt 200 ] || { echo "no uid map" >&2; exit 1; }; sleep 0.05; done; ' +
  'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; grep -v "^#" "$1" > /proc/sys/fs/binfmt_misc/register; shift; exec "$@"';

const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C.UTF-8', HOME: '/root', TERM: 'dumb' };

export type Arch = 'arm64' | 'amd64';

export interface ChrootOptions {
  input?: string;
  liveStderr?: boolean;
  okCodes?: number[];
  /** the root's architecture; a foreign one runs under qemu-user in its own binfmt_misc */
  arch?: Arch;
}

export function hostArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;
}

/** qemu-user-static's binfmt registration for a foreign arch, or an error saying what to install. */
function binfmtConf(arch: Arch): string {
  const conf = `/usr/lib/binfmt.d/${arch === 'arm64' ? 'qemu-aarch64' : 'qemu-x86_64'}.conf`;
  if (!existsSync(conf)) throw new Error(`${conf} not found: install qemu-user-static to configure an ${arch} root on this ${hostArch()} machine`);
  return conf;
}

export function chroot(root: string, argv: string[], opts: ChrootOptions = {}): Promise<RunResult> {
  const base = { env: ENV, input: opts.input, liveStderr: opts.liveStderr, okCodes: opts.okCodes };
  if (!opts.arch || opts.arch === hostArch()) return run(['unshare', '--mount', '--propagation', 'private', '--fork', '--', 'sh', '-ec', CHROOT_SH, 'chroot-sh', root, ...argv], base);
  return withForeignArch(opts.arch, ['sh', '-ec', FOREIGN_CHROOT_SH, 'chroot-sh', root, ...argv], base);
}

/**
 * Runs argv (a program of this machine, e.g. mmdebstrap) where binaries of `arch` execute under
 * qemu-user: a user namespace (identity uid/gid map) with its own mount and pid namespaces and its
 * own binfmt_misc instance holding qemu-user-static's registration. Nothing on the machine changes.
 */
export function withForeignArch(arch: Arch, argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const conf = binfmtConf(arch);
  return run(['unshare', '--user', '--mount', '--propagation', 'private', '--pid', '--fork', '--', 'sh', '-ec', FOREIGN_SH, 'foreign-sh', conf, ...argv], { ...opts, onSpawn: (c) => c.pid !== undefined && mapIdentity(c.pid) });
}

/** Once `pid` (unshare) is in its new user namespace, map every uid and gid to itself. */
function mapIdentity(pid: number): void {
  const mine = readlinkSync('/proc/self/ns/user');
  const end = Date.now() + 10_000;
  const tick = (): void => {
    try {
      if (readlinkSync(`/proc/${pid}/ns/user`) !== mine) {
        writeFileSync(`/proc/${pid}/uid_map`, '0 0 4294967295\n');
        writeFileSync(`/proc/${pid}/gid_map`, '0 0 4294967295\n');
        return;
      }
    } catch {
      return; // gone: run() reports its exit
    }
    if (Date.now() < end) setTimeout(tick, 10);
  };
  tick();
}
