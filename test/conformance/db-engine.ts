// The cases every database engine passes, in the lab: provision-server gives the backup user
// what the engine needs (and the dispatcher only the configured databases); the dispatcher
// refuses what it must, from the Pi's key, with exit 126; `pullvault run` on the Pi dumps through
// it into the snapshot, recorded in snapshot.json; and the dump restores into a scratch instance
// (or file) on the Pi with the rows the server had. Every engine of the registry
// (contract/db-engines.ts) runs it with its fixture (db-engines/index.ts): how to seed a server,
// what to refuse, and how to restore and count.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ServerSpec } from '../../contract/inventory-schema.ts';
import type { SnapshotInfo } from '../../contract/disk-layout.ts';
import type { DbEngineSpec } from '../../contract/db-engine.ts';
import { DISPATCH_REFUSED_EXIT } from '../../contract/dispatch-protocol.ts';
import { describeLab, startHost, startLabNetwork, type LabHost, type LabNetwork, type LabService } from '../lab/index.ts';
import { CONFIG, DATA_DIR, labConfig, provisionLabServer, REPO, serverSpec } from '../integration/pull-lab.ts';

export interface DbEngineFixture {
  /** what the suite is called for this engine */
  title?: string;
  /** the lab network of its hosts (each engine its own, so suites can run side by side) */
  subnet: string;
  /** a selection servers[].databases.<engine> may hold, for the checks that need no lab */
  sample: unknown;
  /** daemons the server runs, and the Pi runs to restore into */
  services: LabService[];
  /** data on the server, and what the inventory says of it */
  seed(server: LabHost): Promise<Pick<ServerSpec, 'databases' | 'groups' | 'users'>>;
  /** snapshot files the run must produce for this engine (sorted) */
  dumpFiles: string[];
  /**
   * commands from the Pi's key the dispatcher must refuse, with why; may change the server
   * first (e.g. a symlink swap by the application's user), after the backup has been taken
   */
  refusals(server: LabHost): Promise<[command: string, why: RegExp][]>;
  /** restore the snapshot's dumps on the Pi into a scratch instance or file; the rows found */
  restoreRows(pi: LabHost, snapshotDir: string): Promise<string[]>;
  /** the rows the server had at the time of the dump (read from the server after the run) */
  expectedRows(server: LabHost, restored: string[]): Promise<string[]>;
  /** called once the suite ends (stop a writer) */
  done?(): Promise<void>;
}

export function dbEngineConformance(engine: DbEngineSpec, fx: DbEngineFixture): void {
  describeLab(`DbEngine conformance: ${fx.title ?? engine.name}`, () => {
    let net: LabNetwork;
    let pi: LabHost;
    let server: LabHost;
    let snapshotDir = '';
    let selection: unknown;
    const snap = `${DATA_DIR}/pullvault/snapshots`;

    beforeAll(async () => {
      net = await startLabNetwork({ subnet: fx.subnet });
      [pi, server] = await Promise.all([
        startHost({ name: 'pi', network: net, services: ['sshd', ...fx.services] }),
        startHost({ name: 'db', network: net, services: ['sshd', ...fx.services] }),
      ]);
      await pi.exec(['sh', '-c', `mkdir -p /etc/pullvault ${DATA_DIR} /srv/none && ssh-keygen -q -t ed25519 -N '' -C pi -f /etc/pullvault/id_ed25519 && mount -t tmpfs -o size=1g,mode=0755 backupdisk ${DATA_DIR}`]);
      const piPub = (await pi.readFile('/etc/pullvault/id_ed25519.pub')).toString().trim().split(' ').slice(0, 2).join(' ');
      const seeded = await fx.seed(server);
      selection = (seeded.databases as Record<string, unknown> | undefined)?.[engine.name];
      await server.exec(['mkdir', '-p', '/srv/none']);
      const spec: ServerSpec = { ...serverSpec(server, [{ path: '/srv/none' }], seeded.databases), ...(seeded.groups ? { groups: seeded.groups } : {}), ...(seeded.users ? { users: seeded.users } : {}) };
      await provisionLabServer(server, spec, piPub, pi.address!);
      await pi.writeFile('/etc/pullvault/known_hosts', `${server.address} ${server.hostKey}\n`);
      await pi.writeFile(CONFIG, JSON.stringify(labConfig([spec]), null, 2), { mode: 0o600 });
    });

    afterAll(async () => {
      await fx.done?.();
      await Promise.all([pi, server].filter(Boolean).map((h) => h.stop()));
      await net?.stop();
    });

    const piSsh = (command: string) =>
      pi.exec(
        ['timeout', '60', 'ssh', '-F', '/dev/null', '-i', '/etc/pullvault/id_ed25519', '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'UserKnownHostsFile=/etc/pullvault/known_hosts', '-o', 'StrictHostKeyChecking=yes', '-T', `pullvault@${server.address}`, command],
        { okCodes: [...Array(256).keys()] },
      );

    it('dumps through the dispatcher into the snapshot, recorded in snapshot.json', async () => {
      const r = await pi.exec(['setsid', '--wait', `${REPO}/node_modules/.bin/tsx`, `${REPO}/runtime/main.ts`, 'run', '--config', CONFIG, '--no-prune', '--no-offsite'], { okCodes: [0, 1, 2, 3, 4, 75] });
      expect(r.code, r.stderr).toBe(0);
      snapshotDir = `${snap}/db/${(await pi.exec(['readlink', `${snap}/db/latest`])).stdout.trim()}`;
      const info = JSON.parse((await pi.readFile(`${snapshotDir}/snapshot.json`)).toString()) as SnapshotInfo;
      expect(info.partial).toBe(false);
      expect(info.errors ?? []).toEqual([]);
      expect(info.dumps.map((d) => d.file).sort()).toEqual(fx.dumpFiles);
      // the files are where the engine's contract says a run puts them
      expect(selection).toBeDefined();
      expect(engine.needsList(selection)).toBe(false);
      expect(info.dumps.map((d) => d.file)).toEqual(engine.dumps(selection, []).map((j) => j.file));
      for (const d of info.dumps) {
        expect(d.engine).toBe(engine.name);
        expect(d.file).toBe(engine.dumpFile(d.name, d.name === 'globals' ? 'globals' : 'database'));
        expect(d.bytes).toBeGreaterThan(0);
      }
    });

    it('the dump restores into a scratch instance on the Pi with the rows the server had', async () => {
      expect(snapshotDir).not.toBe('');
      const restored = await fx.restoreRows(pi, snapshotDir);
      expect(restored.length).toBeGreaterThan(0);
      expect(restored).toEqual(await fx.expectedRows(server, restored));
    });

    it('refuses, from the Pi key, what the dispatcher must not do, with exit 126 and one line', async () => {
      const cases = await fx.refusals(server);
      expect(cases.length).toBeGreaterThan(0);
      for (const [command, why] of cases) {
        const r = await piSsh(command);
        expect(r.code, command).toBe(DISPATCH_REFUSED_EXIT);
        expect(r.stderr, command).toMatch(why);
        expect(r.stdoutBuffer.length, command).toBe(0);
      }
    });
  });
}
