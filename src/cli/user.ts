/** `fulmar user add|remove|list|passwd`: the accounts (mailboxes) of the local domains. */
import type { Command } from 'commander';
import { formatSize, parseSize } from '../util/size.js';
import { InvalidInput } from '../util/errors.js';
import { addCommonOptions, allOptions, printTable, withServices, type CommonOptions } from './common.js';

function parseQuota(text: string | undefined): number | null {
  if (text === undefined) return null;
  const v = parseSize(text);
  if (v === null) throw new InvalidInput(`--quota takes a size such as 500MB or 2GB (0 = unlimited); got "${text}"`);
  return v === 0 ? null : v;
}

export function registerUserCommands(program: Command): void {
  const user = program.command('user').description('manage accounts (each has a mailbox and a password)');

  addCommonOptions(
    user
      .command('add')
      .argument('<address>', 'the account address, e.g. joe@example.com (its domain must exist)')
      .requiredOption('--password <pw>', 'the password')
      .option('--quota <size>', 'mailbox quota, e.g. 500MB (default unlimited)')
      .option('--name <real-name>', 'real name')
      .description('add an account with Inbox, Sent, Drafts, Trash, Junk and Archive folders'),
  ).action(async (address: string, _o: unknown, cmd: Command) => {
    const opts = allOptions<CommonOptions & { password: string; quota?: string; name?: string }>(cmd);
    await withServices(opts, async ({ directory }) => {
      const a = await directory.addUser(address, opts.password, { quotaBytes: parseQuota(opts.quota), realName: opts.name ?? null });
      process.stdout.write(`added user ${a.address}${a.quotaBytes === null ? '' : ` (quota ${formatSize(a.quotaBytes)})`}\n`);
    });
  });

  addCommonOptions(user.command('remove').argument('<address>').description('remove an account and all its mail')).action(
    async (address: string, _o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ directory }) => {
        await directory.removeUser(address);
        process.stdout.write(`removed user ${address.toLowerCase()}\n`);
      });
    },
  );

  addCommonOptions(user.command('list').argument('[domain]', 'only this domain').description('list accounts')).action(
    async (domain: string | undefined, _o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ directory }) => {
        const users = await directory.listUsers(domain);
        if (users.length === 0) {
          process.stderr.write('no accounts; add one with: fulmar user add joe@example.com --password ...\n');
          return;
        }
        printTable([
          ['ADDRESS', 'QUOTA', 'USED'],
          ...users.map((u) => [u.address, u.quotaBytes === null ? 'unlimited' : formatSize(u.quotaBytes), formatSize(u.usedBytes)]),
        ]);
      });
    },
  );

  addCommonOptions(
    user.command('passwd').argument('<address>').requiredOption('--password <pw>', 'the new password').description("change an account's password"),
  ).action(async (address: string, _o: unknown, cmd: Command) => {
    const opts = allOptions<CommonOptions & { password: string }>(cmd);
    await withServices(opts, async ({ directory }) => {
      await directory.setPassword(address, opts.password);
      process.stdout.write(`password changed for ${address.toLowerCase()}\n`);
    });
  });

  addCommonOptions(
    user
      .command('apop')
      .argument('<address>')
      .option('--secret <secret>', 'the APOP secret (kept in clear, as APOP requires; not the password)')
      .option('--off', 'turn APOP off for the account')
      .description('set or remove the POP3 APOP secret of an account (APOP also needs: settings set pop3.apop true)'),
  ).action(async (address: string, _o: unknown, cmd: Command) => {
    const opts = allOptions<CommonOptions & { secret?: string; off?: boolean }>(cmd);
    await withServices(opts, async ({ directory }) => {
      if ((opts.secret === undefined) === (opts.off !== true)) throw new InvalidInput('give either --secret SECRET or --off');
      await directory.setApopSecret(address, opts.off ? null : opts.secret!);
      process.stdout.write(`APOP ${opts.off ? 'off' : 'secret set'} for ${address.toLowerCase()}\n`);
    });
  });

  addCommonOptions(
    user.command('quota').argument('<address>').argument('<size>', 'e.g. 1GB; 0 = unlimited').description("change an account's quota"),
  ).action(async (address: string, size: string, _o: unknown, cmd: Command) => {
    await withServices(allOptions<CommonOptions>(cmd), async ({ directory }) => {
      const q = parseQuota(size);
      await directory.setQuota(address, q);
      process.stdout.write(`quota of ${address.toLowerCase()}: ${q === null ? 'unlimited' : formatSize(q)}\n`);
    });
  });

  addCommonOptions(
    user
      .command('sendas')
      .argument('<address>', 'the account')
      .argument('[patterns...]', 'addresses it may also send as (bob@example.com), or @domain for a whole domain')
      .option('--clear', 'remove every extra sender address')
      .description(
        'set the extra sender addresses (MAIL FROM) an account may use on submission, beyond its own and its aliases; without patterns, show them',
      ),
  ).action(async (address: string, patterns: string[], _o: unknown, cmd: Command) => {
    const opts = allOptions<CommonOptions & { clear?: boolean }>(cmd);
    await withServices(opts, async ({ directory }) => {
      const account = await directory.getUser(address);
      if (!account) throw new InvalidInput(`no account ${address.toLowerCase()}; add it with: fulmar user add ${address.toLowerCase()} --password ...`);
      if (opts.clear && patterns.length > 0) throw new InvalidInput('give either patterns or --clear, not both');
      if (!opts.clear && patterns.length === 0) {
        process.stdout.write(
          account.sendAs.length === 0
            ? `${account.address} sends only as itself and its aliases (add more with: fulmar user sendas ${account.address} @example.com)\n`
            : `${account.address} may also send as: ${account.sendAs.join(' ')}\n`,
        );
        return;
      }
      await directory.setSendAs(account.address, opts.clear ? [] : patterns);
      const updated = await directory.getUser(account.address);
      const list = updated?.sendAs ?? [];
      process.stdout.write(
        list.length === 0 ? `${account.address}: no extra sender addresses\n` : `${account.address} may also send as: ${list.join(' ')}\n`,
      );
    });
  });
}
