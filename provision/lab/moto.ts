// The lab's local AWS endpoint: moto's server (S3, IAM, STS over real HTTP, with state) on
// 127.0.0.1, one per test file.
//
//   const moto = await startMoto();            // in beforeAll
//   const clients = awsClients({ region: 'eu-central-1', endpoint: moto.endpoint, credentials: MOTO_ADMIN });
//   await moto.stop();                         // in afterAll
//
// - Uses `.venv/bin/moto_server` (from `make venv`); creates the venv the same way if it is
//   missing (python3 -m venv .venv && .venv/bin/pip install -r test/requirements.txt), once, under a lock.
// - Free port picked by the kernel; server started under `setpriv --pdeathsig KILL`, so it dies
//   with the test process even when that is SIGKILLed.
// - Honours If-None-Match: * on PutObject and CompleteMultipartUpload (412 on an existing key);
//   proven by test/lab/moto.test.ts.
// - Does NOT enforce IAM policies unless `enforceIam: true` (moto's INITIAL_NO_AUTH_ACTION_COUNT;
//   it then evaluates identity policies only, with little support for condition keys).
// - Bucket policies: moto 5.2.5 applies a naive check on object GET/PUT/HEAD/DELETE that ignores
//   the Principal and answers Deny for ANY statement naming the action whose Condition does not
//   match (so pullvault's write-once policy would 403 everyone, the admin included). The lab
//   turns that check off (monkeypatch of FakeBucket.get_permission) unless
//   `motoBucketPolicyCheck: true`. Policy semantics come from the IAM simulator
//   (test/unit/aws-policies.test.ts) and the opt-in live AWS test.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from '../state.ts';

const VENV = join(REPO_ROOT, '.venv');
const MOTO_SERVER = join(VENV, 'bin', 'moto_server');

/** Any credentials work against moto when IAM is not enforced (the default). Account 123456789012. */
export const MOTO_CREDENTIALS = { accessKeyId: 'MOTOTESTADMINKEYID00', secretAccessKey: 'moto-test-admin-secret-not-real' } as const;
export const MOTO_ACCOUNT_ID = '123456789012';

export interface Moto {
  /** http://127.0.0.1:<port> — pass as `endpoint` to awsClients (path-style S3) */
  endpoint: string;
  port: number;
  /** stops the server (SIGTERM, then SIGKILL after 3 s); safe to call twice */
  stop(): Promise<void>;
  /** drops all of moto's state (buckets, users, …) without restarting */
  reset(): Promise<void>;
}

export interface StartMotoOptions {
  /**
   * Enforce IAM: requests after the first `noAuthActions` ones must be signed by a user moto
   * knows, and identity policies are evaluated (see moto's docs, "IAM-like Access Control").
   */
  enforceIam?: boolean;
  noAuthActions?: number;
  /** keep moto's own (unfaithful) bucket-policy check on object requests; off by default */
  motoBucketPolicyCheck?: boolean;
  /** extra environment for the server */
  env?: Record<string, string>;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

function runQuiet(argv: string[], cwd: string): Promise<void> {
  return new Promise((res, rej) => {
    const child = spawn(argv[0], argv.slice(1), { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    const err: Buffer[] = [];
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', rej);
    child.on('close', (code) =>
      code === 0 ? res() : rej(new Error(`${argv.join(' ')} exited ${code}: ${Buffer.concat(err).toString().trim().slice(-2000)}`)),
    );
  });
}

/** Creates .venv with moto when it is missing, like `make venv` (one process at a time). */
export async function ensureMotoVenv(): Promise<string> {
  const marker = join(VENV, '.installed');
  if (existsSync(marker) && existsSync(MOTO_SERVER)) return MOTO_SERVER;
  const lock = join(REPO_ROOT, '.venv.lock');
  const deadline = Date.now() + 600_000;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch {
      if (existsSync(marker) && existsSync(MOTO_SERVER)) return MOTO_SERVER;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock} (remove it if no install is running)`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    if (!(existsSync(marker) && existsSync(MOTO_SERVER))) {
      await runQuiet(['python3', '-m', 'venv', '.venv'], REPO_ROOT);
      await runQuiet([join(VENV, 'bin', 'pip'), 'install', '--quiet', '--disable-pip-version-check', '-r', 'test/requirements.txt'], REPO_ROOT);
      await writeFile(marker, '');
    }
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
  return MOTO_SERVER;
}

async function waitReady(endpoint: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`moto_server exited early (${child.exitCode ?? child.signalCode}): ${log()}`);
    try {
      const r = await fetch(`${endpoint}/moto-api/data.json`);
      await r.arrayBuffer();
      if (r.ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`moto_server did not answer on ${endpoint} within 30 s: ${log()}`);
}

// moto_server, with moto's unfaithful bucket-policy check on object requests switched off
const SERVER_PY = `
import sys
from moto.s3.models import FakeBucket
from moto.iam.access_control import PermissionResult
if sys.argv[1] == 'off':
    FakeBucket.get_permission = lambda self, action, resource: PermissionResult.NEUTRAL
from moto.server import main
sys.exit(main(sys.argv[2:]))
`;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Starts moto's server on 127.0.0.1 on a free port; call `stop()` in afterAll. */
export async function startMoto(opts: StartMotoOptions = {}): Promise<Moto> {
  const bin = await ensureMotoVenv();
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // belt and braces next to pdeathsig: a normal exit of the runner kills what is left
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LANG: 'C.UTF-8',
      HOME: process.env.HOME ?? '/root',
      MOTO_ALLOW_NONEXISTENT_REGION: 'true',
      ...(opts.enforceIam ? { INITIAL_NO_AUTH_ACTION_COUNT: String(opts.noAuthActions ?? 0) } : {}),
      ...opts.env,
    };
    const python = join(dirname(bin), 'python3');
    const check = opts.motoBucketPolicyCheck ? 'on' : 'off';
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', python, '-c', SERVER_PY, check, '-H', '127.0.0.1', '-p', String(port)], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    live.add(child);
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
    });
    const exited = new Promise<void>((r) => child.once('exit', () => (live.delete(child), r())));
    const stop = async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    };
    try {
      await waitReady(endpoint, child, () => stderr);
    } catch (e) {
      lastError = e;
      await stop();
      continue; // port taken in between, or a slow start: try again on another port
    }
    return {
      endpoint,
      port,
      stop,
      async reset() {
        const r = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
        await r.arrayBuffer();
        if (!r.ok) throw new Error(`moto reset: HTTP ${r.status}`);
      },
    };
  }
  throw lastError;
}
