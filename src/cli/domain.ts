/** `fulmar domain add|remove|list|set`: the domains this server receives mail for. */
import type { Command } from 'commander';
import { checkSelector, defaultSelector, dkimDnsRecord, generateDkimKey, parseKeyType } from '../filters/dkim-keys.js';
import { formatSize, parseSize } from '../util/size.js';
import { InvalidInput, NotFound } from '../util/errors.js';
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

  addCommonOptions(
    domain
      .command('dkim')
      .argument('<name>', 'domain name')
      .option('--selector <selector>', 'DNS selector of the key (default fulmar + year and month, e.g. fulmar202611)')
      .option('--algorithm <algorithm>', 'rsa (RSA 2048, the default) or ed25519')
      .option('--show', 'print the DNS record of the current key instead of making a new one')
      .option('--force', 'replace the key the domain already has')
      .description('create the DKIM signing key of a domain and print the DNS TXT record to publish'),
  ).action(async (name: string, _o: unknown, cmd: Command) => {
    const opts = allOptions<CommonOptions & { selector?: string; algorithm?: string; show?: boolean; force?: boolean }>(cmd);
    await withServices(opts, async ({ directory }) => {
      const d = await directory.getDomain(name);
      if (!d) throw new NotFound(`${name.toLowerCase()} is not a local domain; add it with: fulmar domain add ${name.toLowerCase()}`);
      const current = await directory.getDkimKey(d.name);
      if (opts.show) {
        if (opts.selector !== undefined || opts.algorithm !== undefined || opts.force) throw new InvalidInput('--show takes no other option');
        if (!current) throw new NotFound(`${d.name} has no DKIM key yet; create one with: fulmar domain dkim ${d.name}`);
        process.stdout.write(`${dkimDnsRecord(d.name, current)}\n`);
        return;
      }
      if (current && !opts.force) {
        throw new InvalidInput(
          `${d.name} already has a DKIM key (selector ${current.selector}, created ${current.createdAt.toISOString().slice(0, 10)}); ` +
            `print its record with: fulmar domain dkim ${d.name} --show, or replace it with --force (use a new --selector and publish its record first)`,
        );
      }
      const type = parseKeyType(opts.algorithm ?? 'rsa');
      const selector = checkSelector(opts.selector ?? defaultSelector());
      const key = generateDkimKey(type, selector);
      await directory.setDkimKey(d.name, key);
      process.stderr.write(
        `${current ? 'replaced the' : 'created a'} ${type === 'rsa' ? 'RSA 2048' : 'Ed25519'} DKIM key for ${d.name} (selector ${selector}); ` +
          `outgoing mail from ${d.name} is signed with it. Publish this record in the DNS:\n`,
      );
      process.stdout.write(`${dkimDnsRecord(d.name, key)}\n`);
    });
  });
}
