// Lab fixtures for the pull-cycle tests: a "pi" host running the runtime, servers reachable
// over the lab network with a restricted key and a dispatcher, a tmpfs "backup disk".
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Redactor, TextReporter } from '../../provision/engine/index.ts';
import type { Inventory, ServerSpec } from '../../contract/inventory-schema.ts';
import { labInventory } from '../fixtures/lab-inventory.ts';
import { connectAdmin, provisionServer } from '../../provision/server.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import type { LabHost } from '../lab/index.ts';

/** This clone (lab hosts see the machine's tree under the same path), never a fixed checkout. */
export const REPO = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const DATA_DIR = '/srv/backup';
export const CONFIG = '/etc/pullvault/config.json';
export const PROM_DIR = '/var/lib/node_exporter';

/**
 * `provision-server` for real on a lab server: the backup user and its groups, the rendered
 * dispatcher (rrsync -ro per configured root, the dump verbs), the Pi's key restricted to it and
 * to the Pi's address, and MariaDB/PostgreSQL read-only accounts for the engines `spec` names.
 * Connects as root with the lab's admin key over the host's socket, as the operator would.
 */
export async function provisionLabServer(server: LabHost, spec: ServerSpec, piPub: string, piAddress: string): Promise<void> {
  const base = labConfig([spec]).inventory;
  const inventory: Inventory = { ...base, pi: { ...base.pi, sourceAddress: piAddress } };
  let out = '';
  const exec = await connectAdmin(spec, { adminKey: await readFile(server.adminKeyFile), sock: () => server.sock() });
  try {
    const r = await provisionServer(inventory, spec, { executor: exec, piPublicKey: piPub, reporter: new TextReporter(new Redactor(), (t) => (out += t)) });
    if (r.problems.length || !r.summary || r.summary.failed) throw new Error(`provision-server ${spec.name} failed:\n${[...r.problems, out].join('\n')}`);
  } finally {
    await exec.close();
  }
}

export function serverSpec(host: LabHost, paths: ServerSpec['paths'], databases?: ServerSpec['databases']): ServerSpec {
  return { name: host.name, ssh: { host: host.address!, hostKey: host.hostKey }, paths, ...(databases ? { databases } : {}) };
}

export function labConfig(servers: ServerSpec[], over: Partial<RuntimeConfig> = {}): RuntimeConfig {
  const inventory = labInventory({ servers, sourceAddress: '10.0.0.1', mountpoint: DATA_DIR, minFreeMiB: 16, notifications: { prometheusTextfileDir: PROM_DIR } });
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
