/**
 * `fulmar collect ...`: DomainPOP and MultiPOP sources (remote POP3 mailboxes whose mail is
 * collected and delivered here), running a collection now, and each source's status.
 */
import { Command, Option } from 'commander';
import { z } from 'zod';
import { collectAll, collectClock } from '../collect/schedule.js';
import { collectorOwner, type SourceReport } from '../collect/collector.js';
import {
  defaultPort,
  describeRemote,
  domainPopSchema,
  parseDomainPopConfig,
  parseRemoteMailboxConfig,
  remoteMailboxSchema,
  type DomainPopConfig,
} from '../collect/source-config.js';
import { createLogger, silentLogger } from '../log/logger.js';
import type { CollectSource } from '../store/types.js';
import { parseSize } from '../util/size.js';
import { addCommonOptions, allOptions, fail, printTable, withServices, type CommonOptions } from './common.js';

interface SourceOptions extends CommonOptions {
  domain?: string;
  host?: string;
  port?: string;
  tls?: string;
  insecure?: boolean;
  user?: string;
  password?: string;
  apop?: boolean;
  mode?: string;
  envelopeHeader?: string;
  stripPrefix?: string;
  headers?: string;
  received?: boolean;
  skipReceived?: string;
  stopAtLocal?: boolean;
  subjectParens?: boolean;
  nameMatching?: boolean;
  foreign?: string;
  unknown?: string;
  dedupe?: string;
  leaveOnServer?: boolean;
  deleteAfterDays?: string;
  maxDownloadSize?: string;
  deleteLarge?: boolean;
  warnPostmaster?: boolean;
  smallFirst?: boolean;
  archive?: string;
  enable?: boolean;
  verbose?: boolean;
}

/** A boolean option with its --no- form, so `set` can turn it off again. */
function flag(cmd: Command, name: string, description: string): void {
  cmd.addOption(new Option(`--${name}`, description));
  cmd.addOption(new Option(`--no-${name}`).hideHelp());
}

function addRemoteOptions(cmd: Command, required: boolean): Command {
  cmd
    .option(`--host <host>`, `the POP3 server${required ? ' (required)' : ''}`)
    .option('--port <port>', 'its port (default 110, or 995 with --tls implicit)')
    .addOption(new Option('--tls <mode>', 'none, starttls (STLS) or implicit (POP3S, port 995)').choices(['none', 'starttls', 'implicit']))
    .option('--user <login>', `the login on that server${required ? ' (required)' : ''}`)
    .option('--password <password>', `its password${required ? ' (required)' : ''}; kept in the store, never logged`);
  flag(cmd, 'insecure', 'accept a certificate that does not verify (a self-signed ISP server)');
  flag(cmd, 'leave-on-server', 'leave collected mail on the server (it is never collected twice)');
  cmd.option('--delete-after-days <n>', 'with --leave-on-server: delete collected mail this many days old (0 = never)');
  cmd.option('--max-download-size <size>', 'do not download messages of at least this size, e.g. 10MB (0 = no limit)');
  flag(cmd, 'delete-large', 'delete messages over the size limit from the server');
  flag(cmd, 'warn-postmaster', 'tell the postmaster (once per message) about messages over the size limit');
  flag(cmd, 'small-first', 'download small messages before large ones');
  return cmd;
}

