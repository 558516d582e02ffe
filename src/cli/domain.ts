/** `fulmar domain add|remove|list|set`: the domains this server receives mail for. */
import type { Command } from 'commander';
import { formatSize, parseSize } from '../util/size.js';
import { InvalidInput } from '../util/errors.js';
import { addCommonOptions, allOptions, printTable, withServices, type CommonOptions } from './common.js';

export function registerDomainCommands(program: Command): void {
  const domain = program.command('domain').description('manage the local domains (mail for them is delivered here)');

  addCommonOptions(domain.command('add').argument('<name>', 'domain name, e.g. example.com').description('add a local domain'))
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ directory }) => {
        const d = await directory.addDomain(name);
        process.stdout.write(`added domain ${d.name}\n`);
      });
    });

  addCommonOptions(
    domain
      .command('remove')
      .argument('<name>', 'domain name')
      .option('--force', 'also remove its accounts (with their mail) and aliases')
      .description('remove a local domain'),
  ).action(async (name: string, _o: unknown, cmd: Command) => {
    const opts = allOptions<CommonOptions & { force?: boolean }>(cmd);
    await withServices(opts, async ({ directory }) => {
      await directory.removeDomain(name, opts.force === true);
      process.stdout.write(`removed domain ${name.toLowerCase()}\n`);
    });
  });

  addCommonOptions(domain.command('list').description('list the local domains')).action(async (_o: unknown, cmd: Command) => {
    await withServices(allOptions<CommonOptions>(cmd), async ({ directory }) => {
      const domains = await directory.listDomains();
      if (domains.length === 0) {
        process.stderr.write('no domains yet; add one with: fulmar domain add example.com\n');
        return;
      }
      printTable([
        ['DOMAIN', 'MAX-MESSAGE-SIZE'],
        ...domains.map((d) => [d.name, d.maxMessageSize === null ? '-' : formatSize(d.maxMessageSize)]),
      ]);
    });
  });

  addCommonOptions(
    domain
      .command('set')
      .argument('<name>', 'domain name')
      .argument('<key>', 'setting: max-message-size')
      .argument('<value>', 'value, e.g. 10MB; 0 or "none" removes the domain limit')
      .description('change a per-domain setting'),
  ).action(async (name: string, key: string, value: string, _o: unknown, cmd: Command) => {
    await withServices(allOptions<CommonOptions>(cmd), async ({ directory }) => {
      if (key !== 'max-message-size') throw new InvalidInput(`unknown domain setting "${key}"; known: max-message-size`);
      const bytes = value === 'none' ? 0 : parseSize(value);
      if (bytes === null) throw new InvalidInput(`max-message-size takes a size such as 512KB, 10MB or 1GB (0 or none = no domain limit); got "${value}"`);
      await directory.setDomainMaxMessageSize(name, bytes === 0 ? null : bytes);
      process.stdout.write(`${name.toLowerCase()}: max-message-size ${bytes === 0 ? 'none (the global limit applies)' : formatSize(bytes)}\n`);
    });
  });
}
