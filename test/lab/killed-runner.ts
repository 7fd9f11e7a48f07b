// Helper process for lab.test.ts: starts a network and a host (with MariaDB), prints what it
// started as one JSON line, then idles until it is SIGKILLed. Run: node --import tsx killed-runner.ts
import { startHost } from '../../provision/lab/host.ts';
import { startLabNetwork } from '../../provision/lab/network.ts';
import { runnerState } from '../../provision/lab/state.ts';

const net = await startLabNetwork();
const host = await startHost({ name: 'victim', network: net, services: ['sshd', 'mariadb'] });
const { runnerDir: dir } = await runnerState();
console.log(JSON.stringify({ pid: host.pid, namespaces: host.namespaces, stateDir: host.stateDir, runnerDir: dir, switchPid: net.pid }));
setInterval(() => {}, 1 << 30);
