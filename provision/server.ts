// `make provision-server`: on each server, the backup user, its groups, the dispatcher, the
// Pi's restricted key and the database accounts — or, with --uninstall, none of them.
// The command only composes: read inputs → connect → gather facts → plan → run.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { defineCommand, makeOutput, planFileWriter, UsageError } from './cli-common.ts';
import { exitCodeOf, runSteps, type Plan, type Reporter, type RunSummary } from './engine/index.ts';
import { HostKeyMismatchError, SshExecutor } from './exec/ssh.ts';
import { readOnly, type Executor } from './exec/types.ts';
import { adminLogin, sshPort } from '../contract/inventory-defaults.ts';
import type { Inventory, ServerSpec } from '../contract/inventory-schema.ts';
import { resolveInventoryPath } from './inventory/validate.ts';
import { gatherFacts } from './server/facts.ts';
import { planServer, type ServerPlan } from './server/plan.ts';
import { SERVER_TEMPLATE_NAMES, type ServerTemplates } from './server/render.ts';
import { REPO_ROOT } from './state.ts';

export { DISPATCH_REFUSED_EXIT, DISPATCH_VERBS, dispatchCommand } from '../contract/dispatch-protocol.ts';

const HELP = `usage: make provision-server [INVENTORY=inventory.json] [ARGS="--dry-run | --uninstall | --server NAME | --pi-public-key FILE"]

Makes each server in the inventory ready to be pulled from by the Pi, giving the Pi's key as
little as possible: a backup user (default "pullvault", locked password), secondary groups
(the inventory's groups + the private groups of its users, no others), the dispatcher
/usr/local/sbin/pullvault-dispatch, the Pi's key restricted to it and to the Pi's address,
and MariaDB/PostgreSQL read-only accounts for the engines the inventory names.

Connects as servers[].ssh.admin (root, or a user with passwordless sudo) with
servers[].ssh.adminKeyFile or ~/.ssh/id_ed25519; the host key must be the pinned one.

options:
  -i, --inventory FILE     inventory (default inventory.json, or $INVENTORY)
  -n, --dry-run            show the plan and a diff; change nothing
      --plan-json FILE     write each server's plan as JSON (by server name) before it is applied
      --uninstall          remove everything provision-server created, and nothing else
      --server NAME        only this server (repeatable)
      --pi-public-key FILE the Pi's SSH public key (default <state>/<pi.name>/pi_ssh_key.pub)
      --state DIR          the state folder (default $PULLVAULT_STATE, else state/ next to the inventory)
  -h, --help               this text

Running it again after a Pi rebuild replaces the old key. A second run reports 0 changed.`;

const SERVER_TEMPLATES_DIR = path.join(REPO_ROOT, 'templates', 'server');

export async function loadServerTemplates(dir = SERVER_TEMPLATES_DIR): Promise<ServerTemplates> {
  const entries = await Promise.all(SERVER_TEMPLATE_NAMES.map(async (n) => [n, await readFile(path.join(dir, `${n}.hbs`), 'utf8')] as const));
  return Object.fromEntries(entries) as ServerTemplates;
}

export interface ProvisionServerOptions {
  /** run commands here instead of connecting (tests: an SshExecutor over a lab sock) */
  executor?: Executor;
  /** connect through this stream instead of host:port (lab hosts) */
  sock?: () => Promise<Duplex>;
  /** admin private key (default: adminKeyFile, else ~/.ssh/id_ed25519) */
  adminKey?: string | Buffer;
  /** the Pi's public key text (required unless uninstall) */
  piPublicKey?: string;
  dryRun?: boolean;
  /** gets the plan before anything is applied */
  onPlan?: (plan: Plan) => void | Promise<void>;
  uninstall?: boolean;
  reporter: Reporter;
  /** folder relative inventory paths are resolved against */
  inventoryDir?: string;
  templates?: ServerTemplates;
}

