#!/usr/bin/env node
// Executable entry of the Pi runtime (bundled into one file for Node 18).
import { main } from './cli.ts';

let settled = false;
// If the event loop ever drains with main() still pending (a bug: a promise waiting on a stream
// that will never end), say so instead of exiting silently — and never exit 0.
process.exitCode = 70;
process.on('beforeExit', () => {
  if (!settled) {
    settled = true;
    process.stderr.write('pullvault: internal error: the run stopped with work still pending (nothing left to wait for); exit 70\n');
  }
});
main(process.argv.slice(2)).then(
  (code) => {
    settled = true;
    process.exitCode = code;
  },
  (e: unknown) => {
    settled = true;
    process.stderr.write(`pullvault: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 70;
  },
);
