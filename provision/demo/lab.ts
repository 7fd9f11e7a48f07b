// The demo's lab: two servers, the "pi", and (s3 target) an "aws" host running moto's server,
// all in disposable namespaces (provision/lab). The admin side reaches moto through a local TCP
// forwarder over the host's stream, so nothing on this machine's network changes.
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { startHost, startLabNetwork, type LabHost, type LabNetwork } from '../lab/index.ts';
import { ensureMotoVenv } from '../lab/moto.ts';
import { REPO_ROOT } from '../state.ts';

const MOTO_PORT = 5000;

export interface DemoLab {
  net: LabNetwork;
  web1: LabHost;
  db1: LabHost;
  pi: LabHost;
  aws?: LabHost;
  /** an address on the lab network the servers do NOT allow (for the from= probe), put on the pi */
  strayAddress: string;
  /** moto as the admin machine reaches it (http://127.0.0.1:port) */
  motoAdminEndpoint?: string;
  /** moto as the pi reaches it (http://<aws address>:5000) */
  motoPiEndpoint?: string;
  stop(): Promise<void>;
}

// moto_server with its unfaithful bucket-policy check on object requests switched off (as provision/lab/moto.ts does)
const MOTO_PY = `
import sys
from moto.s3.models import FakeBucket
from moto.iam.access_control import PermissionResult
FakeBucket.get_permission = lambda self, action, resource: PermissionResult.NEUTRAL
from moto.server import main
sys.exit(main(sys.argv[1:]))
`;

async function forwarder(host: LabHost, port: number): Promise<{ server: Server; endpoint: string }> {
  const server = createServer((client) => {
    host.sock(port).then(
      (remote) => {
        client.pipe(remote).pipe(client);
        const end = () => {
          client.destroy();
          remote.destroy();
        };
        client.on('error', end).on('close', end);
        remote.on('error', end).on('close', end);
      },
      () => client.destroy(),
    );
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const addr = server.address();
  return { server, endpoint: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}` };
}

async function waitHttp(url: string, what: string, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  let last = '';
  while (Date.now() < until) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(3000) });
      await r.arrayBuffer();
      return;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not answer at ${url} within ${ms / 1000} s (${last})`);
}

export async function startDemoLab(o: { s3: boolean; log: (l: string) => void }): Promise<DemoLab> {
  const net = await startLabNetwork();
  const started: LabHost[] = [];
  let fwd: Server | undefined;
  const stop = async () => {
    fwd?.close();
    await Promise.all(started.map((h) => h.stop().catch(() => undefined)));
    await net.stop().catch(() => undefined);
  };
  try {
    const strayAddress = net.addressFor('stray');
    const motoBin = o.s3 ? await ensureMotoVenv() : undefined;
    const hosts = await Promise.all([
      startHost({ name: 'web1', network: net, services: ['sshd', 'mariadb'] }),
      startHost({ name: 'db1', network: net, services: ['sshd', 'postgres'] }),
      startHost({ name: 'pi', network: net, extraAddresses: [strayAddress] }),
      ...(o.s3 ? [startHost({ name: 'aws', network: net })] : []),
    ]);
    started.push(...hosts);
    const [web1, db1, pi, aws] = hosts as [LabHost, LabHost, LabHost, LabHost | undefined];
    o.log(`lab: web1 ${web1.address} (MariaDB), db1 ${db1.address} (PostgreSQL), pi ${pi.address}${aws ? `, aws ${aws.address} (moto S3/IAM)` : ''}`);
    const lab: DemoLab = { net, web1, db1, pi, aws, strayAddress, stop };
    if (aws && motoBin) {
      const python = path.join(path.dirname(motoBin), 'python3');
      aws.spawn(['sh', '-c', `cd / && exec env MOTO_ALLOW_NONEXISTENT_REGION=true "$0" -c "$1" -H 0.0.0.0 -p ${MOTO_PORT} >/var/log/moto.log 2>&1 </dev/null`, python, MOTO_PY], { stdio: 'ignore' });
      const f = await forwarder(aws, MOTO_PORT);
      fwd = f.server;
      lab.motoAdminEndpoint = f.endpoint;
      lab.motoPiEndpoint = `http://${aws.address}:${MOTO_PORT}`;
      await waitHttp(`${f.endpoint}/moto-api/`, 'moto');
    }
    return lab;
  } catch (e) {
    await stop();
    throw e;
  }
}