export interface ProvisionServerResult {
  summary?: RunSummary;
  /** preflight problems (nothing was changed), one line each */
  problems: string[];
  plan?: ServerPlan;
}

/** Opens the admin connection to a server: pinned host key, root or sudo -n. */
export async function connectAdmin(server: ServerSpec, opts: { adminKey?: string | Buffer; sock?: () => Promise<Duplex>; inventoryDir?: string }): Promise<Executor> {
  const key = opts.adminKey ?? (await readAdminKey(server, opts.inventoryDir ?? process.cwd()));
  const where = `${server.name} (${adminLogin(server.ssh)}@${server.ssh.host}:${sshPort(server.ssh)})`;
  try {
    return await connectSsh(server, key, opts.sock);
  } catch (e) {
    throw new Error(oneLineConnectError(where, e as Error));
  }
}

/** The executor's connection errors as one line naming the server and what to do. */
export function oneLineConnectError(where: string, e: Error): string {
  const msg = e.message;
  if (e instanceof HostKeyMismatchError || /host key mismatch/.test(msg)) {
    const fp = [...msg.matchAll(/SHA256:[A-Za-z0-9+/]+/g)].map((m) => m[0]);
    return `${where}: host key mismatch (pinned ${fp[0] ?? '?'}, server presents ${fp[1] ?? '?'}); if the server was reinstalled, check the new key on its console and update servers[].ssh.hostKey`;
  }
  if (/login as .* refused/.test(msg)) return `${where}: the admin login was refused; check servers[].ssh.admin and that its key (servers[].ssh.adminKeyFile) is in the admin's authorized_keys`;
  if (/no passwordless sudo/.test(msg)) return `${where}: the admin is not root and has no passwordless sudo; log in as root, or allow NOPASSWD sudo for this admin`;
  if (/cannot connect|timed out|ECONNREFUSED|EHOSTUNREACH|ENOTFOUND|ETIMEDOUT/i.test(msg))
    return `${where}: unreachable (${msg.split('\n')[0]!.replace(/^.*cannot connect:\s*/, '')}); check servers[].ssh.host and port, and that sshd runs there`;
  return msg.split('\n').join(' ');
}

async function connectSsh(server: ServerSpec, key: string | Buffer | undefined, sock?: () => Promise<Duplex>): Promise<Executor> {
  return SshExecutor.connect(
    {
      name: server.name,
      host: server.ssh.host,
      port: sshPort(server.ssh),
      username: adminLogin(server.ssh),
      hostKey: server.ssh.hostKey,
      privateKey: key,
      sock: sock ? await sock() : undefined,
    },
    { requireRoot: true },
  );
}

async function readAdminKey(server: ServerSpec, dir: string): Promise<Buffer | undefined> {
  const file = server.ssh.adminKeyFile ? resolveInventoryPath(dir, server.ssh.adminKeyFile) : path.join(os.homedir(), '.ssh', 'id_ed25519');
  try {
    const key = await readFile(file);
    if (/ENCRYPTED|Proc-Type: 4,ENCRYPTED/.test(key.toString('utf8')) || isEncryptedOpenSsh(key))
      throw new Error(`${server.name}: the admin key ${file} is passphrase-protected; use an unencrypted key for provisioning (servers[].ssh.adminKeyFile)`);
    return key;
  } catch (e) {
    // no key file named and none at the default place: an ssh-agent holds the admin's key
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !server.ssh.adminKeyFile && process.env.SSH_AUTH_SOCK) return undefined;
    if ((e as NodeJS.ErrnoException).code)
      throw new Error(
        `${server.name}: cannot read the admin key ${file} (${(e as NodeJS.ErrnoException).code}); set servers[].ssh.adminKeyFile${!server.ssh.adminKeyFile ? ', or start ssh-agent with the admin key' : ''}`,
      );
    throw e;
  }
}

