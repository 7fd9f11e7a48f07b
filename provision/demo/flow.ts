// The demo, end to end, with the real parts: lab servers with data → provision-aws (moto) →
// provision-server → install-runtime into the "pi" → two cron-style cycles with a day's changes
// in between → what a stolen Pi key is refused → a point-in-time restore on the owner's side,
// checked against the source as it was. `make demo` and test/e2e/demo.test.ts both call runDemo.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redactor } from '../engine/redact.ts';
import { TextReporter } from '../engine/report.ts';
import type { RunSummary } from '../engine/types.ts';
import { loadInventory, type LoadedInventory } from '../inventory/validate.ts';
import type { Inventory } from '../../contract/inventory-schema.ts';
import { vaultLayout } from '../../contract/disk-layout.ts';
import { buildRuntime, type BuiltRuntime } from '../build-runtime.ts';
import { INSTALL_PATHS, installRuntimeOverSsh } from '../runtime-install.ts';
import { MARIADB_SEED, POSTGRES_SEED } from '../lab/seed.ts';
import { isRoot, type LabHost } from '../lab/index.ts';
import { CHANGE_DB1, CHANGE_WEB1, LISTING, SEED_DB1, SEED_WEB1, listingOn, withoutExcluded } from './data.ts';
import { startDemoLab, type DemoLab } from './lab.ts';
import { generatedKeysDir } from '../recovery-kit/gather.ts';
import { runProbes, type Probe } from './probes.ts';

const pexec = promisify(execFile);
/** the Pi's backup disk in the demo (a tmpfs inside the pi host) */
const DEMO_DATA_DIR = '/srv/pullvault';
const piDisk = vaultLayout(DEMO_DATA_DIR);

export interface DemoOptions {
  /** offsite target: moto's S3 in a lab host (default), or a folder on the pi */
  target?: 's3' | 'dir';
  /** leave the lab running; the caller stops it with report.keep.stop() */
  keep?: boolean;
  /** progress lines */
  log?: (line: string) => void;
  /** where demo state goes (default: a new temp dir, removed at the end unless keep) */
  workDir?: string;
}

export interface StepCount {
  changed: number;
  failed: number;
  ok: number;
}

export interface ServerCycle {
  server: string;
  snapshot?: string;
  files?: number;
  bytes?: number;
  /** files and bytes that were new or changed (hashed) in this snapshot */
  newFiles?: number;
  newBytes?: number;
  seconds?: number;
  partial?: boolean;
  dumps?: string[];
}

export interface Upload {
  server: string;
  kind: 'full' | 'incremental';
  key: string;
  bytes: number;
  snapshot: string;
}

export interface CycleReport {
  n: number;
  exitCode: number;
  seconds: number;
  servers: ServerCycle[];
  uploads: Upload[];
  /** what cron would have mailed (the failure output of cron-run), if anything */
  cronOutput: string;
}

export interface RestoreCheck {
  server: string;
  snapshot: string;
  entries: number;
  bytes: number;
  /** restore()'s own check against the snapshot's manifest */
  manifestProblems: string[];
  /** our independent check: path, size and sha256 of every file, per backed-up path, vs the source listed right after cycle 1 */
  comparedPaths: string[];
  comparedEntries: number;
  mismatches: string[];
  /** the restored tree differs from the source now (so it really is the earlier point in time) */
  differsFromNow: boolean;
  verifyProblems: string[];
}

export interface DemoReport {
  target: 's3' | 'dir';
  workDir: string;
  runtime: { version: string; build: string; bytes: number };
  provisioned: {
    aws?: { first: StepCount; second: StepCount };
    servers: { name: string; first: StepCount; second: StepCount }[];
    install: { first: StepCount; second: StepCount; installedVersion?: string; warnings: string[] };
  };
  cycles: CycleReport[];
  probes: Probe[];
  restore?: RestoreCheck;
  /** parts that were not available, one line each ("skipped: …") */
  skipped: string[];
  notes: string[];
  seconds: number;
  /** with keep: the running lab and how to look in */
  keep?: { stop(): Promise<void>; howTo: string[] };
}

const count = (s: RunSummary): StepCount => ({ changed: s.changed, failed: s.failed, ok: s.ok });

