// install-runtime, the pure part: (inventory, bundle, key texts, credentials) → the directories
// and files the Pi must have. No I/O: templates and file contents come in as strings, so the
// same plan is applied over SSH to a running Pi and into an image's root by provision-pi.
import Handlebars from 'handlebars';
import { SECRET_FIELDS, type Inventory } from '../../contract/inventory-schema.ts';
import { needsCredentialsFile } from '../../contract/offsite-kinds.ts';
import { sshPort } from '../../contract/inventory-defaults.ts';
import type { ManagedDir, ManagedFile } from '../engine/files.ts';
import { checkRuntimeConfig, type RuntimeConfig } from '../../contract/runtime-config.ts';

const posixDirname = (p: string): string => p.replace(/\/[^/]*$/, '') || '/';

const INSTALL_HEADER = 'managed by pullvault install-runtime; edits here are overwritten';

/** Where everything lives on the Pi. The runtime reads only config.json; the rest is named there. */
export const INSTALL_PATHS = {
  libDir: '/usr/local/lib/pullvault',
  bundle: '/usr/local/lib/pullvault/pullvault.mjs',
  cronRun: '/usr/local/lib/pullvault/cron-run',
  wrapper: '/usr/local/bin/pullvault',
  etcDir: '/etc/pullvault',
  config: '/etc/pullvault/config.json',
  awsCredentials: '/etc/pullvault/aws-credentials.json',
  knownHosts: '/etc/pullvault/known_hosts',
  recipientsDir: '/etc/pullvault/recipients',
  /** the files SECRET_FIELDS name (a webhook's token), 0600 */
  secretsDir: '/etc/pullvault/secrets',
  /** made by provision-pi (PI_PATHS.sshKey); install-runtime only points the config at it */
  sshKey: '/etc/pullvault/ssh/id_ed25519',
  cron: '/etc/cron.d/pullvault',
  logrotate: '/etc/logrotate.d/pullvault',
  logDir: '/var/log/pullvault',
  logFile: '/var/log/pullvault/pullvault.log',
} as const;

export type InstallPaths = { -readonly [K in keyof typeof INSTALL_PATHS]: string };

export const INSTALL_TEMPLATE_NAMES = ['cron', 'cron-run', 'wrapper', 'logrotate'] as const;
export type InstallTemplates = Record<(typeof INSTALL_TEMPLATE_NAMES)[number], string>;

export const NODE_MIN_MAJOR = 18;

/**
 * V8 heap flags the Pi's `pullvault` runs with (the wrapper; bench/files-sweep.ts runs its steps
 * the same way). Without them V8 sizes the heap by the machine's RAM and lets a high allocation
 * rate (a string and an object per manifest line) grow it before collecting: ~100 MiB more peak
 * RSS than the data needs (bench/README.md). The runtime's own state is bounded (streams over
 * sorted manifests, external sorts); what grows is what changed since the base (selectIncremental),
 * which 128 MiB of old space holds for several hundred thousand changed paths.
 */
export const NODE_HEAP_FLAGS = ['--max-semi-space-size=1', '--max-old-space-size=128'] as const;

export type { ManagedDir };

/** Why the Pi's node (`node --version`, or '-' when there is none) cannot run the runtime; undefined when it can. */
export function nodeVersionProblem(version: string, where = 'the Pi'): string | undefined {
  if (version === '-' || version === '') return `${where} has no node in PATH: the runtime needs Node.js ${NODE_MIN_MAJOR}+ (apt-get install nodejs)`;
  if (!(Number(version.replace(/^v/, '').split('.')[0]) >= NODE_MIN_MAJOR)) return `${where}'s Node.js is ${version}; the runtime needs ${NODE_MIN_MAJOR}+ (apt-get install nodejs from bookworm or newer)`;
  return undefined;
}

export interface PlannedFile extends ManagedFile {
  /** step id, e.g. "config /etc/pullvault/config.json" */
  id: string;
}

export interface InstallInput {
  inventory: Inventory;
  templates: InstallTemplates;
  bundle: { content: string; version: string; buildHash: string };
  /** recipient name → armored public key */
  recipientKeys: Record<string, string>;
  /** the writer's credentials JSON (state/aws/writer-credentials.json), s3 target only */
  awsCredentials?: string;
  /** SECRET_FIELDS file name → the file's content, for each such field the inventory sets */
  secrets?: Record<string, string>;
  /** lab/demo: reach servers at other addresses than the inventory's */
  connect?: RuntimeConfig['connect'];
  /** lab/demo only: the data dir need not be a mounted volume */
  allowUnmountedDataDir?: boolean;
  /** lab/demo only: the data dir may be a mounted volume that is not the dm-crypt mapper (tmpfs) */
  allowUnencryptedDataDir?: boolean;
  paths?: Partial<InstallPaths>;
}

