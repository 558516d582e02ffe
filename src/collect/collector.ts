/**
 * One collection run of one remote POP3 mailbox (a DomainPOP or MultiPOP source): log in, list,
 * download what is new, deliver it through the pipeline, delete what may go, QUIT.
 *
 * Invariants (never lose, never double)
 * - A message is DELEted only after its delivery is durable, or after it was recorded as dealt
 *   with (a duplicate, a large message). DELE takes effect only at QUIT (rfc1939 6).
 * - The UIDL is recorded in the delivery's own transaction (DeliveryCommit.collected); a UIDL
 *   recorded before is never delivered again, only deleted (when the settings allow). So a crash
 *   or a dropped connection at any point leads, at the next run, to neither loss nor a double.
 * - A message that cannot be routed or delivered stays on the server and is retried next run.
 * - One run per source at a time, across processes (CollectStore.claimRun).
 */
import { createHash } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import type { Directory } from '../directory/directory.js';
import type { Logger } from '../log/logger.js';
import { formatDate, parseHeaderBlock, type HeaderField } from '../message/header.js';
import { MessageTransaction } from '../pipeline/ingest.js';
import { SpoolWriter } from '../pipeline/spool.js';
import type { RuntimeSettings, SettingsSnapshot } from '../store/runtime-settings.js';
import type { CollectSource, SeenRemoteMessage, Store } from '../store/types.js';
import { AlreadyExists } from '../util/errors.js';
import { accountsByRealName, routeDomainPop } from './domainpop/route.js';
import { headerKey } from './message-facts.js';
import { routeMultiPop } from './multipop/route.js';
import { openArchiveFile } from './archive-folder.js';
import { Pop3Client, type Pop3Listing } from './pop3-client.js';
import { parseDomainPopConfig, parseRemoteMailboxConfig, type DomainPopConfig, type RemoteMailboxConfig } from './source-config.js';

export interface RoutedCopy {
  address: string;
  /** The header (or rule) that produced it, for the log and the report. */
  source: string;
  /** Header lines added to this copy (notes to the postmaster). */
  headers?: string;
  /** A foreign address the source relays to. */
  relay?: boolean;
}

export interface Routing {
  mailFrom: string;
  copies: RoutedCopy[];
  /** The dedupe key (Message-ID or Date), null for none. */
  dedupeKey: string | null;
  notes: string[];
}

export interface CollectorServices {
  store: Store;
  directory: Directory;
  settings: RuntimeSettings;
  hostname: string;
  log: Logger;
  /** Names this process in run claims (collectorOwner()). */
  owner: string;
  /** The clock (tests move it to age messages on the server). */
  now: () => Date;
  onQueued?: () => void;
}

export interface MessageReport {
  uidl: string;
  size: number;
  outcome: 'delivered' | 'duplicate' | 'large' | 'deleted' | 'failed';
  copies: Array<{ address: string; source: string }>;
  notes: string[];
}

export interface SourceReport {
  source: string;
  kind: CollectSource['kind'];
  /** Another collector held the source; nothing was done. */
  busy: boolean;
  error: string | null;
  collected: number;
  deleted: number;
  left: number;
  messages: MessageReport[];
  ms: number;
}

/** A run's claim lasts this long and is renewed while the run goes on. */
const RUN_LEASE_MS = 2 * 60_000;
const RUN_RENEW_MS = 30_000;
/** Deliveries committing while the next messages download. */
const MAX_COMMITS_IN_FLIGHT = 8;
const DAY_MS = 86_400_000;

interface Plan {
  config: RemoteMailboxConfig;
  label: string;
  postmaster: string;
  route(fields: readonly HeaderField[]): Promise<Routing>;
  /** What happens to a copy the pipeline refuses (over quota): postmaster, or keep the message on the server. */
  refused: 'postmaster' | 'keep';
  archive: { accountId: number; mailbox: string } | { folder: string } | null;
}

/**
 * Collects one source. `cycleKeys` are the (dedupe key, recipient) pairs delivered in this cycle
 * so far: collectAll shares one set among the sources of a domain (a primary host and its extra
 * hosts), so a message found in two of its mailboxes is delivered once.
 */
