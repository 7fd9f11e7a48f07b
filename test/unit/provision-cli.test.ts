// The provisioning commands' one frame (provision/cli.ts + cli-common.ts): every command answers
// --help; usage and inventory errors exit 2 for every command (provision-pi and write-sd too);
// and the state folder follows one rule — --state, else $PULLVAULT_STATE, else state/ next to the
// inventory — so with an inventory outside the repo, provision-server finds the Pi's key that
// provision-pi put there, and write-sd the image.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { run } from '../../lib/proc/index.ts';
import { main } from '../../provision/cli.ts';
import { REPO_ROOT, stateDirFor } from '../../provision/state.ts';

const COMMANDS = ['validate', 'provision-aws', 'provision-server', 'provision-pi', 'write-sd', 'write-usbkey', 'install-runtime', 'recovery-kit', 'demo'];

/** main(argv) with console and stderr captured */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void (out += a.join(' ') + '\n'));
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void (err += a.join(' ') + '\n'));
  const w = vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((err += String(c)), true));
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c) => ((out += String(c)), true));
  try {
    return { code: await main(argv), out, err };
  } finally {
    [log, error, w, o].forEach((s) => s.mockRestore());
  }
}

let dir: string;
let inventory: string;
let closedPort: number;
const savedState = process.env.PULLVAULT_STATE;

beforeAll(async () => {
  delete process.env.PULLVAULT_STATE;
  // an inventory outside the repo: the example's, its servers pointed at a port nobody listens on
  dir = mkdtempSync(join(tmpdir(), 'pv-provision-cli-'));
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  closedPort = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  const inv = JSON.parse(readFileSync(join(REPO_ROOT, 'inventory.json'), 'utf8'));
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'admin', '-f', join(dir, 'admin_key')]);
  for (const s of inv.servers) Object.assign(s.ssh, { host: '127.0.0.1', port: closedPort, adminKeyFile: 'admin_key' });
  cpSync(join(REPO_ROOT, 'keys'), join(dir, 'keys'), { recursive: true });
  inventory = join(dir, 'inventory.json');
  writeFileSync(inventory, JSON.stringify(inv));
});

afterAll(() => {
  if (savedState !== undefined) process.env.PULLVAULT_STATE = savedState;
  rmSync(dir, { recursive: true, force: true });
});

describe('provisioning CLI frame', () => {
  it('--help of the entry and of every command exits 0; no command or an unknown one exits 2', async () => {
    const top = await cli('--help');
    expect(top.code).toBe(0);
    for (const c of COMMANDS) expect(top.out).toContain(`  ${c} `);
    expect(top.out).toMatch(/exit codes: 0 ok, 1 failed, 2 usage or inventory error/);
    for (const c of COMMANDS) {
      const r = await cli(c, '--help');
      expect(r.code, c).toBe(0);
      expect(r.out, c).toMatch(/usage:/);
    }
    expect((await cli()).code).toBe(2);
    expect((await cli('frobnicate')).code).toBe(2);
  });

  it('a bad inventory exits 2 from every command that reads one, with the file and field', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...JSON.parse(readFileSync(inventory, 'utf8')), servers: [] }));
    for (const c of ['validate', 'provision-aws', 'provision-server', 'provision-pi', 'write-sd', 'write-usbkey', 'install-runtime', 'recovery-kit']) {
      const r = await cli(c, '--inventory', bad, ...(c.startsWith('write-') ? ['--device', '/dev/null'] : []));
      expect(r.code, `${c}: ${r.err}`).toBe(2);
      expect(r.err, c).toMatch(/bad\.json: servers/);
    }
  });

  it('an unknown option or a missing device is a usage error (2)', async () => {
    const r = await cli('provision-pi', '--inventory', inventory, '--frobnicate');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^provision-pi: usage error: Unknown option '--frobnicate'/);
    expect((await cli('validate', '--inventory', inventory, 'extra')).code).toBe(2);
    const noDevice = await cli('write-sd', '--inventory', inventory);
    expect(noDevice.code).toBe(2);
    expect(noDevice.err).toMatch(/--device is required/);
  });

  it('the state folder: --state, else $PULLVAULT_STATE, else state/ next to the inventory', () => {
    expect(stateDirFor('/x/y')).toBe('/x/y/state');
    expect(stateDirFor('/x/y', 'rel')).toBe(join(process.cwd(), 'rel'));
    process.env.PULLVAULT_STATE = '/from/env';
    try {
      expect(stateDirFor('/x/y')).toBe('/from/env');
      expect(stateDirFor('/x/y', '/given')).toBe('/given');
    } finally {
      delete process.env.PULLVAULT_STATE;
    }
  });

  it('with an inventory outside the repo, provision-server reads the Pi key from state/ next to it, and write-sd the image', async () => {
    const keyFile = join(dir, 'state', 'pi01', 'pi_ssh_key.pub');
    const missing = await cli('provision-server', '--inventory', inventory, '--dry-run');
    expect(missing.code).toBe(1);
    expect(missing.err).toContain(`no Pi public key at ${keyFile}`);
    mkdirSync(join(dir, 'state', 'pi01'), { recursive: true });
    writeFileSync(keyFile, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJcNr5V3zp0OnhjbNC1892KaG24ttX16frQCfNpG5Gjn pi01\n');
    // found: it goes on to each server (refused here: nobody listens on the port)
    const found = await cli('provision-server', '--inventory', inventory, '--dry-run');
    expect(found.err).not.toMatch(/no Pi public key/);
    expect(found.err).toMatch(new RegExp(`127\\.0\\.0\\.1:${closedPort}.*ECONNREFUSED`));
    expect(found.code).toBe(1);
    // --state elsewhere is where it looks then
    const other = join(dir, 'other-state');
    expect((await cli('provision-server', '--inventory', inventory, '--state', other, '--dry-run')).err).toContain(`no Pi public key at ${join(other, 'pi01', 'pi_ssh_key.pub')}`);
    const sd = await cli('write-sd', '--inventory', inventory, '--device', '/dev/null');
    expect(sd.code).toBe(1);
    expect(sd.err).toContain(`${join(dir, 'state', 'pi01', 'sdcard.img')} does not exist`);
  });
});
