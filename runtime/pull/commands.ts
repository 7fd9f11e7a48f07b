// Argument vectors for the external programs of a pull (pure; nothing here runs anything).
// Every argv goes to spawn() as an array; the only string another program splits is rsync's
// `-e`, which rsync itself tokenises (honouring quotes) — it never reaches a shell.
import { backupUser, sshPort } from '../../contract/inventory-defaults.ts';
import type { ServerSpec } from '../../contract/inventory-schema.ts';
import { dispatchCommand, type DispatchVerb } from '../../contract/dispatch-protocol.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';

export interface Endpoint {
  user: string;
  host: string;
  port: number;
}

export function endpointFor(config: RuntimeConfig, server: ServerSpec): Endpoint {
  const o = config.connect?.[server.name];
  return { user: backupUser(server), host: o?.host ?? server.ssh.host, port: o?.port ?? sshPort(server.ssh) };
}

/** ssh options (without the destination): pinned host key, our key only, never a prompt. */
function sshOptions(config: RuntimeConfig, ep: Endpoint): string[] {
  return [
    '-F', '/dev/null',
    '-i', config.paths.sshKeyFile,
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${config.paths.knownHostsFile}`,
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', 'ConnectTimeout=20',
    '-o', 'ServerAliveInterval=30',
    '-o', 'ServerAliveCountMax=4',
    '-p', String(ep.port),
  ];
}

/** `ssh … user@host VERB [DB]` for a dispatcher verb; throws for a command the dispatcher would refuse. */
export function sshVerbArgv(config: RuntimeConfig, ep: Endpoint, verb: DispatchVerb, arg?: string): string[] {
  let command: string;
  try {
    command = dispatchCommand(verb, arg);
  } catch (e) {
    throw new Error(`refusing dispatcher command: ${(e as Error).message}`);
  }
  return ['ssh', ...sshOptions(config, ep), '-T', `${ep.user}@${ep.host}`, command];
}

/** Quote one word for rsync's own -e tokeniser (single quotes; ' itself via "'"). */
export function rsyncShellWord(w: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'"'"'`)}'`;
}

export interface RsyncJob {
  /** absolute root on the server, e.g. /srv/data */
  root: string;
  exclude: string[];
  /** local destination directory (created by the caller) */
  dest: string;
  /** the same root in the previous snapshot, when there is one */
  linkDest?: string;
  progress?: boolean;
  /**
   * print "<bytes> <itemize> <name>" on stdout for each item written (for the pre-hasher; not with
   * progress). %b (bytes transferred) makes rsync log an item once its transfer is done; without a
   * transfer statistic in the format it logs before the transfer. %i's second letter is the type.
   */
  listNames?: boolean;
}

/** Local path for a root: "<snapshot>/files/<root without leading />". */
export function filesDirFor(snapshotDir: string, root: string): string {
  const rel = root.replace(/^\/+/, '').replace(/\/+$/, '');
  return rel ? `${snapshotDir}/files/${rel}` : `${snapshotDir}/files`;
}

export function rsyncArgv(config: RuntimeConfig, ep: Endpoint, job: RsyncJob): string[] {
  const src = job.root.endsWith('/') ? job.root : `${job.root}/`;
  return [
    'rsync',
    '-aHAX', '--numeric-ids', '--delete', '--delete-excluded',
    ...(job.progress ? ['--info=progress2', '--no-inc-recursive'] : job.listNames ? ['--out-format=%b %i %n'] : []),
    ...job.exclude.map((x) => `--exclude=${x}`),
    ...(job.linkDest ? [`--link-dest=${job.linkDest}`] : []),
    '-e', ['ssh', ...sshOptions(config, ep)].map(rsyncShellWord).join(' '),
    '--',
    `${ep.user}@${ep.host.includes(':') ? `[${ep.host}]` : ep.host}:${src}`,
    `${job.dest}/`,
  ];
}
