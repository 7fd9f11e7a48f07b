// `make validate`: checks an inventory and prints every problem, one line each.
import { commonOptions, loadOrExplain, parseCommandArgs, runCommand } from './cli-common.ts';

const HELP = `usage: make validate [INVENTORY=inventory.json]

Checks the inventory against its schema and the rules between fields (duplicate names,
recipient key fingerprints, overlapping paths, …). Prints one line per problem, naming the
file and the field, and exits 2 when there is any.`;

export async function main(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values } = parseCommandArgs(argv, { inventory: commonOptions.inventory, help: commonOptions.help });
    if (values.help) return (console.log(HELP), 0);
    const { inventory, file } = await loadOrExplain(values.inventory!);
    console.log(`${file}: valid — pi ${inventory.pi.name}, ${inventory.servers.length} server(s), offsite ${inventory.offsite.type}, ${inventory.recipients.length} recipients`);
    return 0;
  });
}
