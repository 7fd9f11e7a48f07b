// `make validate`: checks an inventory and prints every problem, one line each.
import { defineCommand } from './cli-common.ts';

const HELP = `usage: make validate [INVENTORY=inventory.json]

Checks the inventory against its schema and the rules between fields (duplicate names,
recipient key fingerprints, overlapping paths, …). Prints one line per problem, naming the
file and the field, and exits 2 when there is any.`;

export const command = defineCommand({
  help: HELP,
  options: {},
  inventory: true,
  async run({ loaded: { inventory, file } }) {
    console.log(`${file}: valid — pi ${inventory.pi.name}, ${inventory.servers.length} server(s), offsite ${inventory.offsite.type}, ${inventory.recipients.length} recipients`);
    return 0;
  },
});
