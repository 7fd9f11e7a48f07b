// `make recovery-kit`: the page to print and put in a drawer (state/recovery-kit/). See provision/recovery-kit/.
import path from 'node:path';
import { defineCommand } from './cli-common.ts';
import { gatherKit, generatedKeysDir, KitError } from './recovery-kit/gather.ts';
import { kitContents } from './recovery-kit/kit.ts';
import { renderKit } from './recovery-kit/render.ts';
import { recoveryKitDir, writeKit } from './recovery-kit/write.ts';

const HELP = `usage: make recovery-kit [INVENTORY=inventory.json] [ARGS="…"]

Writes <state>/recovery-kit/recovery-kit.html and recovery-kit.pdf (folder 0700, files 0600):
everything needed to get the backups back when this computer, the Pi and its USB stick are
all gone. Print the PDF, keep it safe, and make a new one after a key or credential changes.

  where           bucket, region, prefix (or folder), the chain layout, the servers
  credentials     the read-only restore user's access key (<state>/aws/restore-credentials.json), SECRET
  LUKS            the Pi's root recovery passphrase (<state>/<pi>/), how to use it, SECRET
  recipients      every recipient's fingerprint
  secret keys     for each key in <state>/openpgp/*.secret.asc and each --secret-key: paperkey's
                  text form and QR codes (split n/m), with the script that rebuilds the key, SECRET
  procedure       docs/restore-by-hand.md: restore with gpg, zstd, tar and patch only

It needs paperkey (with secret keys) and Chromium (for the PDF). Nothing secret is printed.

options:
  -i, --inventory FILE     the inventory (default inventory.json, or $INVENTORY)
  -n, --dry-run            list what would go in (no secret values); write nothing
      --secret-key FILE    a recipient's secret key (armored or binary export), repeatable
      --no-credentials     leave the restore user's credentials out
      --state DIR          the state folder (default $PULLVAULT_STATE, else state/ next to the inventory)
  -h, --help               this text`;

export const command = defineCommand({
  help: HELP,
  options: {
    'secret-key': { type: 'string', multiple: true, default: [] },
    'no-credentials': { type: 'boolean', default: false },
  },
  inventory: true,
  dryRun: true,
  async run({ values, dryRun, loaded, state }) {
    try {
      const kit = await gatherKit(loaded, { stateDir: state, secretKeyFiles: values['secret-key'] ?? [], noCredentials: values['no-credentials'] });
      const dir = recoveryKitDir(state);
      if (dryRun) {
        console.log(`recovery kit (dry run): would write ${path.join(dir, 'recovery-kit.{html,pdf}')} with`);
        for (const l of kitContents(kit)) console.log(`  ${l}`);
        console.log(`(secret keys pullvault generated are read from ${generatedKeysDir(state)})`);
        return 0;
      }
      const out = await writeKit(dir, renderKit(kit));
      for (const l of kitContents(kit)) console.log(`  ${l}`);
      console.log(`recovery kit: ${out.pdf} (print it) and ${out.html}; both 0600 in a 0700 folder`);
      return 0;
    } catch (e) {
      if (e instanceof KitError) {
        process.stderr.write(`recovery-kit: ${e.message}\n`);
        return 1;
      }
      throw e;
    }
  },
});
