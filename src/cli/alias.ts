/** `fulmar alias add|remove|list`: addresses that forward to other addresses; `@domain` catches all. */
import type { Command } from 'commander';
import { addCommonOptions, allOptions, printTable, withServices, type CommonOptions } from './common.js';

export function registerAliasCommands(program: Command): void {
  const alias = program.command('alias').description('manage aliases (forwarding addresses and catch-alls)');

  addCommonOptions(
    alias
      .command('add')
      .argument('<address>', 'the alias, e.g. sales@example.com, or @example.com for a catch-all')
      .argument('<targets...>', 'one or more addresses, local or remote')
      .description('add an alias, or add targets to an existing one'),
  ).action(async (address: string, targets: string[], _o: unknown, cmd: Command) => {
    await withServices(allOptions<CommonOptions>(cmd), async ({ directory }) => {
      const a = await directory.addAlias(address, targets);
      process.stdout.write(`${a.address} -> ${a.targets.join(', ')}\n`);
    });
  });

  addCommonOptions(alias.command('remove').argument('<address>').description('remove an alias')).action(
    async (address: string, _o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ directory }) => {
        await directory.removeAlias(address);
        process.stdout.write(`removed alias ${address.toLowerCase()}\n`);
      });
    },
  );

  addCommonOptions(alias.command('list').description('list aliases')).action(async (_o: unknown, cmd: Command) => {
    await withServices(allOptions<CommonOptions>(cmd), async ({ directory }) => {
      const aliases = await directory.listAliases();
      if (aliases.length === 0) {
        process.stderr.write('no aliases; add one with: fulmar alias add sales@example.com joe@example.com\n');
        return;
      }
      printTable([['ALIAS', 'TARGETS'], ...aliases.map((a) => [a.address, a.targets.join(', ')])]);
    });
  });
}
