// What an attacker holding the Pi's SSH key gets from a server: live attempts from the pi host,
// with the Pi's own key and pinned known_hosts. One allowed request first, so a refusal means
// "refused", not "the key does not work at all".
import type { LabHost } from '../lab/index.ts';

export interface Probe {
  name: string;
  /** true when the server refused (the expected outcome), false for the control */
  refused: boolean;
  expectRefused: boolean;
  /** last line of what the attempt printed */
  detail: string;
}

export async function runProbes(pi: LabHost, server: { name: string; address: string }, o: { key: string; knownHosts: string; strayAddress: string; user: string }): Promise<Probe[]> {
  const ssh = ['ssh', '-F', '/dev/null', '-i', o.key, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${o.knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10'];
  const dest = `${o.user}@${server.address}`;
  const rsh = ssh.join(' ');
  const attempts: { name: string; argv: string[]; expectRefused: boolean; refusedIf: (code: number, out: string) => boolean }[] = [
    { name: `control: list MariaDB databases (mysql-list), allowed`, argv: [...ssh, '-T', dest, 'mysql-list'], expectRefused: false, refusedIf: (c, out) => c !== 0 || !/shop/.test(out) },
    { name: 'a shell (ssh with no command)', argv: [...ssh, '-T', dest], expectRefused: true, refusedIf: (c) => c !== 0 },
    { name: 'run a command: cat /etc/shadow', argv: [...ssh, '-T', dest, 'cat /etc/shadow'], expectRefused: true, refusedIf: (c, out) => c !== 0 && !/root:/.test(out) },
    { name: 'port forwarding to the server\'s MariaDB (ssh -W 127.0.0.1:3306)', argv: [...ssh, '-W', '127.0.0.1:3306', dest], expectRefused: true, refusedIf: (c) => c !== 0 },
    { name: 'a dump flag that writes a file: mysql-dump "shop --result-file=/tmp/x"', argv: [...ssh, '-T', dest, 'mysql-dump shop --result-file=/tmp/x'], expectRefused: true, refusedIf: (c) => c !== 0 },
    { name: 'write with rsync (push into /home/alice)', argv: ['rsync', '-e', rsh, '/etc/hostname', `${dest}:/home/alice/planted`], expectRefused: true, refusedIf: (c) => c !== 0 },
    { name: 'read outside the granted paths: rsync /etc/shadow', argv: ['rsync', '-e', rsh, `${dest}:/etc/shadow`, '/tmp/stolen-shadow'], expectRefused: true, refusedIf: (c) => c !== 0 },
    { name: `connect from another address (${o.strayAddress}; from= allows only the Pi's)`, argv: [...ssh, '-b', o.strayAddress, '-T', dest, 'mysql-list'], expectRefused: true, refusedIf: (c) => c !== 0 },
  ];
  const out: Probe[] = [];
  for (const a of attempts) {
    const r = await pi.exec(['timeout', '30', ...a.argv], { okCodes: Array.from({ length: 256 }, (_, i) => i) });
    const text = `${r.stdout}\n${r.stderr}`;
    const last = text.split('\n').map((l) => l.trim()).filter(Boolean).pop() ?? `exit ${r.code}`;
    out.push({ name: `${server.name}: ${a.name}`, refused: a.refusedIf(r.code, text), expectRefused: a.expectRefused, detail: `exit ${r.code}: ${last.slice(0, 140)}` });
  }
  // nothing planted, nothing stolen
  const planted = await pi.exec(['test', '-e', '/tmp/stolen-shadow'], { okCodes: [0, 1] });
  if (planted.code === 0) out.push({ name: `${server.name}: /etc/shadow must not arrive on the pi`, refused: false, expectRefused: true, detail: 'the file arrived' });
  return out;
}
