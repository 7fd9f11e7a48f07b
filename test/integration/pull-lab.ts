// Lab fixtures for the pull-cycle tests: a "pi" host running the runtime, servers reachable
// over the lab network with a restricted key and a dispatcher, a tmpfs "backup disk".
import type { Inventory, ServerSpec } from '../../provision/inventory/schema.ts';
import type { RuntimeConfig } from '../../runtime/config.ts';
import { createDumpUser, type LabHost } from '../lab/index.ts';

export const REPO = '/work/main';
export const DATA_DIR = '/srv/backup';
export const CONFIG = '/etc/pullvault/config.json';
export const PROM_DIR = '/var/lib/node_exporter';

/**
 * Stand-in for provision-server's dispatcher (same protocol: rrsync -ro for `rsync --server
 * --sender`, the named verbs, exit 126 for anything else), used until provisionServer() lands.
 */
export const DISPATCH = `#!/bin/bash
set -f
cmd="$SSH_ORIGINAL_COMMAND"
name_ok() { [[ "$1" =~ ^[A-Za-z0-9_]+$ ]] || { echo "refused" >&2; exit 126; }; }
case "$cmd" in
  "rsync --server --sender "*) exec /usr/bin/rrsync -ro / ;;
  mysql-list) exec mariadb -N -B -e 'SHOW DATABASES' | grep -Ev '^(information_schema|performance_schema|sys|mysql)$' ;;
  "mysql-dump "*) db="\${cmd#mysql-dump }"; name_ok "$db"; exec mysqldump --single-transaction --routines --events --triggers --databases "$db" ;;
  pg-list) exec psql -X -A -t -d postgres -c "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres'" ;;
  "pg-dump "*) db="\${cmd#pg-dump }"; name_ok "$db"; exec pg_dump -Fc -d "$db" ;;
  pg-globals) exec pg_dumpall --globals-only --no-role-passwords ;;
  *) echo "refused: $cmd" >&2; exit 126 ;;
esac
`;

/** Backup user, dispatcher and the Pi's key pinned to it (from= the Pi's address). */
export async function provisionLabServer(server: LabHost, piPub: string, piAddress: string, dbs: boolean): Promise<void> {
  if (dbs) await createDumpUser(server, 'pullvault');
  else await server.exec(['sh', '-c', 'id -u pullvault >/dev/null 2>&1 || useradd -m -s /bin/sh pullvault']);
  await server.writeFile('/usr/local/sbin/pullvault-dispatch', DISPATCH, { mode: 0o755 });
  await server.writeFile(
    '/etc/ssh/pullvault_authorized_keys',
    `restrict,from="${piAddress}",command="/usr/local/sbin/pullvault-dispatch" ${piPub}\n`,
    { mode: 0o644 },
  );
  await server.exec(['sh', '-c', 'mkdir -p /home/pullvault/.ssh && cp /etc/ssh/pullvault_authorized_keys /home/pullvault/.ssh/authorized_keys && chown -R root:root /home/pullvault/.ssh && chmod 755 /home/pullvault/.ssh']);
}

export function serverSpec(host: LabHost, paths: ServerSpec['paths'], databases?: ServerSpec['databases']): ServerSpec {
  return { name: host.name, ssh: { host: host.address!, hostKey: host.hostKey }, paths, ...(databases ? { databases } : {}) };
}

