// `make install-runtime`: the runtime bundle, its config, the servers' pinned host keys, the
// recipients' public keys, the cron job and log rotation — onto a running Pi over SSH (host key
// pinned), or into an image's root directory (provision-pi calls installRuntimeInto).
// read (inventory, keys, credentials, bundle) → plan (pure, runtime/plan.ts) → apply (engine).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { defineCommand, makeOutput, planFileWriter } from './cli-common.ts';
import { Redactor } from './engine/redact.ts';
import { TextReporter, type Reporter } from './engine/report.ts';
import { exitCodeOf, runSteps } from './engine/run.ts';
import type { Plan, RunSummary } from './engine/types.ts';
import { LocalExecutor } from './exec/local.ts';
import { SshExecutor } from './exec/ssh.ts';
import { readOnly, type Executor } from './exec/types.ts';
import { adminLogin, sshPort } from '../contract/inventory-defaults.ts';
import type { Inventory } from '../contract/inventory-schema.ts';
import { needsCredentialsFile } from '../contract/offsite-kinds.ts';
import { resolveInventoryPath, type LoadedInventory } from './inventory/validate.ts';
import { planInstall, nodeVersionProblem, NODE_MIN_MAJOR, type InstallPaths, type InstallPlan } from './runtime/plan.ts';
import { stateDirFor } from './state.ts';
import { installSteps } from './runtime/steps.ts';
import { loadInstallTemplates, readRecipientKeys, readSecrets, readWriterCredentials } from './runtime/inputs.ts';
import { piHostKeyPin } from './image/access.ts';
import { piStateDir } from './image/secrets.ts';
import { buildRuntime, type BuiltRuntime } from './build-runtime.ts';
import type { RuntimeConfig } from '../contract/runtime-config.ts';

export { planInstall, INSTALL_PATHS, cronSchedule } from './runtime/plan.ts';

export interface InstallOptions {
  /** folder that relative paths in the inventory are relative to (default: cwd) */
  inventoryDir?: string;
  /** provisioning state (state/aws/writer-credentials.json); default: state/ next to the inventory, or $PULLVAULT_STATE */
  stateDir?: string;
  /** a bundle built already (default: build runtime/main.ts now, into dist/pullvault.mjs) */
  bundle?: BuiltRuntime;
  /** lab/demo: reach the servers at other addresses */
  connect?: RuntimeConfig['connect'];
  /** lab/demo only */
  allowUnmountedDataDir?: boolean;
  allowUnencryptedDataDir?: boolean;
  paths?: Partial<InstallPaths>;
  dryRun?: boolean;
  /** gets the plan before anything is applied */
  onPlan?: (plan: Plan) => void | Promise<void>;
  reporter?: Reporter;
  /** secrets found while reading (S3 keys) are registered here, so no reporter prints them */
  redactor?: Redactor;
}

export interface PreparedInstall {
  plan: InstallPlan;
  bundle: BuiltRuntime;
}

/** Reads everything the plan needs on the admin side, and plans. */
async function prepareInstall(inventory: Inventory, opts: InstallOptions = {}): Promise<PreparedInstall> {
  const inventoryDir = opts.inventoryDir ?? process.cwd();
  const bundle = opts.bundle ?? (await buildRuntime());
  const creds = needsCredentialsFile(inventory.offsite) ? await readWriterCredentials(opts.stateDir ?? stateDirFor(inventoryDir)) : undefined;
  for (const s of creds?.secrets ?? []) opts.redactor?.add(s);
  const secrets = await readSecrets(inventory, inventoryDir);
  for (const s of secrets.values) opts.redactor?.add(s);
  const plan = planInstall({
    inventory,
    templates: await loadInstallTemplates(),
    bundle,
    recipientKeys: await readRecipientKeys(inventory, inventoryDir),
    awsCredentials: creds?.text,
    secrets: secrets.files,
    connect: opts.connect,
    allowUnmountedDataDir: opts.allowUnmountedDataDir,
    allowUnencryptedDataDir: opts.allowUnencryptedDataDir,
    paths: opts.paths,
  });
  return { plan, bundle };
}

function isLoaded(x: Inventory | LoadedInventory): x is LoadedInventory {
  return 'inventory' in x && 'dir' in x;
}

/**
 * Writes the runtime's files under `rootDir` (an image's root, as provision-pi builds it), with
 * local commands as root. Same plan, same steps as over SSH. Returns the engine's summary.
 */