async function gpgKey(home: string, name: string, email: string): Promise<{ fingerprint: string; publicKey: string }> {
  const spec = ['Key-Type: eddsa', 'Key-Curve: ed25519', 'Subkey-Type: ecdh', 'Subkey-Curve: cv25519', `Name-Real: ${name}`, `Name-Email: ${email}`, 'Expire-Date: 0', '%no-protection', '%commit', ''].join('\n');
  const gpg = (args: string[], input?: string) =>
    new Promise<string>((resolve, reject) => {
      const c = execFile('gpg', ['--homedir', home, '--batch', '--quiet', ...args], { encoding: 'utf8' }, (e, out, err) => (e ? reject(new Error(`gpg ${args[0]}: ${err || e.message}`)) : resolve(out)));
      // gpg may exit before reading stdin (nothing to read): a broken pipe there is not an error
      c.stdin?.on('error', () => undefined);
      c.stdin?.end(input ?? '');
    });
  await gpg(['--gen-key'], spec);
  const colons = await gpg(['--with-colons', '--fingerprint', email]);
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(colons)?.[1];
  if (!fingerprint) throw new Error(`gpg: no fingerprint for ${email}`);
  return { fingerprint, publicKey: await gpg(['--armor', '--export', email]) };
}

/** The owner's and escrow keys, one after the other: two gpg processes creating the same new keyring
 * race (CI saw "keydb_search failed"; reproduced under CPU load as "invalid packet"). */
async function demoKeys(home: string) {
  const owner = await gpgKey(home, 'Demo Owner', 'owner@demo.invalid');
  const escrow = await gpgKey(home, 'Demo Escrow', 'escrow@demo.invalid');
  return { owner, escrow };
}

async function sh(host: LabHost, script: string, input?: string): Promise<string> {
  return (await host.exec(['bash', '-c', script], input === undefined ? {} : { input })).stdout;
}

