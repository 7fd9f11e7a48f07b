// Entry point behind the Makefile: `tsx provision/cli.ts <command> [args]`. Each command is a
// module exporting a `command` (provision/cli-common.ts: options, help, body); the frame there
// parses, loads the inventory, decides the state folder and the exit code.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from './cli-common.ts';
import { runCommand } from './cli-common.ts';

type Load = () => Promise<Command>;

const COMMANDS: Record<string, { load: Load; about: string }> = {
  validate: { load: async () => (await import('./validate.ts')).command, about: 'check inventory.json (or INVENTORY=…)' },
  'provision-aws': { load: async () => (await import('./aws.ts')).command, about: 'bucket, write-once policy, lifecycle, IAM user + access key for the Pi' },
  'provision-server': { load: async () => (await import('./server.ts')).command, about: 'backup user, groups, dump rights, pinned restricted key, on each server' },
  'provision-pi': { load: async () => (await import('./pi.ts')).command, about: 'encrypted SD card image + USB key image for the Pi' },
  'write-sd': { load: async () => (await import('./write-device.ts')).writeSdCommand, about: 'write the SD image to a card (DEVICE=…), with checks' },
  'write-usbkey': { load: async () => (await import('./write-device.ts')).writeUsbkeyCommand, about: 'write the USB key image to a stick (DEVICE=…), with checks' },
  'install-runtime': { load: async () => (await import('./runtime-install.ts')).command, about: 'install/update the runtime, config and cron on the Pi over SSH' },
  'recovery-kit': { load: async () => (await import('./recovery-kit.ts')).command, about: 'the page to print for the day every copy of a key is gone (state/recovery-kit/)' },
  demo: { load: async () => (await import('./demo.ts')).command, about: 'the whole system on this machine, in disposable lab hosts' },
};

function usage(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'usage: pullvault-provision <command> [--help] [options]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([c, { about }]) => `  ${c.padEnd(w)}  ${about}`),
    '',
    'exit codes: 0 ok, 1 failed, 2 usage or inventory error',
    'state folder: --state DIR, else $PULLVAULT_STATE, else state/ next to the inventory',
  ].join('\n');
}

/** Runs one provisioning command line (`provision-server --dry-run …`); returns its exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    (cmd ? console.log : console.error)(usage());
    return cmd ? 0 : 2;
  }
  const entry = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!entry) {
    console.error(`unknown command "${cmd}"\n\n${usage()}`);
    return 2;
  }
  return runCommand(await entry.load(), rest, cmd);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(`error: ${(e as Error).stack ?? e}`);
      process.exit(1);
    },
  );
}