export async function installRuntimeInto(rootDir: string, inventory: Inventory | LoadedInventory, opts: InstallOptions = {}): Promise<RunSummary> {
  const inv = isLoaded(inventory) ? inventory.inventory : inventory;
  const inventoryDir = opts.inventoryDir ?? (isLoaded(inventory) ? inventory.dir : undefined);
  const redactor = opts.redactor ?? new Redactor();
  const reporter = opts.reporter ?? new TextReporter(redactor);
  const { plan } = await prepareInstall(inv, { ...opts, inventoryDir, redactor });
  for (const n of plan.notes) reporter.line(`note: ${n}`);
  const local = new LocalExecutor();
  const exec = opts.dryRun ? readOnly(local) : local;
  return runSteps(installSteps(plan, () => exec, path.resolve(rootDir)), undefined, { dryRun: opts.dryRun, reporter, onPlan: opts.onPlan });
}

export interface SshInstallOptions extends InstallOptions {
  /** admin private key (default: pi.ssh.adminKeyFile, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa) */
  privateKey?: Buffer | string;
  /** a connected stream instead of host:port (lab hosts) */
  sock?: Duplex;
}

export interface SshInstallResult {
  summary: RunSummary;
  /** what `pullvault --version` says on the Pi after the install (not in a dry run) */
  installedVersion?: string;
  warnings: string[];
}