export interface InstallPlan {
  paths: InstallPaths;
  config: RuntimeConfig;
  dirs: ManagedDir[];
  files: PlannedFile[];
  /** things the owner should know (missing credentials …), one line each */
  notes: string[];
}

export function render(templates: Partial<InstallTemplates>, name: keyof InstallTemplates, vars: Record<string, unknown>): string {
  const src = templates[name];
  if (src === undefined) throw new Error(`template templates/pi-runtime/${name}.hbs is missing`);
  return Handlebars.compile(src, { noEscape: true, strict: true })(vars);
}

/** `host` for port 22, `[host]:port` otherwise — OpenSSH known_hosts host patterns. */
function knownHostsPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/**
 * One line per server pinning its host key under every name the runtime may use: the
 * inventory's host (and port), the server's name (for `ssh -o HostKeyAlias=<name>`, which
 * ignores the port), and a connect override (lab addresses) when there is one.
 */
export function knownHostsLines(inv: Inventory, connect?: RuntimeConfig['connect']): string[] {
  return inv.servers.map((s) => {
    const names = [knownHostsPattern(s.ssh.host, sshPort(s.ssh)), s.name];
    const o = connect?.[s.name];
    if (o) names.push(knownHostsPattern(o.host, o.port ?? sshPort(s.ssh)));
    return `${[...new Set(names)].join(',')} ${s.ssh.hostKey}`;
  });
}

/** The cron schedule line's MAILTO, computed here so the template stays logic-free. */
function mailtoLine(inv: Inventory): string {
  const to = inv.notifications?.mailTo;
  return to ? `MAILTO=${to}` : '# MAILTO is not set (no notifications.mailTo): cron mails root on this machine';
}

export interface SecretField {
  /** the field's object in the inventory, and its key */
  holder: Record<string, unknown>;
  key: string;
  value: string;
  /** a secret file: its name under secretsDir and its path on the Pi */
  file?: { name: string; piPath: string };
}

/** The SECRET_FIELDS `inv` sets. */
export function secretFields(inv: Inventory, secretsDir: string = INSTALL_PATHS.secretsDir): SecretField[] {
  return SECRET_FIELDS.flatMap(({ field, file }) => {
    let holder: unknown = inv;
    for (const k of field.slice(0, -1)) holder = (holder as Record<string, unknown> | undefined)?.[k];
    const key = field[field.length - 1];
    const value = (holder as Record<string, unknown> | undefined)?.[key];
    if (typeof value !== 'string') return [];
    return [{ holder: holder as Record<string, unknown>, key, value, ...(file ? { file: { name: file, piPath: `${secretsDir}/${file}` } } : {}) }];
  });
}

/**
 * The inventory as the Pi sees it: recipients' keys and secret files at their installed paths,
 * and no admin-side paths (admin key files) that mean nothing on the Pi.
 */
export function piInventory(inv: Inventory, paths: InstallPaths): Inventory {
  const copy = structuredClone(inv);
  for (const f of secretFields(copy, paths.secretsDir)) if (f.file) f.holder[f.key] = f.file.piPath;
  delete copy.$schema;
  if (copy.pi.ssh) delete copy.pi.ssh.adminKeyFile;
  for (const s of copy.servers) delete s.ssh.adminKeyFile;
  copy.recipients = copy.recipients.map((r) => ({ ...r, publicKeyFile: `${paths.recipientsDir}/${r.name}.asc` }));
  return copy;
}

function runtimeConfig(input: InstallInput, paths: InstallPaths): RuntimeConfig {
  const inv = input.inventory;
  const config: RuntimeConfig = {
    version: 1,
    inventory: piInventory(inv, paths),
    paths: {
      sshKeyFile: paths.sshKey,
      knownHostsFile: paths.knownHosts,
      dataDir: inv.pi.dataDisk.mountpoint,
      recipientKeysDir: paths.recipientsDir,
      ...(needsCredentialsFile(inv.offsite) ? { awsCredentialsFile: paths.awsCredentials } : {}),
    },
  };
  if (input.allowUnmountedDataDir) config.allowUnmountedDataDir = true;
  if (input.allowUnencryptedDataDir) config.allowUnencryptedDataDir = true;
  if (input.connect && Object.keys(input.connect).length) config.connect = input.connect;
  // checked before any file is written: a config the runtime would refuse never replaces a good one
  return checkRuntimeConfig(config, `the config for ${paths.config}`);
}