function addDomainPopOptions(cmd: Command, required: boolean): Command {
  cmd.option('--domain <domain>', `the local domain whose mail the mailbox holds${required ? ' (required)' : ''}`);
  addRemoteOptions(cmd, required);
  flag(cmd, 'apop', 'log in with APOP instead of sending the password');
  cmd
    .addOption(new Option('--mode <mode>', 'envelope: one header names the recipient (recommended); headers: read To, Cc, ...').choices(['envelope', 'headers']))
    .option('--envelope-header <header[:n]>', 'envelope mode: the header naming the recipient and which occurrence from the top, e.g. Delivered-To:1')
    .option('--strip-prefix <prefix>', 'envelope mode: a prefix to strip from the local part (qmail virtual domains)')
    .option('--headers <list>', 'headers mode: the headers to read, comma-separated (default To,Cc,X-Rcpt-To,X-MDRcpt-To,X-Delivered-To)');
  flag(cmd, 'received', 'headers mode: also read the "for <address>" of Received lines');
  cmd.option('--skip-received <n>', 'skip the first n Received lines');
  flag(cmd, 'stop-at-local', 'stop reading Received lines at the first that names a local address');
  flag(cmd, 'subject-parens', 'headers mode: also take an address in parentheses in the Subject');
  flag(cmd, 'name-matching', 'deliver "Real Name" <any@address> to the account with that real name');
  cmd
    .addOption(new Option('--foreign <policy>', 'addresses outside our domains: ignore, postmaster (one summary copy) or relay').choices(['ignore', 'postmaster', 'relay']))
    .addOption(new Option('--unknown <policy>', 'a local-domain address without a mailbox: postmaster or drop').choices(['postmaster', 'drop']))
    .addOption(new Option('--dedupe <header>', 'remove copies of one message by this header: Message-ID, Date or off').choices(['Message-ID', 'Date', 'off']))
    .option('--archive <mailbox>', 'keep a raw copy of every downloaded message: a local address (user@domain[/Folder]) or an absolute folder path; "none" to stop');
  return cmd;
}

function int(text: string, what: string): number {
  if (!/^\d+$/.test(text)) fail(`${what} must be a whole number, not "${text}"`);
  return Number(text);
}

/** The remote-mailbox fields the options give (only those given). */
function remotePatch(o: SourceOptions): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  if (o.host !== undefined) patch['host'] = o.host;
  if (o.tls !== undefined) patch['tls'] = o.tls;
  if (o.port !== undefined) patch['port'] = int(o.port, '--port');
  if (o.user !== undefined) patch['user'] = o.user;
  if (o.password !== undefined) patch['password'] = o.password;
  if (o.insecure !== undefined) patch['insecure'] = o.insecure;
  if (o.apop !== undefined) patch['apop'] = o.apop;
  if (o.leaveOnServer !== undefined) patch['leaveOnServer'] = o.leaveOnServer;
  if (o.deleteAfterDays !== undefined) patch['deleteAfterDays'] = int(o.deleteAfterDays, '--delete-after-days');
  if (o.maxDownloadSize !== undefined) {
    const size = parseSize(o.maxDownloadSize);
    if (size === null) fail(`--max-download-size "${o.maxDownloadSize}" is not a size; write e.g. 512KB or 10MB`);
    patch['maxDownloadSize'] = size;
  }
  if (o.deleteLarge !== undefined) patch['deleteLarge'] = o.deleteLarge;
  if (o.warnPostmaster !== undefined) patch['warnPostmaster'] = o.warnPostmaster;
  if (o.smallFirst !== undefined) patch['smallFirst'] = o.smallFirst;
  return patch;
}

function domainPopPatch(o: SourceOptions): Record<string, unknown> {
  const patch = remotePatch(o);
  if (o.domain !== undefined) patch['domain'] = o.domain.toLowerCase();
  if (o.envelopeHeader !== undefined) {
    const m = /^([^:\s]+)(?::(\d+))?$/.exec(o.envelopeHeader);
    if (!m) fail(`--envelope-header "${o.envelopeHeader}" should be HEADER or HEADER:N, e.g. Delivered-To:1`);
    patch['envelopeHeader'] = m[1];
    if (m[2] !== undefined && Number(m[2]) < 1) fail(`--envelope-header ${o.envelopeHeader}: occurrences count from 1 (the topmost)`);
    patch['envelopeOccurrence'] = m[2] ? Number(m[2]) : 1;
  }
  if (o.mode !== undefined) patch['mode'] = o.mode;
  if (o.stripPrefix !== undefined) patch['stripPrefix'] = o.stripPrefix === '' ? null : o.stripPrefix;
  if (o.headers !== undefined) patch['headers'] = o.headers.split(',').map((h) => h.trim()).filter(Boolean);
  if (o.received !== undefined) patch['received'] = o.received;
  if (o.skipReceived !== undefined) patch['skipReceived'] = int(o.skipReceived, '--skip-received');
  if (o.stopAtLocal !== undefined) patch['stopAtLocal'] = o.stopAtLocal;
  if (o.subjectParens !== undefined) patch['subjectParens'] = o.subjectParens;
  if (o.nameMatching !== undefined) patch['nameMatching'] = o.nameMatching;
  if (o.foreign !== undefined) patch['foreign'] = o.foreign;
  if (o.unknown !== undefined) patch['unknown'] = o.unknown;
  if (o.dedupe !== undefined) patch['dedupe'] = o.dedupe;
  if (o.archive !== undefined) patch['archive'] = o.archive === '' || o.archive === 'none' ? null : o.archive;
  return patch;
}