export async function runDemo(opts: DemoOptions = {}): Promise<DemoReport> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const target = opts.target ?? 's3';
  if (!isRoot()) throw new Error('the demo needs root: it starts disposable lab hosts (namespaces, mounts): sudo make demo');
  const workDir = opts.workDir ?? (await mkdtemp(path.join(tmpdir(), 'pullvault-demo-')));
  const state = path.join(workDir, 'state');
  const gnupg = path.join(workDir, 'owner-gnupg');
  await mkdir(state, { recursive: true, mode: 0o700 });
  await mkdir(gnupg, { recursive: true, mode: 0o700 });
  await mkdir(path.join(workDir, 'keys'), { recursive: true });
  const redactor = new Redactor();
  const quiet = new TextReporter(redactor, () => {});
  const skipped: string[] = [];
  const notes: string[] = [];
  let lab: DemoLab | undefined;
  let kept = false;

  try {
    log('starting the lab (two servers, the pi' + (target === 's3' ? ', a local S3 endpoint' : '') + '), building the runtime, making the owner\'s and escrow OpenPGP keys …');
    const [labStarted, bundle, { owner, escrow }] = await Promise.all([
      startDemoLab({ s3: target === 's3', log }),
      buildRuntime({ outFile: path.join(workDir, 'pullvault.mjs') }),
      demoKeys(gnupg),
    ]);
    lab = labStarted;
    const { web1, db1, pi } = lab;
    await writeFile(path.join(workDir, 'keys', 'owner.asc'), owner.publicKey);
    await writeFile(path.join(workDir, 'keys', 'escrow.asc'), escrow.publicKey);
    // both secret halves where `make recovery-kit` finds the keys pullvault generated (the kit is how
    // the escrow key goes offline); then the escrow key leaves the owner's keyring
    await mkdir(generatedKeysDir(state), { recursive: true, mode: 0o700 });
    for (const [name, k] of [['owner', owner], ['escrow', escrow]] as const) {
      const { stdout } = await pexec('gpg', ['--homedir', gnupg, '--batch', '--armor', '--export-secret-keys', k.fingerprint]);
      await writeFile(path.join(generatedKeysDir(state), `${name}.secret.asc`), stdout, { mode: 0o600 });
    }
    await pexec('gpg', ['--homedir', gnupg, '--batch', '--yes', '--delete-secret-keys', escrow.fingerprint]);

    log('generating data: homes of alice, bob and carol, a web site and MariaDB "shop" on web1; app files and PostgreSQL "shop" on db1 …');
    await Promise.all([
      sh(web1, SEED_WEB1),
      web1.exec(['mariadb'], { input: MARIADB_SEED }),
      sh(db1, SEED_DB1),
      db1.exec(['runuser', '-u', 'postgres', '--', 'psql', '-q', '-X', '-v', 'ON_ERROR_STOP=1'], { input: POSTGRES_SEED }),
      // what provision-pi does on a real Pi: the Pi's own SSH key; and a "backup disk" (tmpfs, inside the pi only)
      sh(pi, `set -e; install -d -m 700 ${path.posix.dirname(INSTALL_PATHS.sshKey)}; ssh-keygen -q -t ed25519 -N '' -C pullvault@pi -f ${INSTALL_PATHS.sshKey}; mkdir -p ${DEMO_DATA_DIR} /srv/offsite; mount -t tmpfs -o size=768m,mode=0700 pullvault-backup-disk ${DEMO_DATA_DIR}`),
    ]);
    const piPublicKey = (await pi.readFile(`${INSTALL_PATHS.sshKey}.pub`)).toString().trim().split(' ').slice(0, 2).join(' ');

    const inventory: Inventory = {
      pi: {
        name: 'pi',
        model: 'pi5',
        arch: 'amd64',
        baseImage: { path: '/nonexistent/demo.img', sha256: '0'.repeat(64) },
        usbKey: { label: 'PVKEY' },
        dataDisk: { device: '/dev/disk/by-label/demo', mountpoint: DEMO_DATA_DIR, minFreeMiB: 16 },
        sourceAddress: pi.address!,
        ssh: { host: pi.address!, port: 22, hostKey: pi.hostKey, admin: 'root', adminKeyFile: pi.adminKeyFile },
      },
      servers: [
        {
          name: 'web1',
          ssh: { host: web1.address!, port: 22, hostKey: web1.hostKey, admin: 'root', adminKeyFile: web1.adminKeyFile },
          groups: ['www-data'],
          users: ['alice', 'bob', 'carol'],
          paths: [
            { path: '/home/alice', exclude: ['.cache/'] },
            { path: '/home/bob', exclude: ['.cache/'] },
            { path: '/home/carol', exclude: ['.cache/'] },
            { path: '/var/www', exclude: ['*/cache/'] },
          ],
          databases: { mariadb: ['shop'] },
        },
        {
          name: 'db1',
          ssh: { host: db1.address!, port: 22, hostKey: db1.hostKey, admin: 'root', adminKeyFile: db1.adminKeyFile },
          paths: [{ path: '/srv/app' }],
          databases: { postgres: 'all' },
        },
      ],
      offsite:
        target === 's3'
          ? { type: 's3', bucket: 'pullvault-demo', region: 'eu-central-1', prefix: 'pi/', endpoint: lab.motoAdminEndpoint!, retentionDays: { full: 40, incremental: 30 }, restoreUser: 'pullvault-pi-restore' }
          : { type: 'dir', path: '/srv/offsite' },
      recipients: [
        { name: 'owner', publicKeyFile: 'keys/owner.asc', fingerprint: owner.fingerprint },
        { name: 'escrow', publicKeyFile: 'keys/escrow.asc', fingerprint: escrow.fingerprint },
      ],
      schedule: { pull: '17 */4 * * *', offsite: { fullEveryDays: 7, incrementalEveryDays: 1 } },
      retention: { hourly: 24, daily: 7, weekly: 4, monthly: 6 },
      notifications: { mailTo: 'owner@demo.invalid' },
    };
    const invFile = path.join(workDir, 'inventory.json');
    await writeFile(invFile, JSON.stringify(inventory, null, 2) + '\n');
    const loaded = await loadInventory(invFile);
    log(`inventory: ${invFile} (valid)`);

    // ---- provision-aws
    let aws: DemoReport['provisioned']['aws'];
    if (target === 's3') {
      const mod = await import('../aws/index.ts');
      const { awsClients } = await import('../exec/aws.ts');
      const { MOTO_CREDENTIALS } = await import('../lab/moto.ts');
      const clients = awsClients({ region: 'eu-central-1', endpoint: lab.motoAdminEndpoint, credentials: { ...MOTO_CREDENTIALS } });
      const once = async () => (await mod.provisionAws(loaded.inventory, { clients, reporter: quiet, redactor, stateDir: state, restoreUser: true })) as RunSummary;
      log('provision-aws against the local S3/IAM endpoint (bucket, write-once policy, lifecycle, writer and restore users) …');
      const first = await once();
      const second = await once();
      aws = { first: count(first), second: count(second) };
      if (first.failed) throw new Error(`provision-aws failed: ${first.results.filter((r) => r.status === 'failed').map((r) => `${r.id}: ${r.error}`).join('; ')}`);
    }

    // ---- provision-server
    const servers: DemoReport['provisioned']['servers'] = [];
    const serverMod = await import('../server.ts');
    log('provision-server on web1 and db1 (backup user, groups, dispatcher, the Pi\'s restricted key, database accounts) …');
    await Promise.all(
      loaded.inventory.servers.map(async (s) => {
        const host = s.name === 'web1' ? web1 : db1;
        const once = async () => {
          const r = await serverMod.provisionServer(loaded.inventory, s, { sock: () => host.sock(), piPublicKey, reporter: quiet, inventoryDir: loaded.dir });
          if (r.problems.length) throw new Error(`provision-server ${s.name}: ${r.problems.join('; ')}`);
          if (r.summary!.failed) throw new Error(`provision-server ${s.name} failed: ${r.summary!.results.filter((x) => x.status === 'failed').map((x) => `${x.id}: ${x.error}`).join('; ')}`);
          return count(r.summary!);
        };
        const first = await once();
        servers.push({ name: s.name, first, second: await once() });
      }),
    );
    servers.sort((a, b) => a.name.localeCompare(b.name));

    // ---- install-runtime (the pi reaches moto at its lab address)
    log('install-runtime into the pi over SSH (bundle, config, known_hosts, recipients, cron, logrotate) …');
    const piInventory = structuredClone(loaded.inventory);
    if (piInventory.offsite.type === 's3') piInventory.offsite.endpoint = lab.motoPiEndpoint!;
    const piLoaded: LoadedInventory = { ...loaded, inventory: piInventory };
    const install = async () => installRuntimeOverSsh(piLoaded, { bundle, stateDir: state, sock: await pi.sock(), reporter: quiet, redactor, allowUnencryptedDataDir: true });
    const i1 = await install();
    if (i1.summary.failed) throw new Error(`install-runtime failed: ${i1.summary.results.filter((x) => x.status === 'failed').map((x) => `${x.id}: ${x.error}`).join('; ')}`);
    const i2 = await install();
    const installReport = { first: count(i1.summary), second: count(i2.summary), installedVersion: i1.installedVersion, warnings: i1.warnings };

    // ---- cycles
    const cycles: CycleReport[] = [];
    const cycle = async (n: number): Promise<CycleReport> => {
      log(`cycle ${n}: running the cron job on the pi (${INSTALL_PATHS.cronRun}, as cron would) …`);
      const before = await uploadsOn(pi);
      const t = Date.now();
      const r = await pi.exec(['env', '-i', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'PULLVAULT_CRON=1', 'MAILTO=owner@demo.invalid', 'SHELL=/bin/sh', INSTALL_PATHS.cronRun], { okCodes: Array.from({ length: 256 }, (_, i) => i) });
      const seconds = (Date.now() - t) / 1000;
      const after = await uploadsOn(pi);
      const uploads = after.slice(before.length).map((u) => ({ server: u.server, kind: u.kind, key: u.key, bytes: u.bytes, snapshot: u.snapshot }));
      const rep: CycleReport = { n, exitCode: r.code, seconds, servers: await snapshotsOn(pi, loaded.inventory.servers.map((s) => s.name)), uploads, cronOutput: r.stdout.trim() };
      log(`cycle ${n}: exit ${r.code} in ${seconds.toFixed(1)} s; ${rep.servers.map((s) => `${s.server} ${s.snapshot ?? 'no snapshot'}`).join(', ')}; ${uploads.length} upload(s)`);
      return rep;
    };
    cycles.push(await cycle(1));

    // the source as it was at cycle 1, for the point-in-time check
    const web1Spec = loaded.inventory.servers[0]!;
    const sourceAtCycle1 = new Map<string, string[]>();
    for (const p of web1Spec.paths) sourceAtCycle1.set(p.path, withoutExcluded(await listingOn(web1, p.path), p.exclude ?? []));

    // the next day: the Pi's upload record is moved back one day, so the daily incremental is due
    const recs = await pi.exec(['cat', uploadsFile()], { okCodes: [0, 1] });
    if (recs.code === 0 && recs.stdout.trim()) {
      const shifted = recs.stdout
        .trim()
        .split('\n')
        .map((l) => {
          const o = JSON.parse(l) as { uploadedAt: string };
          o.uploadedAt = new Date(Date.parse(o.uploadedAt) - 86_400_000).toISOString();
          return JSON.stringify(o);
        })
        .join('\n');
      await pi.writeFile(uploadsFile(), shifted + '\n', { mode: 0o600 });
      notes.push('between the cycles the demo moves the Pi\'s record of its uploads back one day, as if cycle 2 ran the next day (the daily incremental is then due)');
    }
    log('changing data: edits, new and deleted files, new database rows …');
    await Promise.all([sh(web1, CHANGE_WEB1), sh(db1, CHANGE_DB1)]);
    await new Promise((r) => setTimeout(r, 1100)); // snapshot ids have one-second resolution
    cycles.push(await cycle(2));

    // ---- probes
    log('probing web1 with the Pi\'s key, as a thief would …');
    const probes = await runProbes(pi, { name: 'web1', address: web1.address! }, { key: INSTALL_PATHS.sshKey, knownHosts: INSTALL_PATHS.knownHosts, strayAddress: lab.strayAddress, user: 'pullvault' });

    // ---- restore on the owner's side
    let restoreCheck: RestoreCheck | undefined;
    const firstSnap = cycles[0]!.servers.find((s) => s.server === 'web1')?.snapshot;
    const uploadedFirst = cycles[0]!.uploads.some((u) => u.server === 'web1');
    if (!uploadedFirst) skipped.push('skipped: restore — nothing was uploaded offsite in cycle 1');
    else if (!firstSnap) skipped.push('skipped: restore — web1 has no snapshot from cycle 1');
    else {
      log(`restoring web1 as of cycle 1 (${firstSnap}) on the owner's machine, from ${target === 's3' ? 'S3 with the read-only restore user' : 'the offsite folder'}, decrypting with the owner's key …`);
      restoreCheck = await restoreAndCompare({ workDir, target, lab, loaded, state, gnupg, snapshot: firstSnap, sourceAtCycle1, web1 });
    }

    const report: DemoReport = {
      target,
      workDir,
      runtime: { version: bundle.version, build: bundle.buildHash, bytes: bundle.bytes },
      provisioned: { aws, servers, install: installReport },
      cycles,
      probes,
      restore: restoreCheck,
      skipped,
      notes,
      seconds: (Date.now() - t0) / 1000,
    };
    if (opts.keep) {
      kept = true;
      const l = lab;
      report.keep = {
        howTo: [
          `work dir (inventory, state, owner's gpg home): ${workDir}`,
          ...[l.pi, l.web1, l.db1, ...(l.aws ? [l.aws] : [])].map((h) => `${h.name.padEnd(5)} ssh ${h.sshArgs('root').map((a) => (/[\s"']/.test(a) ? `'${a}'` : a)).join(' ')}`),
          `on the pi: pullvault status; pullvault list; tail /var/log/pullvault/pullvault.log`,
          `or enter a host directly: nsenter -t ${l.pi.pid} -a  (the pi)`,
        ],
        stop: async () => {
          await l.stop();
          if (!opts.workDir) await rm(workDir, { recursive: true, force: true });
        },
      };
    }
    return report;
  } finally {
    if (!kept) {
      await lab?.stop();
      if (!opts.workDir) await rm(workDir, { recursive: true, force: true });
    }
  }
}