/** Everything install-runtime manages on the Pi, in the order it is applied. */
export function planInstall(input: InstallInput): InstallPlan {
  const paths: InstallPaths = { ...INSTALL_PATHS, ...input.paths };
  const inv = input.inventory;
  const notes: string[] = [];
  const header = INSTALL_HEADER;
  const root = { owner: 'root', group: 'root' };
  const config = runtimeConfig(input, paths);

  const dirs: ManagedDir[] = [
    { path: paths.libDir, mode: '755', ...root },
    { path: paths.etcDir, mode: '700', ...root },
    { path: paths.recipientsDir, mode: '755', ...root },
    { path: paths.logDir, mode: '750', owner: 'root', group: 'adm' },
    { path: inv.pi.dataDisk.mountpoint, mode: '700', ...root },
    // present wherever cron and logrotate are installed; made here so a minimal root works too
    { path: posixDirname(paths.wrapper), mode: '755', ...root },
    { path: posixDirname(paths.cron), mode: '755', ...root },
    { path: posixDirname(paths.logrotate), mode: '755', ...root },
  ];

  const sh = (tmp: string) => ['sh', '-n', tmp];
  const files: PlannedFile[] = [
    { id: `bundle ${paths.bundle}`, path: paths.bundle, content: input.bundle.content, mode: '644', ...root, large: true },
    {
      id: `wrapper ${paths.wrapper}`,
      path: paths.wrapper,
      content: render(input.templates, 'wrapper', { header, bundle: paths.bundle, nodeMin: NODE_MIN_MAJOR, nodeFlags: NODE_HEAP_FLAGS.join(' ') }),
      mode: '755',
      ...root,
      validate: sh,
    },
    { id: `config ${paths.config}`, path: paths.config, content: JSON.stringify(config, null, 2) + '\n', mode: '600', ...root },
  ];

  if (needsCredentialsFile(inv.offsite)) {
    if (input.awsCredentials !== undefined) {
      files.push({ id: `S3 writer credentials ${paths.awsCredentials}`, path: paths.awsCredentials, content: input.awsCredentials, mode: '600', ...root, sensitive: true });
    } else {
      notes.push(
        `no S3 writer credentials (state/aws/writer-credentials.json): ${paths.awsCredentials} is left as it is on the Pi; run \`make provision-aws\` first, then install-runtime again`,
      );
    }
  }

  const secretFiles = secretFields(inv, paths.secretsDir).flatMap((f) => (f.file ? [{ ...f.file, from: f.value }] : []));
  if (secretFiles.length) dirs.push({ path: paths.secretsDir, mode: '700', ...root });
  for (const f of secretFiles) {
    const content = input.secrets?.[f.name];
    if (content === undefined) throw new Error(`${f.name}: no content for the secret file ${f.from}`);
    files.push({ id: `secret ${f.piPath}`, path: f.piPath, content, mode: '600', ...root, sensitive: true });
  }

  files.push({
    id: `known_hosts ${paths.knownHosts}`,
    path: paths.knownHosts,
    content: [`# ${header}`, '# the servers\' host keys, pinned from the inventory', ...knownHostsLines(inv, input.connect), ''].join('\n'),
    mode: '644',
    ...root,
  });

  for (const r of inv.recipients) {
    const key = input.recipientKeys[r.name];
    if (key === undefined) throw new Error(`recipients: no public key text for "${r.name}"`);
    const p = `${paths.recipientsDir}/${r.name}.asc`;
    files.push({ id: `recipient key ${p}`, path: p, content: key.endsWith('\n') ? key : `${key}\n`, mode: '644', ...root });
  }

  const common = { header, logFile: paths.logFile, logDir: paths.logDir, pullvault: paths.wrapper, cronRun: paths.cronRun, cronFile: paths.cron };
  files.push(
    {
      id: `cron job ${paths.cronRun}`,
      path: paths.cronRun,
      content: render(input.templates, 'cron-run', common),
      mode: '755',
      ...root,
      validate: sh,
    },
    {
      id: `crontab ${paths.cron}`,
      path: paths.cron,
      content: render(input.templates, 'cron', { ...common, schedule: inv.schedule.pull, mailtoLine: mailtoLine(inv) }),
      mode: '644',
      ...root,
    },
    {
      id: `logrotate ${paths.logrotate}`,
      path: paths.logrotate,
      content: render(input.templates, 'logrotate', { header, logDir: paths.logDir, rotate: 12 }),
      mode: '644',
      ...root,
    },
  );
  return { paths, config, dirs, files, notes };
}

/** The schedule field of the cron line in a rendered /etc/cron.d file (for checks and tests). */
export function cronSchedule(cronText: string, command: string = INSTALL_PATHS.cronRun): string | null {
  for (const line of cronText.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#') || /^[A-Z_]+=/.test(t)) continue;
    const f = t.split(/\s+/);
    if (f.length >= 7 && f[6] === command) return f.slice(0, 5).join(' ');
  }
  return null;
}