/** Checks a config against its schema; a failure names the option to fix. */
function validated<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const field = issue.path.join('.').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    fail(`--${field}: ${issue.message}`);
  }
  return result.data;
}

function checkDomainPop(config: DomainPopConfig): void {
  if (config.dedupe === 'Date') {
    process.stderr.write('warning: --dedupe Date treats distinct messages sent in the same second as copies of one, and delivers only the first; prefer Message-ID\n');
  }
  if (config.mode === 'headers' && config.envelopeHeader) {
    process.stderr.write('note: --envelope-header is used only in envelope mode\n');
  }
}

export function registerCollectCommands(program: Command): void {
  const collect = program
    .command('collect')
    .description('collect mail from remote POP3 mailboxes: DomainPOP (a whole domain) and MultiPOP (per account)');

  const domainpop = collect.command('domainpop').description("a domain's catch-all mailbox at an ISP, shared out to local users by its headers");

  addCommonOptions(addDomainPopOptions(domainpop.command('add').argument('<name>').description('add a DomainPOP source (extra hosts are extra sources)'), true)).action(
    async (name: string, _o: unknown, cmd: Command) => {
      const o = allOptions<SourceOptions>(cmd);
      for (const required of ['domain', 'host', 'user', 'password'] as const) {
        if (o[required] === undefined) fail(`--${required} is required`);
      }
      const patch = domainPopPatch(o);
      const tls = (patch['tls'] as DomainPopConfig['tls'] | undefined) ?? 'none';
      const config = validated(domainPopSchema, {
        tls,
        port: defaultPort(tls),
        mode: o.envelopeHeader ? 'envelope' : 'headers',
        ...patch,
      });
      if (config.mode === 'envelope' && !config.envelopeHeader) fail('envelope mode needs --envelope-header, e.g. X-Rcpt-To or Delivered-To:1');
      checkDomainPop(config);
      await withServices(o, async ({ store, directory }) => {
        if (!(await directory.getDomain(config.domain))) fail(`${config.domain} is not a local domain; add it first with fulmar domain add ${config.domain}`);
        await store.collect.addSource('domainpop', name, null, JSON.stringify(config));
        process.stdout.write(`added DomainPOP source ${name}: ${describeDomainPop(config)}\n`);
      });
    },
  );

  const set = addDomainPopOptions(domainpop.command('set').argument('<name>').description('change a DomainPOP source (same options as add)'), false);
  set.option('--enable', 'collect this source').option('--disable', 'stop collecting this source');
  addCommonOptions(set).action(async (name: string, _o: unknown, cmd: Command) => {
    const o = allOptions<SourceOptions & { disable?: boolean }>(cmd);
    await withServices(o, async ({ store }) => {
      const source = await findSource(store.collect.listSources('domainpop'), name);
      const config = validated(domainPopSchema, { ...parseDomainPopConfig(source.config), ...domainPopPatch(o) });
      if (config.mode === 'envelope' && !config.envelopeHeader) fail('envelope mode needs --envelope-header');
      checkDomainPop(config);
      const enabled = o.disable ? false : o.enable ? true : source.enabled;
      await store.collect.updateSource(source.id, JSON.stringify(config), enabled);
      process.stdout.write(`DomainPOP source ${name}${enabled ? '' : ' (disabled)'}: ${describeDomainPop(config)}\n`);
    });
  });

  addCommonOptions(domainpop.command('list').description('list DomainPOP sources (passwords are not shown)')).action(async (_o: unknown, cmd: Command) => {
    await withServices(allOptions<CommonOptions>(cmd), async ({ store }) => {
      const sources = await store.collect.listSources('domainpop');
      if (sources.length === 0) process.stderr.write('no DomainPOP sources; add one with fulmar collect domainpop add\n');
      for (const s of sources) {
        process.stdout.write(`${s.name}${s.enabled ? '' : ' (disabled)'}: ${describeDomainPop(parseDomainPopConfig(s.config))}\n`);
      }
    });
  });

  addCommonOptions(domainpop.command('remove').argument('<name>').description('remove a DomainPOP source and what it remembers')).action(
    async (name: string, _o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ store }) => {
        const source = await findSource(store.collect.listSources('domainpop'), name);
        await store.collect.removeSource(source.id);
        process.stdout.write(`removed DomainPOP source ${name}\n`);
      });
    },
  );

  const multipop = collect.command('multipop').description("a user's own mailboxes elsewhere, collected into their account");
  const mpAdd = addRemoteOptions(multipop.command('add').argument('<address>').description('add a remote mailbox to an account'), true);
  flag(mpAdd, 'apop', 'log in with APOP instead of sending the password');
  addCommonOptions(mpAdd).action(async (address: string, _o: unknown, cmd: Command) => {
    const o = allOptions<SourceOptions>(cmd);
    for (const required of ['host', 'user', 'password'] as const) if (o[required] === undefined) fail(`--${required} is required`);
    const patch = remotePatch(o);
    const tls = (patch['tls'] as DomainPopConfig['tls'] | undefined) ?? 'none';
    const config = validated(remoteMailboxSchema, { tls, port: defaultPort(tls), ...patch });
    await withServices(o, async ({ store, directory, settings }) => {
      const account = await directory.getUser(address);
      if (!account) fail(`no account ${address}; add it with fulmar user add ${address}`);
      const source = await store.collect.addSource('multipop', `${account.address}/${config.user}@${config.host}`, account.id, JSON.stringify(config));
      process.stdout.write(`added MultiPOP mailbox ${source.id} for ${account.address}: ${describeRemote(config)}\n`);
      if (!(await settings.snapshot()).get('collect.multipop.enabled')) {
        process.stderr.write('note: MultiPOP is off for the server; turn it on with fulmar settings set collect.multipop.enabled true\n');
      }
    });
  });

  addCommonOptions(multipop.command('list').argument('[address]').description("list MultiPOP mailboxes (one account's, or all)")).action(
    async (address: string | undefined, _o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ store }) => {
        const sources = (await store.collect.listSources('multipop')).filter((s) => !address || s.name.toLowerCase().startsWith(`${address.toLowerCase()}/`));
        if (sources.length === 0) {
          process.stderr.write('no MultiPOP mailboxes\n');
          return;
        }
        const rows = [['ID', 'ACCOUNT', 'REMOTE MAILBOX', 'ENABLED']];
        for (const s of sources) rows.push([String(s.id), s.name.split('/')[0]!, describeRemote(parseRemoteMailboxConfig(s.config)), s.enabled ? 'yes' : 'no']);
        printTable(rows);
      });
    },
  );

  addCommonOptions(multipop.command('remove').argument('<address>').argument('<id>').description('remove a MultiPOP mailbox (ID from multipop list)')).action(
    async (address: string, id: string, _o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ store }) => {
        const source = await store.collect.getSource(int(id, 'ID'));
        if (!source || source.kind !== 'multipop' || !source.name.toLowerCase().startsWith(`${address.toLowerCase()}/`)) {
          fail(`${address} has no MultiPOP mailbox ${id}; see fulmar collect multipop list ${address}`);
        }
        await store.collect.removeSource(source.id);
        process.stdout.write(`removed MultiPOP mailbox ${id} of ${address}\n`);
      });
    },
  );

  for (const [verb, enabled] of [['enable', true], ['disable', false]] as const) {
    addCommonOptions(multipop.command(verb).argument('<address>').description(`${verb} collection of every MultiPOP mailbox of an account`)).action(
      async (address: string, _o: unknown, cmd: Command) => {
        await withServices(allOptions<CommonOptions>(cmd), async ({ store }) => {
          const sources = (await store.collect.listSources('multipop')).filter((s) => s.name.toLowerCase().startsWith(`${address.toLowerCase()}/`));
          if (sources.length === 0) fail(`${address} has no MultiPOP mailboxes`);
          for (const s of sources) await store.collect.updateSource(s.id, s.config, enabled);
          process.stdout.write(`MultiPOP ${enabled ? 'enabled' : 'disabled'} for ${address} (${sources.length} mailbox(es))\n`);
        });
      },
    );
  }

  addCommonOptions(
    collect
      .command('run')
      .argument('[name]', 'a DomainPOP source, or an account for its MultiPOP mailboxes (default: every source)')
      .option('--verbose', 'log each step as JSON on stderr')
      .description('collect now, and print what was collected and where each message went'),
  ).action(async (name: string | undefined, _o: unknown, cmd: Command) => {
    const o = allOptions<SourceOptions>(cmd);
    let failed = false;
    await withServices(o, async (services) => {
      const reports = await collectAll(
        {
          store: services.store,
          directory: services.directory,
          settings: services.settings,
          hostname: services.config.hostname,
          log: o.verbose ? createLogger('info', process.stderr) : silentLogger(),
          owner: collectorOwner(),
          now: collectClock(),
        },
        name,
      );
      if (reports.length === 0) {
        fail(name ? `no enabled source named ${name}` : 'no sources to collect (or MultiPOP is off: collect.multipop.enabled)');
      }
      for (const r of reports) {
        printReport(r);
        if (r.error) failed = true;
      }
    });
    if (failed) process.exitCode = 1;
  });

  addCommonOptions(collect.command('status').description('each source: last run, what it collected, last error')).action(async (_o: unknown, cmd: Command) => {
    await withServices(allOptions<CommonOptions>(cmd), async ({ store }) => {
      const sources = await store.collect.listSources();
      if (sources.length === 0) {
        process.stderr.write('no sources\n');
        return;
      }
      const rows = [['KIND', 'NAME', 'ENABLED', 'LAST RUN', 'LAST OK', 'LAST', 'TOTAL', 'LAST ERROR']];
      for (const s of sources) {
        rows.push([
          s.kind,
          s.name,
          s.enabled ? 'yes' : 'no',
          s.lastRunAt ? s.lastRunAt.toISOString() : 'never',
          s.lastOkAt ? s.lastOkAt.toISOString() : 'never',
          String(s.lastCollected),
          String(s.totalCollected),
          s.lastError ?? '',
        ]);
      }
      printTable(rows);
    });
  });
}

