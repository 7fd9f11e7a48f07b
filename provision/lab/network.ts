// A lab network: a Linux bridge inside a network namespace owned by one unshared process
// (`setpriv --pdeathsig KILL unshare --net sleep infinity`), and one veth pair per joined host
// (switch side `v<n>` on the bridge, host side `eth0`). Nothing is created in the machine's
// network namespace, and no `ip netns add` (which would mount under the machine's /run/netns).
import { spawn, type ChildProcess } from 'node:child_process';
import { readlink } from 'node:fs/promises';
import { run } from './env.ts';
import { waitFor, waitExit } from './wait.ts';

export interface LabNetworkMember {
  name: string;
  address: string;
  /** Called with "address name" lines for every member whenever membership changes. */
  updateHosts?: (lines: string[]) => Promise<void>;
}

export interface LabNetwork {
  /** e.g. '10.213.0.0/24'; exists only inside lab namespaces. */
  subnet: string;
  /** pid of the process whose network namespace holds the bridge (for `nsenter -t pid -n`). */
  pid: number;
  /** The address a host of that name has (or will get) on this network; stable per name. */
  addressFor(name: string): string;
  /** Joined hosts. */
  members(): { name: string; address: string }[];
  /**
   * Connect the network namespace of `netPid` (used by startHost): creates the veth pair,
   * gives the host `addressFor(name)/24` plus `extraAddresses` (bare address = /32) on eth0.
   */
  join(
    member: LabNetworkMember & { netPid: number; extraAddresses?: string[] },
  ): Promise<{ ifname: string; leave(): Promise<void> }>;
  /** Kill the switch namespace; throws if it is still there afterwards. Hosts keep running. */
  stop(): Promise<void>;
}

const SUBNET_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/;

export async function startLabNetwork(opts: { subnet?: string } = {}): Promise<LabNetwork> {
  const subnet = opts.subnet ?? '10.213.0.0/24';
  const m = SUBNET_RE.exec(subnet);
  if (!m) throw new Error(`lab network: subnet must look like a.b.c.0/24, got ${subnet}`);
  const prefix = `${m[1]}.${m[2]}.${m[3]}.`;

  const child: ChildProcess = spawn(
    'setpriv',
    ['--pdeathsig', 'KILL', '--', 'unshare', '--net', '--', 'sleep', 'infinity'],
    { stdio: 'ignore' },
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error('lab network: could not spawn setpriv/unshare');
  const exited = waitExit(child);
  const ownNet = await readlink('/proc/self/ns/net');
  // Until unshare(2) ran, the child is still in the machine's netns: never touch it before.
  await waitFor('lab network namespace', async () => {
    const ns = await readlink(`/proc/${pid}/ns/net`).catch(() => ownNet);
    return ns !== ownNet;
  });
  const netns = await readlink(`/proc/${pid}/ns/net`);
  const inSwitch = (batch: string) =>
    run(['nsenter', '-t', String(pid), '-n', 'ip', '-batch', '-'], { input: batch, where: 'lab network' });
  await inSwitch('link set lo up\nlink add br0 type bridge\nlink set br0 up\n');

  const addresses = new Map<string, string>();
  const members = new Map<string, LabNetworkMember>();
  let nextOctet = 2; // .1 stays free (reserved for a future gateway)
  let vethSeq = 0;
  let hostsUpdate: Promise<void> = Promise.resolve();

  const addressFor = (name: string): string => {
    let a = addresses.get(name);
    if (!a) {
      if (nextOctet > 254) throw new Error(`lab network ${subnet}: no addresses left`);
      a = prefix + nextOctet++;
      addresses.set(name, a);
    }
    return a;
  };

  // Rewrite every member's lab block of /etc/hosts, one round at a time. A member that fails
  // (e.g. it is being stopped) does not fail the others; only `mustSucceed`'s own failure throws.
  const refreshHosts = (mustSucceed?: string): Promise<void> => {
    const round = hostsUpdate.then(async () => {
      const all = [...members.values()];
      const lines = all.map((x) => `${x.address}\t${x.name}`);
      const results = await Promise.allSettled(all.map((x) => x.updateHosts?.(lines)));
      const mine = results[all.findIndex((x) => x.name === mustSucceed)];
      if (mine?.status === 'rejected') throw mine.reason;
    });
    hostsUpdate = round.catch(() => {});
    return round;
  };

  const net: LabNetwork = {
    subnet,
    pid,
    addressFor,
    members: () => [...members.values()].map(({ name, address }) => ({ name, address })),
    async join(member) {
      if (members.has(member.name)) throw new Error(`lab network: ${member.name} already joined`);
      const address = addressFor(member.name);
      if (member.address !== address) throw new Error(`lab network: ${member.name} must use ${address}`);
      const ifname = `v${++vethSeq}`;
      await inSwitch(
        `link add ${ifname} type veth peer name eth0 netns ${member.netPid}\n` +
          `link set ${ifname} master br0\nlink set ${ifname} up\n`,
      );
      const extra = (member.extraAddresses ?? []).map(checkAddress);
      await run(['nsenter', '-t', String(member.netPid), '-n', 'ip', '-batch', '-'], {
        input:
          `addr add ${address}/24 dev eth0\n` +
          extra.map((a) => `addr add ${a} dev eth0\n`).join('') +
          'link set eth0 up\n',
        where: `lab network (${member.name})`,
      });
      members.set(member.name, member);
      try {
        await refreshHosts(member.name);
      } catch (e) {
        members.delete(member.name);
        throw e;
      }
      return {
        ifname,
        async leave() {
          members.delete(member.name);
          await refreshHosts();
        },
      };
    },
    async stop() {
      child.kill('SIGKILL');
      await exited;
      // The namespace dies with its only process; make sure no process still holds it.
      const holders = await (await import('./leftovers.ts')).processesInNamespace('net', netns);
      if (holders.length) throw new Error(`lab network: ${netns} still used by pids ${holders.join(',')}`);
    },
  };
  return net;
}

/** An extra address for `ip addr add` (bare = /32). Checked: it goes into ip(8) batch text. */
export function checkAddress(a: string): string {
  if (!/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(a)) throw new Error(`lab: bad address ${JSON.stringify(a)}`);
  return a.includes('/') ? a : `${a}/32`;
}

/** Host names go into hostnames, /etc/hosts and state dir names. */
export function checkName(name: string): void {
  if (!/^[a-z][a-z0-9-]{0,30}$/.test(name)) throw new Error(`lab: bad name ${JSON.stringify(name)} (use [a-z][a-z0-9-]*)`);
}
