// The SSH executor against a real OpenSSH server on 127.0.0.1. sshd runs in a private mount
// namespace (its own /run/sshd on a tmpfs), with config, host key and authorized key in a temp
// dir: nothing on the machine running the tests is changed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { SshExecutor, fingerprintOfPublicKey, CommandError } from '../../provision/exec/index.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.log('ssh executor suite needs root (it runs sshd in a private mount namespace); skipped');

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, ms = 5000): Promise<void> {
  const { connect } = await import('node:net');
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd did not listen on ${port}`);
}

describe.skipIf(!isRoot)('SSH executor against a real sshd', () => {
  let dir: string;
  let sshd: ChildProcess;
  let port: number;
  let hostKey: string;
  let clientKey: Buffer;
  let otherHostKey: string;

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/pv-sshd-');
    const keygen = (f: string) => execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', path.join(dir, f)]);
    keygen('host');
    keygen('other');
    keygen('client');
    hostKey = readFileSync(path.join(dir, 'host.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
    otherHostKey = readFileSync(path.join(dir, 'other.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
    clientKey = readFileSync(path.join(dir, 'client'));
    writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(path.join(dir, 'client.pub')));
    port = await freePort();
    writeFileSync(
      path.join(dir, 'sshd_config'),
      [`Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${dir}/host`, `AuthorizedKeysFile ${dir}/authorized_keys`, 'PasswordAuthentication no',
        'KbdInteractiveAuthentication no', 'UsePAM no', 'PermitRootLogin prohibit-password', 'StrictModes no', `PidFile ${dir}/sshd.pid`, 'LogLevel ERROR'].join('\n') + '\n',
    );
    sshd = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'unshare', '--mount', '--propagation', 'private', '--',
      'sh', '-c', 'mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 0755 /run/sshd && exec /usr/sbin/sshd -D -e -f "$1"', 'sh', path.join(dir, 'sshd_config')], { stdio: 'ignore' });
    await waitForPort(port);
  });

  afterAll(() => {
    sshd?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  const target = (pinned: string) => ({ name: 'testhost', host: '127.0.0.1', port, username: 'root', hostKey: pinned, privateKey: clientKey });

  it('accepts the pinned host key and runs commands', async () => {
    const ex = await SshExecutor.connect(target(hostKey), { requireRoot: true });
    try {
      expect((await ex.run(['id', '-u'])).stdout.trim()).toBe('0');
    } finally {
      await ex.close();
    }
  });

  it('refuses a different host key, showing both fingerprints', async () => {
    const err = await SshExecutor.connect(target(otherHostKey)).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toContain('host key mismatch');
    expect(msg).toContain(fingerprintOfPublicKey(otherHostKey));
    expect(msg).toContain(fingerprintOfPublicKey(hostKey));
  });

  it('passes arguments byte-identical, whatever they contain', async () => {
    const ex = await SshExecutor.connect(target(hostKey));
    try {
      const nasty = [`it's "quoted"`, 'spaces  and\ttabs', '$(touch /tmp/pwned-by-test)', '`id`', '; rm -rf /tmp/x', '-n', 'line1\nline2', '*', '~root', '\\backslash', 'ünïcødé', ''];
      for (const arg of nasty) {
        const r = await ex.run(['printf', '%s', arg]);
        expect(r.stdout).toBe(arg);
      }
      const argv = await ex.run(['sh', '-c', 'printf "%s\\0" "$@"', 'sh', ...nasty]);
      expect(argv.stdout.split('\0').slice(0, -1)).toEqual(nasty);
      const pwned = await ex.run(['test', '-e', '/tmp/pwned-by-test'], { okCodes: [0, 1] });
      expect(pwned.code).toBe(1);
    } finally {
      await ex.close();
    }
  });

  it('reports a failing command with host, command, exit code and stderr; passes stdin', async () => {
    const ex = await SshExecutor.connect(target(hostKey));
    try {
      const err = await ex.run(['sh', '-c', 'echo "no such thing" >&2; exit 3']).catch((e) => e);
      expect(err).toBeInstanceOf(CommandError);
      expect(err.message).toMatch(/testhost \(root@127\.0\.0\.1:\d+\): `sh -c .*` exited with 3:\n\s+no such thing/);
      expect((await ex.run(['cat'], { input: 'from stdin\n' })).stdout).toBe('from stdin\n');
    } finally {
      await ex.close();
    }
  });

  it('explains an unreachable host in one line', async () => {
    const err = await SshExecutor.connect({ ...target(hostKey), port: await freePort(), readyTimeoutMs: 3000 }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^testhost \(127\.0\.0\.1:\d+\): cannot connect: ECONNREFUSED/);
  });
});