async function findSource(list: Promise<CollectSource[]>, name: string): Promise<CollectSource> {
  const found = (await list).find((s) => s.name.toLowerCase() === name.toLowerCase());
  if (!found) fail(`no DomainPOP source named ${name}; see fulmar collect domainpop list`);
  return found;
}

function describeDomainPop(c: DomainPopConfig): string {
  const parts = [`domain ${c.domain}`, describeRemote(c)];
  if (c.mode === 'envelope') {
    parts.push(`envelope mode: ${c.envelopeHeader}:${c.envelopeOccurrence}${c.stripPrefix ? ` strip "${c.stripPrefix}"` : ''}`);
  } else {
    const extra = [c.received ? `Received (skip ${c.skipReceived}${c.stopAtLocal ? ', stop at local' : ''})` : '', c.subjectParens ? 'Subject (...)' : ''].filter(Boolean);
    parts.push(`headers mode: ${[c.headers.join(','), ...extra].join(' + ')}`);
  }
  if (c.nameMatching) parts.push('name matching');
  parts.push(`foreign ${c.foreign}`, `unknown ${c.unknown}`, `dedupe ${c.dedupe}`);
  if (c.archive) parts.push(`archive ${c.archive}`);
  return parts.join('; ');
}

function printReport(r: SourceReport): void {
  const label = `${r.kind} ${r.source}`;
  if (r.busy) {
    process.stdout.write(`${label}: skipped, another collector is running it\n`);
    return;
  }
  if (r.error) process.stdout.write(`${label}: FAILED: ${r.error}\n`);
  process.stdout.write(`${label}: collected ${r.collected}, deleted ${r.deleted}, left ${r.left} on the server (${r.ms} ms)\n`);
  for (const m of r.messages) {
    const where = m.copies.map((c) => `${c.address} (${c.source})`).join(', ');
    process.stdout.write(`  ${m.uidl} ${m.size} bytes: ${m.outcome}${where ? ` -> ${where}` : ''}\n`);
    for (const note of m.notes) process.stdout.write(`    ${note}\n`);
  }
}
