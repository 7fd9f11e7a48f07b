// Commands on a remote host over SSH (ssh2). The host key must be the one pinned in the
// inventory — no trust on first use. As a non-root admin, commands run through `sudo -n`.
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { Client, type ConnectConfig } from 'ssh2';
import { shellJoin } from './quote.ts';
import { checkResult, type CommandOptions, type CommandResult, type Executor } from './types.ts';

export interface SshTarget {
  /** name used in messages (the inventory's server name) */
  name: string;
  host: string;
  port: number;
  username: string;
  /** 'ssh-ed25519 AAAA…' as pinned in the inventory */
  hostKey: string;
  /** the admin's private key; when absent, keys held by ssh-agent ($SSH_AUTH_SOCK) are used */
  privateKey?: Buffer | string;
  /** a pre-connected stream (lab hosts: nsenter … socat), instead of host:port */
  sock?: Duplex;
  /** the address to connect from (tests of from= restrictions) */
  localAddress?: string;
  readyTimeoutMs?: number;
}

/** OpenSSH-style fingerprint of a key blob: SHA256:base64-without-padding */
function fingerprintOfBlob(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

export function fingerprintOfPublicKey(line: string): string {
  const b64 = line.trim().split(/\s+/)[1] ?? '';
  return fingerprintOfBlob(Buffer.from(b64, 'base64'));
}

export class HostKeyMismatchError extends Error {
  constructor(name: string, host: string, pinned: string, presented: string) {
    super(
      `${name} (${host}): host key mismatch — refusing to connect.\n` +
        `    pinned in the inventory: ${pinned}\n` +
        `    presented by the server: ${presented}\n` +
        `    If the server was reinstalled, check the new key out of band (e.g. on its console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and update the inventory.`,
    );
    this.name = 'HostKeyMismatchError';
  }
}

export class SshExecutor implements Executor {
  readonly where: string;
  private sudo = false;

  private constructor(
    private readonly client: Client,
    readonly target: SshTarget,
  ) {
    this.where = `${target.name} (${target.username}@${target.host}:${target.port})`;
  }

  /** Connects, verifies the pinned host key, and finds out whether commands need sudo. */
  static async connect(target: SshTarget, opts: { requireRoot?: boolean } = {}): Promise<SshExecutor> {
    if (!target.privateKey && !process.env.SSH_AUTH_SOCK)
      throw new Error(`${target.name} (${target.host}): no private key given and no ssh-agent running (SSH_AUTH_SOCK); name a key file in the inventory`);
    const client = new Client();
    const pinnedBlob = Buffer.from(target.hostKey.trim().split(/\s+/)[1] ?? '', 'base64');
    let presented: Buffer | undefined;
    const cfg: ConnectConfig = {
      host: target.host,
      port: target.port,
      username: target.username,
      privateKey: target.privateKey,
      agent: target.privateKey ? undefined : process.env.SSH_AUTH_SOCK,
      sock: target.sock as ConnectConfig['sock'],
      localAddress: target.localAddress,
      readyTimeout: target.readyTimeoutMs ?? 15000,
      hostVerifier: (key: Buffer) => {
        presented = key;
        return key.equals(pinnedBlob);
      },
    };
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      // on, not once: a handshake that failed can still emit a late error (no listener → the process dies)
      client.on('error', (err: Error & { level?: string; code?: string }) => {
        if (presented && !presented.equals(pinnedBlob))
          reject(new HostKeyMismatchError(target.name, target.host, fingerprintOfBlob(pinnedBlob), fingerprintOfBlob(presented)));
        else if (err.level === 'client-authentication')
          reject(new Error(`${target.name} (${target.host}): login as ${target.username} refused (key not authorized?). Check the admin login and key in the inventory.`));
        else reject(new Error(`${target.name} (${target.host}:${target.port}): cannot connect: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' ')));
      });
      client.connect(cfg);
    });
    const ex = new SshExecutor(client, target);
    if (opts.requireRoot) {
      const uid = (await ex.exec(['id', '-u'])).stdout.trim();
      if (uid !== '0') {
        const sudo = await ex.exec(['sudo', '-n', 'true']);
        if (sudo.code !== 0) {
          await ex.close();
          throw new Error(`${ex.where}: ${target.username} is not root and has no passwordless sudo (sudo -n true failed). Log in as root, or allow NOPASSWD sudo for this admin.`);
        }
        ex.sudo = true;
      }
    }
    return ex;
  }

  /** Runs argv without sudo or error checking; the raw building block. */
  exec(argv: string[], input?: string | Buffer): Promise<CommandResult> {
    const command = shellJoin(argv);
    return new Promise((resolve, reject) => {
      this.client.exec(command, (err, stream) => {
        if (err) return reject(new Error(`${this.where}: cannot start \`${argv[0]}\`: ${err.message}`));
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let code = -1;
        stream.on('data', (d: Buffer) => out.push(d));
        stream.stderr.on('data', (d: Buffer) => errOut.push(d));
        stream.on('exit', (c: number | null, signal?: string) => {
          code = c ?? (signal ? 128 : -1);
        });
        stream.on('close', () => resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8'), code }));
        stream.end(input);
      });
    });
  }

  async run(argv: string[], opts?: CommandOptions): Promise<CommandResult> {
    const full = this.sudo ? ['sudo', '-n', '--', ...argv] : argv;
    const r = await this.exec(full, opts?.input);
    return checkResult(this.where, argv, r, opts);
  }

  change(argv: string[], opts?: CommandOptions): Promise<CommandResult> {
    return this.run(argv, opts);
  }

  async close(): Promise<void> {
    this.client.end();
  }
}