export async function collectSource(source: CollectSource, services: CollectorServices, cycleKeys = new Set<string>()): Promise<SourceReport> {
  const started = Date.now();
  const report: SourceReport = { source: source.name, kind: source.kind, busy: false, error: null, collected: 0, deleted: 0, left: 0, messages: [], ms: 0 };
  const { store, log, owner } = services;
  if (!(await claim(source, services))) {
    report.busy = true;
    return report;
  }
  const renew = setInterval(() => {
    store.collect.claimRun(source.id, owner, services.now(), RUN_LEASE_MS).catch(() => {});
  }, RUN_RENEW_MS);
  renew.unref();
  try {
    const plan = await planFor(source, services);
    await runSession(source, plan, services, report, cycleKeys);
  } catch (e) {
    report.error = e instanceof Error ? e.message : String(e);
    log.warn({ event: 'collect.failed', kind: source.kind, source: source.name, error: report.error }, `collecting ${source.name} failed: ${report.error}`);
  } finally {
    clearInterval(renew);
    report.ms = Date.now() - started;
    await store.collect.finishRun(source.id, owner, { at: services.now(), error: report.error, collected: report.collected }).catch(() => {});
  }
  return report;
}

/**
 * The claim of a run. A claim held by a collector of this machine whose process is gone (killed
 * mid-run) is taken over at once rather than when its lease runs out.
 */
async function claim(source: CollectSource, services: CollectorServices): Promise<boolean> {
  const { store, owner } = services;
  if (await store.collect.claimRun(source.id, owner, services.now(), RUN_LEASE_MS)) return true;
  const holder = (await store.collect.getSource(source.id))?.runOwner ?? null;
  if (holder === null || !deadLocalOwner(holder)) return false;
  services.log.info({ event: 'collect.claim_taken_over', source: source.name, from: holder }, `taking over ${source.name} from ${holder}, which is no longer running`);
  return store.collect.claimRun(source.id, owner, services.now(), RUN_LEASE_MS, holder);
}

/** Names this process as a collector: `host/pid`. */
export function collectorOwner(): string {
  return `${osHostname()}/${process.pid}`;
}