export function labConfig(servers: ServerSpec[], over: Partial<RuntimeConfig> = {}): RuntimeConfig {
  const inventory: Inventory = {
    pi: {
      name: 'pi', model: 'pi5', baseImage: { path: 'x.img', sha256: '0'.repeat(64) }, usbKey: { label: 'PVKEY' },
      dataDisk: { device: '/dev/sda1', mountpoint: DATA_DIR, minFreeMiB: 16 }, sourceAddress: '10.0.0.1',
    },
    servers,
    offsite: { type: 'dir', path: '/srv/offsite' },
    recipients: [
      { name: 'owner', publicKeyFile: 'owner.asc', fingerprint: 'A'.repeat(40) },
      { name: 'escrow', publicKeyFile: 'escrow.asc', fingerprint: 'B'.repeat(40) },
    ],
    schedule: { pull: '0 * * * *', offsite: { fullEveryDays: 7 } },
    retention: { hourly: 24, daily: 7, weekly: 4, monthly: 6 },
    notifications: { prometheusTextfileDir: PROM_DIR },
  };
  return {
    version: 1,
    inventory,
    paths: { sshKeyFile: '/etc/pullvault/id_ed25519', knownHostsFile: '/etc/pullvault/known_hosts', dataDir: DATA_DIR, recipientKeysDir: '/etc/pullvault/keys' },
    allowUnencryptedDataDir: true,
    ...over,
  };
}

/** Source data with every awkward case: modes, numeric owners, hard links, symlinks, empty dirs, odd names. */
export const SEED_TREE = String.raw`set -e
d="$1"
mkdir -p "$d/sub/deeper" "$d/empty dir" "$d/with space" "$d/owned"
printf 'hello\n' > "$d/a.txt"
head -c 3000000 /dev/urandom > "$d/big.bin"
head -c 100 /dev/urandom > "$d/sub/deeper/r.bin"
printf 'space' > "$d/with space/file name.txt"
printf 'nl' > "$d/new"$'\n'"line"
printf 'dash' > "$d/-leading-dash"
printf 'bad' > "$d/bad"$'\xff\xfe'"name"
mkdir "$d/dir"$'\xe9'
printf 'latin1 dir' > "$d/dir"$'\xe9'"/f"
printf 'tmp' > "$d/skip.tmp"
ln "$d/a.txt" "$d/sub/hardlink-to-a"
ln -s a.txt "$d/link-to-a"
ln -s "/nonexistent/target"$'\xff' "$d/dangling"
printf 'owned' > "$d/owned/f"
chown -R 1234:2345 "$d/owned"
chmod 0755 "$d/owned"
chmod 0640 "$d/sub/deeper/r.bin"; chgrp pullvault "$d/sub/deeper/r.bin"
chmod 0755 "$d/a.txt"
chmod 2775 "$d/sub"
chmod 1777 "$d/empty dir"
touch -h -d '2020-01-02 03:04:05' "$d/a.txt" "$d/link-to-a"
touch -d '2019-05-06 07:08:09' "$d/with space"
`;

/**
 * A canonical listing of a tree, comparable across hosts: one record per entry (sorted):
 * path bytes, type, mode, uid, gid, size+mtime (files), nlink (files), target (links), sha256.
 */
export const LIST_TREE = String.raw`set -e
cd "$1"
{
find . -mindepth 1 \( -type f -printf "f %P\0%m %U %G %s %Ts $NLINK\0" \) -o \( -type l -printf 'l %P\0%U %G %l\0' \) -o \( -type d -printf 'd %P\0%m %U %G %Ts\0' \)
} > /tmp/.list
find . -mindepth 1 -type f -print0 | sort -z | xargs -0 -r sha256sum -z > /tmp/.sums
cat /tmp/.list; printf 'SUMS\0'; cat /tmp/.sums
`;

/** `withNlink`: compare link counts too (only meaningful before --link-dest shares inodes across snapshots). */
export async function listTree(host: LabHost, dir: string, excludeTop: string[] = [], withNlink = false): Promise<string[]> {
  const out = (await host.exec(['bash', '-c', LIST_TREE, 'list', dir], { env: { NLINK: withNlink ? '%n' : '' } })).stdoutBuffer.toString('latin1');
  const [list, sums] = out.split('SUMS\0');
  const parts = list.split('\0');
  const recs: string[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const path = parts[i].slice(2);
    if (excludeTop.includes(path.split('/')[0])) continue;
    recs.push(`${parts[i]} | ${parts[i + 1]}`);
  }
  for (const s of sums.split('\0')) if (s && !excludeTop.some((x) => s.includes(`  ./${x}`))) recs.push(`sum ${s}`);
  return recs.sort();
}
