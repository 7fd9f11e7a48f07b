// What the full systemd boots share (amd64 pi-image.test.ts, arm64-cards.ts): the LUKS data disk the
// card must unlock, and dialling the guest's sshd the way install-runtime does, with the pinned key.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { run } from '../../lib/proc/index.ts';
import { SshExecutor } from '../../provision/exec/ssh.ts';
import type { Boot } from './qemu.ts';

/**
 * An ext4 holding pilab-data-marker (its token), encrypted in userspace (cryptsetup reencrypt on a
 * file: no device mapper on this machine) with the key provision-pi put on the card's root.
 */
export async function makeDataDisk(dir: string, keyFile: string, ext4MiB = 64): Promise<{ file: string; token: string }> {
  const file = path.join(dir, 'data.img');
  const seed = mkdtempSync(path.join(dir, 'data-seed-'));
  const token = randomBytes(16).toString('hex');
  writeFileSync(path.join(seed, 'pilab-data-marker'), token + '\n');
  rmSync(file, { force: true });
  await run(['truncate', '-s', `${ext4MiB + 32}M`, file]);
  await run(['mkfs.ext4', '-q', '-L', 'pvdata', '-d', seed, file, `${ext4MiB}M`]);
  rmSync(seed, { recursive: true, force: true });
  // the temporary header file goes to the working folder
  await run(['cryptsetup', 'reencrypt', '--encrypt', '--type', 'luks2', '--batch-mode', '--reduce-device-size', '32M', '--pbkdf', 'argon2id', '--pbkdf-memory', '65536', '--pbkdf-force-iterations', '4', '--key-file', keyFile, file], { cwd: dir });
  return { file, token };
}

/** Retries until sshd accepts (every 5 s, up to timeoutMs); fails at once on a kernel panic. */
export async function connectWhenUp(b: Boot, target: Parameters<typeof SshExecutor.connect>[0], timeoutMs: number): Promise<SshExecutor> {
  const end = Date.now() + timeoutMs;
  for (let tries = 1; ; tries++) {
    const exec = await SshExecutor.connect(target).catch((e: Error) => {
      if (Date.now() > end || b.out.includes('Kernel panic')) throw new Error(`sshd not reachable after ${tries} tries: ${e.message} (log ${b.logFile})`);
      return undefined;
    });
    if (exec) return exec;
    await new Promise((r) => setTimeout(r, 5_000));
  }
}

/** A TCP port free on 127.0.0.1 now (the full boot forwards it to the guest's sshd). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * Kernel arguments for a full systemd boot in the lab: unit status on the console, systemd-networkd from
 * ip=dhcp standing in for Pi OS's NetworkManager, the report fixture started over SSH instead of at boot.
 * Devices get 10 minutes instead of systemd's 90 s: an emulated guest on a loaded machine can take longer
 * than that to see its own boot partition, and would drop to emergency mode for want of it.
 */
export const FULL_BOOT_CMDLINE = 'systemd.show_status=1 systemd.default_device_timeout_sec=600 ip=dhcp systemd.wants=systemd-network-generator.service systemd.wants=systemd-networkd.service systemd.mask=pilab-report.service';
