/** Entry point of the `fulmar` command. */
import { Command } from 'commander';
import { registerAliasCommands } from './cli/alias.js';
import { registerCollectCommands } from './cli/collect.js';
import { registerDomainCommands } from './cli/domain.js';
import { registerMigrateCommand } from './cli/migrate.js';
import { registerQueueCommands } from './cli/queue.js';
import { registerSettingsCommands } from './cli/settings.js';
import { registerStartCommand } from './cli/start.js';
import { registerUserCommands } from './cli/user.js';

const program = new Command();
program
  .name('fulmar')
  .description('Fulmar: an all-in-one mail server (SMTP, submission, POP3, IMAP, DomainPOP/MultiPOP) on an embedded store or PostgreSQL')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (text, write) => write(`fulmar: ${text.replace(/^error: /, '')}`) });

registerStartCommand(program);
registerDomainCommands(program);
registerUserCommands(program);
registerAliasCommands(program);
registerQueueCommands(program);
registerCollectCommands(program);
registerMigrateCommand(program);
registerSettingsCommands(program);

program.addHelpText(
  'after',
  `
Examples:
  fulmar start --port-offset 10000         run with SMTP on 10025, submission on 10587, ...
  fulmar domain add example.com
  fulmar user add joe@example.com --password secret --quota 1GB
  fulmar alias add sales@example.com joe@example.com ann@example.org
  fulmar settings set smtp.max_message_size 20MB
  fulmar queue list                        mail waiting for other servers, with the last error
  fulmar collect domainpop add isp --domain example.com --host pop.isp.net --user catchall --password pw --envelope-header X-Rcpt-To
  fulmar collect run                       collect from every DomainPOP/MultiPOP source now
  fulmar migrate --to postgres://db/fulmar copy this site into PostgreSQL (then set database = ... in the config)

Every command takes --data DIR (default ./data), --config FILE (default ./fulmar.toml) and
--database URL (default the embedded store; postgres://... to run on PostgreSQL).`,
);

await program.parseAsync(process.argv);