async function adminKey(loaded: LoadedInventory): Promise<Buffer | undefined> {
  const ssh = loaded.inventory.pi.ssh!;
  if (ssh.adminKeyFile) {
    const file = resolveInventoryPath(loaded.dir, ssh.adminKeyFile);
    try {
      return await readFile(file);
    } catch (e) {
      throw new Error(`pi.ssh.adminKeyFile: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  for (const n of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
    const f = path.join(homedir(), '.ssh', n);
    if (existsSync(f)) return readFile(f);
  }
  if (process.env.SSH_AUTH_SOCK) return undefined; // the admin's key is in ssh-agent
  throw new Error('pi.ssh.adminKeyFile is not set and there is no ~/.ssh/id_ed25519 (or id_ecdsa, id_rsa); set pi.ssh.adminKeyFile in the inventory');
}

// Read-only facts about the Pi in one round trip: node's version, the tools the runtime and
// the cron job run, and whether provision-pi's SSH key is there.
const PROBE_SCRIPT = `command -v node >/dev/null 2>&1 && echo "node $(node --version)" || echo "node -"
for t in rsync ssh zstd tar find setpriv cron; do
  if command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ]; then :; else echo "missing $t"; fi
done
[ -f "$1" ] && echo "sshkey yes" || echo "sshkey no"`;

const PKG_OF: Record<string, string> = { ssh: 'openssh-client', setpriv: 'util-linux', find: 'findutils' };

/** What would stop the runtime from working on the Pi; never changes anything. */
async function piWarnings(exec: Executor, plan: InstallPlan): Promise<string[]> {
  const w: string[] = [];
  const lines = (await exec.run(['sh', '-c', PROBE_SCRIPT, 'sh', plan.paths.sshKey])).stdout.trim().split('\n');
  const v = lines.find((l) => l.startsWith('node '))?.slice(5) ?? '-';
  const nodeProblem = nodeVersionProblem(v);
  if (nodeProblem) w.push(nodeProblem);
  const missing = lines.filter((l) => l.startsWith('missing ')).map((l) => l.slice(8));
  if (missing.length) w.push(`the Pi lacks ${missing.join(', ')}: apt-get install ${missing.map((m) => PKG_OF[m] ?? m).join(' ')}`);
  if (lines.includes('sshkey no'))
    w.push(`the Pi has no SSH key at ${plan.paths.sshKey}: provision-pi makes one (or: ssh-keygen -t ed25519 -N '' -f ${plan.paths.sshKey}), then authorize it with make provision-server`);
  return w;
}

/** install-runtime over SSH to inventory.pi.ssh (host key pinned, root or passwordless sudo). */
export async function installRuntimeOverSsh(loaded: LoadedInventory, opts: SshInstallOptions = {}): Promise<SshInstallResult> {
  const inv = loaded.inventory;
  const ssh = inv.pi.ssh;
  if (!ssh) throw new Error('pi.ssh: not set; install-runtime needs the Pi\'s address: "pi": {"ssh": {"host": …}} (its host key: pinned by provision-pi in state/<pi>/known_hosts, or pi.ssh.hostKey)');
  const knownHostsFile = path.join(piStateDir(opts.stateDir ?? stateDirFor(opts.inventoryDir ?? loaded.dir), inv.pi.name), 'known_hosts');
  const pin = piHostKeyPin(inv, existsSync(knownHostsFile) ? await readFile(knownHostsFile, 'utf8') : undefined, knownHostsFile);
  const redactor = opts.redactor ?? new Redactor();
  const reporter = opts.reporter ?? new TextReporter(redactor);
  const { plan, bundle } = await prepareInstall(inv, { ...opts, inventoryDir: opts.inventoryDir ?? loaded.dir, redactor });
  reporter.line(`runtime: pullvault ${bundle.version} (build ${bundle.buildHash}), ${(bundle.bytes / 1024).toFixed(0)} KiB`);
  for (const n of plan.notes) reporter.line(`note: ${n}`);
  reporter.line(`${inv.pi.name}: host key pinned from ${pin.source}`);
  const exec = await SshExecutor.connect(
    { name: inv.pi.name, host: ssh.host, port: sshPort(ssh), username: adminLogin(ssh), hostKey: pin.hostKey, privateKey: opts.privateKey ?? (await adminKey(loaded)), sock: opts.sock },
    { requireRoot: true },
  );
  try {
    reporter.line(`${exec.where}: ${opts.dryRun ? 'checking (dry run, nothing is changed)' : 'installing'}`);
    const warnings = await piWarnings(exec, plan);
    for (const w of warnings) reporter.line(`warning: ${w}`);
    const planned = opts.dryRun ? readOnly(exec) : exec;
    const summary = await runSteps(installSteps(plan, () => planned), undefined, { dryRun: opts.dryRun, reporter, onPlan: opts.onPlan });
    let installedVersion: string | undefined;
    if (!opts.dryRun && !summary.failed) {
      const r = await exec.run([plan.paths.wrapper, '--version'], { okCodes: [0, 1, 2, 127] });
      installedVersion = (r.stdout.trim() || r.stderr.trim()).split('\n')[0];
      reporter.line(`${inv.pi.name}: ${r.code === 0 ? installedVersion : `the installed runtime does not start: ${installedVersion}`}`);
      if (r.code !== 0) warnings.push(`pullvault --version on the Pi: ${installedVersion}`);
    }
    return { summary, installedVersion, warnings };
  } finally {
    await exec.close();
  }
}

const HELP = `usage: make install-runtime [INVENTORY=inventory.json] [ARGS="--dry-run"]

Installs or updates the pullvault runtime on the running Pi over SSH (inventory pi.ssh: host,
port, admin, adminKeyFile; the host key pinned by provision-pi in state/<pi>/known_hosts, else
pi.ssh.hostKey). Idempotent: a second run reports "0 changed".

  /usr/local/lib/pullvault/pullvault.mjs   the runtime (one file, Node ${NODE_MIN_MAJOR}+), built now from runtime/
  /usr/local/bin/pullvault                 the command (runs it with the system's node)
  /etc/pullvault/config.json               the inventory as the Pi needs it + paths (0600)
  /etc/pullvault/aws-credentials.json      S3 writer credentials from state/aws/ (0600; s3 target)
  /etc/pullvault/secrets/*                 the files of secret inventory fields (webhook token; 0600)
  /etc/pullvault/known_hosts               the servers' pinned host keys
  /etc/pullvault/recipients/*.asc          the recipients' public keys
  /etc/cron.d/pullvault                    schedule.pull; MAILTO from notifications.mailTo
  /usr/local/lib/pullvault/cron-run        the run, its log, failure output for cron's mail
  /etc/logrotate.d/pullvault               rotation of /var/log/pullvault/*.log

options:
  -i, --inventory FILE   the inventory (default inventory.json, or $INVENTORY)
  -n, --dry-run          show what would change (with diffs), change nothing
      --plan-json FILE   write the plan as JSON before anything is applied
      --state DIR        the state folder (default $PULLVAULT_STATE, else state/ next to the inventory)
  -h, --help             this text`;

export const command = defineCommand({
  help: HELP,
  options: {},
  inventory: true,
  dryRun: true,
  plan: true,
  async run({ dryRun, loaded, state, planJson }) {
    const { redactor, reporter } = makeOutput();
    reporter.line(`building the runtime bundle …`);
    const bundle = await buildRuntime({ log: (l) => reporter.line(l) });
    const { summary } = await installRuntimeOverSsh(loaded, { bundle, stateDir: state, dryRun, onPlan: planFileWriter(planJson, redactor), reporter, redactor });
    return exitCodeOf(summary);
  },
});