const uploadsFile = () => piDisk.uploads;

async function uploadsOn(pi: LabHost): Promise<{ server: string; kind: 'full' | 'incremental'; key: string; bytes: number; snapshot: string }[]> {
  const r = await pi.exec(['cat', uploadsFile()], { okCodes: [0, 1] });
  if (r.code !== 0) return [];
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

async function snapshotsOn(pi: LabHost, servers: string[]): Promise<ServerCycle[]> {
  const out: ServerCycle[] = [];
  for (const server of servers) {
    const dir = piDisk.serverDir(server);
    const latest = await pi.exec(['readlink', `${dir}/latest`], { okCodes: [0, 1] });
    const id = latest.code === 0 ? path.posix.basename(latest.stdout.trim()) : '';
    if (!id) {
      out.push({ server });
      continue;
    }
    const info = JSON.parse((await pi.readFile(`${dir}/${id}/snapshot.json`)).toString()) as {
      id: string;
      partial: boolean;
      dumps: { engine: string; name: string; bytes: number }[];
      stats: { files: number; bytes: number; hashedFiles: number; hashedBytes: number; seconds: number };
    };
    out.push({
      server,
      snapshot: info.id,
      files: info.stats.files,
      bytes: info.stats.bytes,
      newFiles: info.stats.hashedFiles,
      newBytes: info.stats.hashedBytes,
      seconds: info.stats.seconds,
      partial: info.partial,
      dumps: info.dumps.map((d) => `${d.engine}:${d.name}`),
    });
  }
  return out;
}

async function restoreAndCompare(a: {
  workDir: string;
  target: 's3' | 'dir';
  lab: DemoLab;
  loaded: LoadedInventory;
  state: string;
  gnupg: string;
  snapshot: string;
  sourceAtCycle1: Map<string, string[]>;
  web1: LabHost;
}): Promise<RestoreCheck> {
  const { openTarget, readCredentials } = await import('../../runtime/offsite/open-target.ts');
  const { restore, listServer, verifyObjects } = await import('../../runtime/offsite/restore.ts');
  const { parseAt } = await import('../../runtime/offsite/chain.ts');
  const inv = a.loaded.inventory;
  const spec = inv.offsite.type === 's3' ? { ...inv.offsite, endpoint: a.lab.motoAdminEndpoint } : { type: 'dir' as const, path: `/proc/${a.lab.pi.pid}/root/srv/offsite` };
  const credsFile = path.join(a.state, 'aws', 'restore-credentials.json');
  const creds = spec.type === 's3' ? await readCredentials(credsFile) : undefined;
  const target = openTarget(spec, creds);
  const to = path.join(a.workDir, 'owner-restore');
  const decryptor = { kind: 'gpg' as const, homedir: a.gnupg };
  const r = await restore({ target, server: 'web1', to, at: parseAt(a.snapshot), decryptor, log: () => {}, tmpDir: a.workDir });
  const mismatches: string[] = [];
  let comparedEntries = 0;
  let differsFromNow = false;
  const web1 = inv.servers.find((s) => s.name === 'web1')!;
  for (const p of web1.paths) {
    const restoredDir = path.join(to, 'files', p.path);
    const got = existsSync(restoredDir) ? (await pexec('bash', ['-c', LISTING, 'listing', restoredDir], { maxBuffer: 64 << 20 })).stdout.split('\n').filter(Boolean) : [];
    const want = a.sourceAtCycle1.get(p.path) ?? [];
    comparedEntries += want.length;
    const g = new Set(got);
    const w = new Set(want);
    for (const x of want) if (!g.has(x)) mismatches.push(`${p.path}: missing or different in the restore: ${x.slice(0, 120)}`);
    for (const x of got) if (!w.has(x)) mismatches.push(`${p.path}: in the restore but not in the source at cycle 1: ${x.slice(0, 120)}`);
    const now = withoutExcluded(await listingOn(a.web1, p.path), p.exclude ?? []);
    if (now.join('\n') !== got.join('\n')) differsFromNow = true;
  }
  const listing = await listServer(target, 'web1');
  const verifyProblems = await verifyObjects(target, listing, decryptor, () => {});
  await chmod(to, 0o700).catch(() => undefined);
  return {
    server: 'web1',
    snapshot: r.snapshot,
    entries: r.entries,
    bytes: r.bytes,
    manifestProblems: r.problems,
    comparedPaths: web1.paths.map((p) => p.path),
    comparedEntries,
    mismatches: mismatches.slice(0, 20),
    differsFromNow,
    verifyProblems,
  };
}
