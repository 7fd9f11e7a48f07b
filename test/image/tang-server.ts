// A tang server for the boot tests, the real one (Debian's tang: /usr/libexec/tangd), reached by the
// guest through qemu's guestfwd=…-cmd: qemu runs tangd per connection with the TCP stream on its
// stdin/stdout (tangd speaks HTTP there, as under systemd's socket activation), so nothing listens
// on the machine's network.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../../lib/proc/index.ts';

export const TANGD = '/usr/libexec/tangd';
/** the address the guest dials (qemu user networking's 10.0.2.0/24, not the host's network) */
export const TANG_GUEST_URL = 'http://10.0.2.100';

export interface TangServer {
  db: string;
  /** SHA-256 JWK thumbprint of its signing key (what tang-show-keys prints) */
  thumbprint: string;
  /** its advertisement, as GET /adv returns it */
  advFile: string;
  /** the -nic guestfwd= option serving it at 10.0.2.100:80 */
  guestfwd: string;
  /** tangd's own log (one line per request: path and status) */
  logFile: string;
}

/** reuse: keep the keys already in dir (a card kept from an earlier run is bound to them). */
export async function makeTangServer(dir: string, opts: { reuse?: boolean } = {}): Promise<TangServer> {
  const db = path.join(dir, 'db');
  mkdirSync(db, { recursive: true, mode: 0o700 });
  if (!(opts.reuse && readdirSync(db).some((n) => n.endsWith('.jwk')))) await run(['/usr/libexec/tangd-keygen', db]);
  let thumbprint = '';
  for (const f of readdirSync(db).filter((n) => n.endsWith('.jwk'))) {
    const jwk = JSON.parse(readFileSync(path.join(db, f), 'utf8')) as { key_ops?: string[] };
    if (jwk.key_ops?.includes('verify')) thumbprint = (await run(['jose', 'jwk', 'thp', '-i', path.join(db, f)])).stdout.trim();
  }
  if (!thumbprint) throw new Error(`tangd-keygen made no signing key in ${db}`);
  const http = (await run([TANGD, db], { input: 'GET /adv HTTP/1.1\r\nHost: tang\r\n\r\n' })).stdout;
  const body = http.slice(http.indexOf('\r\n\r\n') + 4);
  JSON.parse(body);
  const advFile = path.join(dir, 'adv.jws');
  writeFileSync(advFile, body);
  // qemu runs the cmd with the connection on stdin, stdout AND stderr: tangd's log goes to a file
  // instead of into the HTTP answer, and one path with no spaces is what guestfwd=…-cmd: runs reliably
  const logFile = path.join(dir, 'tangd.log');
  const wrapper = path.join(dir, 'tangd.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${TANGD} '${db}' 2>>'${logFile}'\n`, { mode: 0o755 });
  return { db, thumbprint, advFile, guestfwd: `guestfwd=tcp:10.0.2.100:80-cmd:${wrapper}`, logFile };
}