function deadLocalOwner(holder: string): boolean {
  const slash = holder.lastIndexOf('/');
  const pid = Number(holder.slice(slash + 1));
  if (holder.slice(0, slash) !== osHostname() || !Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

async function planFor(source: CollectSource, services: CollectorServices): Promise<Plan> {
  const settings = await services.settings.snapshot();
  const configured = settings.get('collect.postmaster').trim();
  if (source.kind === 'domainpop') {
    const config = parseDomainPopConfig(source.config);
    // Read once per run, not per message (name matching looks at every account of the domain).
    const realNames = config.nameMatching ? accountsByRealName(services.directory, config.domain) : undefined;
    realNames?.catch(() => {}); // a failure surfaces where it is awaited
    return {
      config,
      label: `DomainPOP ${source.name}`,
      postmaster: configured || `postmaster@${config.domain}`,
      route: (fields) => routeDomainPop(fields, config, services.directory, configured || `postmaster@${config.domain}`, realNames),
      refused: 'postmaster',
      archive: await archiveOf(config, services.directory),
    };
  }
  const config = parseRemoteMailboxConfig(source.config);
  const account = source.accountId === null ? null : await services.directory.getUserById(source.accountId);
  if (!account) throw new Error(`MultiPOP source ${source.name} has no account`);
  return {
    config,
    label: `MultiPOP ${source.name}`,
    postmaster: configured || `postmaster@${account.domain}`,
    route: async (fields) => routeMultiPop(fields, account),
    refused: 'keep',
    archive: null,
  };
}

async function archiveOf(config: DomainPopConfig, directory: Directory): Promise<Plan['archive']> {
  const target = config.archive;
  if (!target) return null;
  if (target.startsWith('/')) return { folder: target };
  const slash = target.indexOf('/');
  const address = slash < 0 ? target : target.slice(0, slash);
  const account = await directory.getUser(address);
  if (!account) throw new Error(`the archive mailbox ${address} does not exist`);
  return { accountId: account.id, mailbox: slash < 0 ? 'INBOX' : target.slice(slash + 1) };
}

async function runSession(source: CollectSource, plan: Plan, services: CollectorServices, report: SourceReport, cycleKeys: Set<string>): Promise<void> {
  const { config } = plan;
  const { store, log } = services;
  const client = await Pop3Client.connect({ host: config.host, port: config.port, tls: config.tls, verify: !config.insecure });
  try {
    await client.login({ user: config.user, password: config.password, apop: config.apop });
    const listing = await client.list();
    const uidls = listing.length > 0 ? await client.uidl() : new Map<number, string>();
    const keys = new Map<number, string>();
    if (uidls) for (const [n, u] of uidls) keys.set(n, u);
    else {
      // No UIDL: the header's hash stands in (TOP n 0), else it is learnt after RETR.
      for (const m of listing) {
        const header = await client.top(m.number);
        if (header === null) break;
        keys.set(m.number, headerKey(header));
      }
    }
    const seen = new Map((await store.collect.listSeen(source.id)).map((s) => [s.uidl, s]));
    if (listing.every((m) => keys.has(m.number))) {
      // What the server no longer holds was deleted at an earlier QUIT: forget it.
      const present = new Set(keys.values());
      const gone = [...seen.keys()].filter((u) => !present.has(u));
      if (gone.length > 0) await store.collect.forgetSeen(source.id, gone);
      await store.collect.pruneDedupe(source.id, new Date(services.now().getTime() - DAY_MS));
    }

    const settings = await services.settings.snapshot();
    const globalMax = settings.get('smtp.max_message_size');
    const order = config.smallFirst ? [...listing].sort((a, b) => a.size - b.size || a.number - b.number) : listing;
    // Downloads go on while earlier messages commit (their fsyncs shared by the group commit);
    // DELEs are sent after every commit settled, before QUIT (they count only at QUIT anyway).
    const deletions: number[] = [];
    const commits: Array<Promise<void>> = [];
    const unsettled = new Set<Promise<void>>();
    let failure: unknown = null;
    try {
      for (const m of order) {
        const key = keys.get(m.number) ?? null;
        const known = key === null ? undefined : seen.get(key);
        if (known?.state === 'collected') {
          if (dueForDeletion(known, config, services)) deletions.push(m.number);
          continue;
        }
        const large = (config.maxDownloadSize > 0 && m.size >= config.maxDownloadSize) || (globalMax > 0 && m.size > globalMax);
        if (large) {
          report.messages.push(await handleLarge(client, m, key ?? `size-${m.number}-${m.size}`, known, source, plan, services, settings));
          if (config.deleteLarge) deletions.push(m.number);
          continue;
        }
        const job = await collectOne(client, m, key, seen, source, plan, services, settings, cycleKeys);
        report.messages.push(job.report);
        const settled: Promise<void> = job.done.then(
          (dele) => {
            if (job.report.outcome === 'delivered') report.collected++;
            if (dele) deletions.push(m.number);
          },
          (error: unknown) => {
            failure ??= error;
          },
        );
        commits.push(settled);
        unsettled.add(settled);
        void settled.then(() => unsettled.delete(settled));
        if (unsettled.size >= MAX_COMMITS_IN_FLIGHT) await Promise.race(unsettled);
      }
    } finally {
      // Whatever happened on the connection, the deliveries under way finish (or fail) first.
      await Promise.allSettled(commits);
    }
    for (const n of deletions.sort((a, b) => a - b)) await client.dele(n);
    report.deleted = deletions.length;
    report.left = listing.length - deletions.length;
    if (failure !== null) {
      report.error = failure instanceof Error ? failure.message : String(failure);
      log.warn({ event: 'collect.commit_failed', source: source.name, error: report.error }, `${plan.label}: a delivery failed (${report.error}); that message stays on the server`);
    }
    if (!(await client.quit())) log.warn({ event: 'collect.quit_failed', source: source.name }, `${plan.label}: QUIT was not acknowledged; deletions are retried next run`);
    log.info(
      { event: 'collect.run', kind: source.kind, source: source.name, collected: report.collected, deleted: report.deleted, left: report.left },
      `${plan.label}: collected ${report.collected}, deleted ${report.deleted}, left ${report.left} on ${config.host}`,
    );
  } finally {
    client.destroy();
  }
}

/** A message collected before is deleted unless left on the server and not yet old enough. */
function dueForDeletion(known: SeenRemoteMessage, config: RemoteMailboxConfig, services: CollectorServices): boolean {
  if (!config.leaveOnServer) return true;
  if (config.deleteAfterDays === 0) return false;
  return services.now().getTime() - known.firstSeen.getTime() >= config.deleteAfterDays * DAY_MS;
}

async function handleLarge(
  client: Pop3Client,
  m: Pop3Listing,
  key: string,
  known: SeenRemoteMessage | undefined,
  source: CollectSource,
  plan: Plan,
  services: CollectorServices,
  settings: SettingsSnapshot,
): Promise<MessageReport> {
  const { config } = plan;
  const limit = config.maxDownloadSize > 0 ? config.maxDownloadSize : settings.get('smtp.max_message_size');
  const notes = [`${m.size} bytes, at or over the limit of ${limit}: not downloaded${config.deleteLarge ? ', deleted from the server' : ''}`];
  if (config.warnPostmaster && !known) {
    // The warning and the mark share one transaction: the postmaster hears once per message.
    const header = await client.top(m.number, 16 * 1024).catch(() => null);
    const warning = largeWarning(m, key, limit, header, plan, services);
    const tx = new MessageTransaction({ directory: services.directory, mail: services.store.mail, blobs: services.store.blobs }, { authenticated: false, settings }, '', null);
    const verdict = await tx.addRecipient(plan.postmaster);
    if (verdict.ok) {
      const spool = await tx.beginBody('');
      await spool.write(warning);
      try {
        await tx.commit({ collected: { sourceId: source.id, uidl: key, state: 'large', at: services.now(), dedupe: [] } });
        notes.push(`postmaster ${plan.postmaster} warned`);
      } catch (e) {
        if (!(e instanceof AlreadyExists)) throw e;
      }
    } else notes.push(`cannot warn the postmaster ${plan.postmaster}: ${verdict.detail}`);
  }
  services.log.info({ event: 'collect.large', source: source.name, uidl: key, size: m.size, limit, deleted: config.deleteLarge }, `${plan.label}: message ${key} (${m.size} bytes) not downloaded`);
  return { uidl: key, size: m.size, outcome: 'large', copies: [], notes };
}

function largeWarning(m: Pop3Listing, key: string, limit: number, header: Buffer | null, plan: Plan, services: CollectorServices): Buffer {
  const fields = header ? parseHeaderBlock(header, { final: true }).fields : [];
  const field = (name: string): string => (fields.find((f) => f.name.toLowerCase() === name)?.value ?? '').replace(/[\r\n]/g, ' ').slice(0, 200);
  const now = services.now();
  const id = createHash('sha256').update(`${plan.label}\n${key}`).digest('hex').slice(0, 24);
  const action = plan.config.deleteLarge ? 'It was deleted from the server.' : 'It was left on the server.';
  return Buffer.from(
    `From: Mail Delivery System <MAILER-DAEMON@${services.hostname}>\r\n` +
      `To: <${plan.postmaster}>\r\n` +
      `Subject: Large message not collected by ${plan.label}\r\n` +
      `Date: ${formatDate(now)}\r\n` +
      `Message-ID: <collect-large-${id}@${services.hostname}>\r\n` +
      `Auto-Submitted: auto-generated\r\n` +
      `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n` +
      `${plan.label} found a message of ${m.size} bytes on ${plan.config.host}, at or over the download limit of ${limit} bytes.\r\n` +
      `${action}\r\n\r\n` +
      `  UIDL:    ${key}\r\n  From:    ${field('from')}\r\n  To:      ${field('to')}\r\n  Subject: ${field('subject')}\r\n  Date:    ${field('date')}\r\n`,
    'utf8',
  );
}

async function collectOne(
  client: Pop3Client,
  m: Pop3Listing,
  knownKey: string | null,
  seen: Map<string, SeenRemoteMessage>,
  source: CollectSource,
  plan: Plan,
  services: CollectorServices,
  settings: SettingsSnapshot,
  cycleKeys: Set<string>,
): Promise<{ report: MessageReport; done: Promise<boolean> }> {
  const { config } = plan;
  /** Nothing more to wait for: `dele` says whether the message may be deleted from the server. */
  const settled = (dele: boolean): Promise<boolean> => Promise.resolve(dele);
  const { store, log } = services;
  const globalMax = settings.get('smtp.max_message_size');
  const limit = globalMax > 0 ? globalMax : Infinity;
  const spool = await SpoolWriter.open(store.blobs, '', { maxSize: limit, maxHeaderSize: settings.get('smtp.max_header_size') });
  const archiveFile = plan.archive && 'folder' in plan.archive ? await openArchiveFile(plan.archive.folder) : null;
  let spooled;
  try {
    await client.retr(m.number, async (chunk) => {
      await spool.write(chunk);
      if (archiveFile) await archiveFile.handle.write(chunk);
    });
    spooled = await spool.finish();
  } catch (e) {
    await spool.abort().catch(() => {});
    await archiveFile?.discard();
    throw e;
  }
  const report: MessageReport = { uidl: knownKey ?? '', size: m.size, outcome: 'failed', copies: [], notes: [] };
  if (!spooled.ok) {
    await archiveFile?.discard();
    report.notes.push(`refused by the pipeline (${spooled.reason}, ${spooled.size} bytes): left on the server`);
    log.warn({ event: 'collect.refused', source: source.name, number: m.number, reason: spooled.reason }, `${plan.label}: message ${m.number} refused (${spooled.reason}); left on the server`);
    return { report, done: settled(false) };
  }
  const key = knownKey ?? headerKey(spooled.header);
  report.uidl = key;
  const already = seen.get(key);
  if (already?.state === 'collected') {
    // A server without UIDL or TOP: known only now, after the download.
    await store.blobs.discard(spooled.blob);
    await archiveFile?.discard();
    report.outcome = 'deleted';
    return { report, done: settled(dueForDeletion(already, config, services)) };
  }

  const fields = parseHeaderBlock(Buffer.concat([spooled.header, Buffer.from('\r\n')]), { final: true }).fields;
  const routing = await plan.route(fields);
  report.notes.push(...routing.notes);
  // Dedupe on (key, recipient): within this run and across runs while the source keeps mail.
  const pairKey = (recipient: string): string => `${routing.dedupeKey}\n${recipient.toLowerCase()}`;
  let copies = routing.copies;
  if (routing.dedupeKey !== null) {
    const before = await store.collect.seenDedupe(
      source.id,
      copies.map((c) => ({ key: routing.dedupeKey!, recipient: c.address.toLowerCase() })),
    );
    const fresh = copies.filter((c) => !cycleKeys.has(pairKey(c.address)) && !before.has(pairKey(c.address)));
    if (fresh.length < copies.length) report.notes.push(`duplicate (${routing.dedupeKey.replace(/^\w+:/, '')}) for ${copies.filter((c) => !fresh.includes(c)).map((c) => c.address).join(', ')}`);
    copies = fresh;
  }
  const at = services.now();
  if (copies.length === 0) {
    await archiveFile?.commit(key, source);
    const mark = { sourceId: source.id, uidl: key, state: 'collected' as const, at, dedupe: [] };
    if (plan.archive && 'accountId' in plan.archive) {
      // The archive keeps every downloaded message, duplicates included: its copy carries the mark.
      const tx = new MessageTransaction({ directory: services.directory, mail: store.mail, blobs: store.blobs }, { authenticated: false, settings }, routing.mailFrom, m.size);
      tx.attachSpooled(spooled);
      await tx.commit({ collected: mark, rawCopies: [plan.archive] }).catch((e: unknown) => {
        if (!(e instanceof AlreadyExists)) throw e;
      });
    } else {
      await store.blobs.discard(spooled.blob);
      await store.collect.markSeen(mark);
    }
    report.outcome = 'duplicate';
    log.info({ event: 'collect.duplicate', source: source.name, uidl: key, key: routing.dedupeKey }, `${plan.label}: message ${key} is a duplicate`);
    return { report, done: settled(!config.leaveOnServer) };
  }

  const tx = new MessageTransaction(
    { directory: services.directory, mail: store.mail, blobs: store.blobs, ...(services.onQueued ? { onQueued: services.onQueued } : {}) },
    { authenticated: copies.some((c) => c.relay), settings },
    routing.mailFrom,
    m.size,
  );
  tx.attachSpooled(spooled);
  const accepted: RoutedCopy[] = [];
  for (const copy of copies) {
    const verdict = await tx.addRecipient(copy.address, copy.headers ? { headers: copy.headers } : {});
    if (verdict.ok) {
      accepted.push(copy);
      continue;
    }
    if (plan.refused === 'keep') {
      await tx.abort();
      await archiveFile?.discard();
      report.notes.push(`${copy.address}: ${verdict.detail}; left on the server for the next run`);
      log.warn({ event: 'collect.deferred', source: source.name, uidl: key, to: copy.address, reason: verdict.reason }, `${plan.label}: ${verdict.detail}; message left on the server`);
      return { report, done: settled(false) };
    }
    report.notes.push(`${copy.address}: ${verdict.detail}; the postmaster gets it`);
    const note = `X-Fulmar-Collect-Note: not delivered to ${copy.address}: ${verdict.detail.replace(/[\r\n]/g, ' ')}\r\n`;
    if ((await tx.addRecipient(plan.postmaster, { headers: note })).ok) accepted.push({ address: plan.postmaster, source: `refused ${copy.address}` });
  }
  if (accepted.length === 0) {
    await tx.abort();
    await archiveFile?.discard();
    report.notes.push(`no recipient could take it (is there a postmaster ${plan.postmaster}?): left on the server`);
    log.warn({ event: 'collect.undeliverable', source: source.name, uidl: key }, `${plan.label}: message ${key} has no recipient that can take it; left on the server`);
    return { report, done: settled(false) };
  }
  const dedupe = routing.dedupeKey === null ? [] : accepted.map((c) => ({ key: routing.dedupeKey!, recipient: c.address.toLowerCase() }));
  // Reserved now, before the commit: a copy of this message downloaded while it commits is a
  // duplicate too. Released if the commit does not happen.
  const reserved = dedupe.map((pair) => `${pair.key}\n${pair.recipient}`);
  for (const k of reserved) cycleKeys.add(k);
  const release = (): void => {
    for (const k of reserved) cycleKeys.delete(k);
  };
  // The archive file is in place before the commit: a crash between leaves an archive copy
  // of a message collected again next run, under the same name (so, still one copy).
  try {
    await archiveFile?.commit(key, source);
  } catch (e) {
    release();
    await tx.abort();
    throw e;
  }
  const done = (async (): Promise<boolean> => {
    try {
      const result = await tx.commit({
        trace: receivedLine(client, source, plan, key, at, services.hostname),
        collected: { sourceId: source.id, uidl: key, state: 'collected', at, dedupe },
        ...(plan.archive && 'accountId' in plan.archive ? { rawCopies: [plan.archive] } : {}),
      });
      if (!result.ok) {
        release();
        report.notes.push(`refused by the pipeline (${result.reason}): left on the server`);
        return false;
      }
    } catch (e) {
      if (e instanceof AlreadyExists) {
        // Another collector delivered it meanwhile: it is collected, once.
        report.outcome = 'duplicate';
        return !config.leaveOnServer;
      }
      release();
      report.notes.push(`not delivered (${e instanceof Error ? e.message : String(e)}): left on the server`);
      throw e;
    }
    report.outcome = 'delivered';
    report.copies = accepted.map((c) => ({ address: c.address, source: c.source }));
    log.info(
      { event: 'collect.delivered', source: source.name, uidl: key, size: m.size, from: routing.mailFrom, to: report.copies },
      `${plan.label}: message ${key} delivered to ${report.copies.map((c) => `${c.address} (${c.source})`).join(', ')}`,
    );
    return !config.leaveOnServer;
  })();
  return { report, done };
}

function receivedLine(client: Pop3Client, source: CollectSource, plan: Plan, key: string, at: Date, hostname: string): Buffer {
  const clean = (s: string): string => s.replace(/[^\x21-\x7e]/g, '?').replace(/[();\\]/g, '?');
  const host = clean(plan.config.host);
  const ip = client.remoteAddress ? ` [${client.remoteAddress}]` : '';
  const protocol = plan.config.tls === 'none' ? 'POP3' : 'POP3S';
  const kind = source.kind === 'domainpop' ? 'DomainPOP' : 'MultiPOP';
  return Buffer.from(
    `Received: from ${host} (${host}${ip})\r\n\tby ${clean(hostname)} (Fulmar ${kind} ${clean(source.name)}) with ${protocol}\r\n\tid ${clean(key).slice(0, 70)}; ${formatDate(at)}\r\n`,
    'utf8',
  );
}
