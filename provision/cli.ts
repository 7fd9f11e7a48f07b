// Entry point behind the Makefile: `tsx provision/cli.ts <command> [args]`.
// Each command lives in its own module exporting `main(argv): Promise<number>`.
const COMMANDS: Record<string, { module: string; about: string }> = {
  validate: { module: './validate.ts', about: 'check inventory.json (or INVENTORY=…)' },
  'provision-aws': { module: './aws.ts', about: 'bucket, write-once policy, lifecycle, IAM user + access key for the Pi' },
  'provision-server': { module: './server.ts', about: 'backup user, groups, dump rights, pinned restricted key, on each server' },
  'provision-pi': { module: './pi.ts', about: 'encrypted SD card image + USB key image for the Pi' },
  'write-sd': { module: './write-device.ts', about: 'write the SD image to a card (DEVICE=…), with checks' },
  'write-usbkey': { module: './write-device.ts', about: 'write the USB key image to a stick (DEVICE=…), with checks' },
  'install-runtime': { module: './runtime-install.ts', about: 'install/update the runtime, config and cron on the Pi over SSH' },
  'recovery-kit': { module: './recovery-kit.ts', about: 'the page to print for the day every copy of a key is gone (state/recovery-kit/)' },
  demo: { module: './demo.ts', about: 'the whole system on this machine, in disposable lab hosts' },
};

function usage(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return ['usage: pullvault-provision <command> [--help] [options]', '', 'commands:', ...Object.entries(COMMANDS).map(([c, { about }]) => `  ${c.padEnd(w)}  ${about}`)].join('\n');
}

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return cmd ? 0 : 2;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    console.error(`unknown command "${cmd}"\n\n${usage()}`);
    return 2;
  }
  const mod: { main: (argv: string[], cmd: string) => Promise<number> } = await import(entry.module);
  return mod.main(rest, cmd);
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`error: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