/** An OpenSSH-format private key whose cipher is not "none". */
function isEncryptedOpenSsh(key: Buffer): boolean {
  const m = /-----BEGIN OPENSSH [A-Z ]*KEY-----([\s\S]+?)-----END/.exec(key.toString('utf8'));
  if (!m) return false;
  const raw = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  // "openssh-key-v1\0" then string ciphername
  const off = 15;
  const len = raw.readUInt32BE(off);
  return raw.subarray(off + 4, off + 4 + len).toString() !== 'none';
}

/** Provisions (or uninstalls) one server. Connects unless an executor is given; closes what it opened. */
export async function provisionServer(inventory: Inventory, server: ServerSpec, opts: ProvisionServerOptions): Promise<ProvisionServerResult> {
  const index = inventory.servers.findIndex((s) => s.name === server.name);
  const templates = opts.templates ?? (await loadServerTemplates());
  const exec = opts.executor ?? (await connectAdmin(server, opts));
  try {
    const facts = await gatherFacts(exec, server);
    const plan = planServer({
      server,
      index: index < 0 ? 0 : index,
      pi: inventory.pi,
      piPublicKey: opts.piPublicKey,
      templates,
      facts,
      mode: opts.uninstall ? 'uninstall' : 'install',
    });
    if (plan.problems.length) return { problems: plan.problems, plan };
    // a dry run plans with an executor that refuses every change
    const summary = await runSteps(plan.steps, { exec: opts.dryRun ? readOnly(exec) : exec }, { dryRun: opts.dryRun, reporter: opts.reporter, onPlan: opts.onPlan });
    return { summary, problems: [], plan };
  } finally {
    if (!opts.executor) await exec.close();
  }
}

async function readPiPublicKey(inventory: Inventory, file: string | undefined, state: string): Promise<string> {
  const f = file ?? path.join(state, inventory.pi.name, 'pi_ssh_key.pub');
  try {
    return await readFile(f, 'utf8');
  } catch (e) {
    throw new Error(
      file
        ? `cannot read --pi-public-key ${f} (${(e as NodeJS.ErrnoException).code})`
        : `no Pi public key at ${f}: run make provision-pi first, or pass ARGS="--pi-public-key FILE"`,
    );
  }
}

export const command = defineCommand({
  help: HELP,
  options: {
    uninstall: { type: 'boolean', default: false },
    server: { type: 'string', multiple: true },
    'pi-public-key': { type: 'string' },
  },
  inventory: true,
  dryRun: true,
  plan: true,
  async run({ values, dryRun, loaded: { inventory, dir }, state, cmd, planJson }) {
    const wanted = values.server ?? [];
    for (const n of wanted) if (!inventory.servers.some((s) => s.name === n)) throw new UsageError(`--server ${n}: no such server in the inventory`);
    const servers = inventory.servers.filter((s) => !wanted.length || wanted.includes(s.name));
    const piPublicKey = values.uninstall ? undefined : await readPiPublicKey(inventory, values['pi-public-key'], state);
    const { reporter, redactor } = makeOutput();
    const writePlan = planFileWriter(planJson, redactor);
    const templates = await loadServerTemplates();
    let code = 0;
    for (const server of servers) {
      reporter.line(`== ${cmd}${values.uninstall ? ' --uninstall' : ''}${dryRun ? ' (dry run)' : ''}: ${server.name} (${adminLogin(server.ssh)}@${server.ssh.host}:${sshPort(server.ssh)})`);
      try {
        const r = await provisionServer(inventory, server, {
          piPublicKey,
          dryRun,
          ...(writePlan ? { onPlan: (plan: Plan) => writePlan(plan, server.name) } : {}),
          uninstall: values.uninstall,
          reporter,
          inventoryDir: dir,
          templates,
        });
        for (const p of r.problems) process.stderr.write(`error: ${p}\n`);
        if (r.problems.length) code = 1;
        else if (r.summary && exitCodeOf(r.summary)) code = 1;
      } catch (e) {
        process.stderr.write(`error: ${(e as Error).message}\n`);
        code = 1;
      }
    }
    return code;
  },
});
