#!/usr/bin/env node
// Executable entry of the Pi runtime (bundled into one file for Node 18).
import { main } from './cli.ts';

// If the event loop ever drained with main() still pending (a bug), do not exit 0.
process.exitCode = 70;
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`pullvault: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 70;
  },
);
