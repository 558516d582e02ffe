/**
 * The outbound queue worker: leases due messages from the store, delivers each to its
 * destination domains (MX or smarthost), records per-recipient results, schedules retries, and
 * sends delivery status notifications (bounces, delay warnings, success reports).
 *
 * Invariants
 * - Work is taken by lease (QueueStore.claimDue), so several processes or nodes can share one
 *   queue and a crashed worker's messages are taken over when its lease expires; a recipient
 *   recorded delivered is never sent again.
 * - A result is recorded only after the remote answered; a notification is committed (durably,
 *   through the same road as any message) before the results that caused it are recorded, so a
 *   crash in between sends a notification twice rather than never.
 * - No bounce for a bounce: a message with the null sender that fails is reported to the
 *   postmaster instead (a double bounce), and never to its sender.
 */
import type { Resolver } from 'node:dns/promises';
import { Readable } from 'node:stream';
import type { Directory } from '../directory/directory.js';
import type { Logger } from '../log/logger.js';
import { parseHeaderBlock } from '../message/header.js';
import { createResolver } from '../net/dns.js';
import { MessageTransaction } from '../pipeline/ingest.js';
import type { RuntimeSettings, SettingsSnapshot } from '../store/runtime-settings.js';
import type { BlobStore, LeasedMessage, MailStore, QueueStore, RecipientResult } from '../store/types.js';
import { deliverMessage, type DeliveryRequest, type RecipientOutcome, type Smarthost } from '../smtp/client/deliver.js';
import { dkimSignatureFor, signingKeyFor } from '../filters/dkim-sign.js';
import { buildDsn, headerSection, type DsnRecipient } from './bounce.js';
import { nextAttempt, parseSchedule } from './retry.js';

export interface QueueRunnerServices {
  hostname: string;
  /**
   * Who holds leases. Stable across restarts of the same node, so a node that was killed in the
   * middle of deliveries takes its own leased messages back at once instead of after the lease.
   */
  owner: string;
  queue: QueueStore;
  mail: MailStore;
  blobs: BlobStore;
  directory: Directory;
  settings: RuntimeSettings;
  log: Logger;
}

type Recipient = LeasedMessage['recipients'][number];

/** The CLI (another process) may make mail due at any time (`fulmar queue retry`): look this often. */
const IDLE_POLL_MS = 2000;
/** Messages up to this size go back whole in a failure report; larger ones by their header. */
const RETURN_FULL_LIMIT = 10 * 1024 * 1024;

export class QueueRunner {
  private running = false;
  private wake: (() => void) | null = null;
  private kicked = false;
  private readonly active = new Set<Promise<void>>();
  private loop: Promise<void> | null = null;

  private readonly owner: string;

  constructor(private readonly services: QueueRunnerServices) {
    this.owner = services.owner;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Something was queued or made due: look now instead of at the next timer. */
  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  /**
   * Stops taking work and waits up to `graceMs` for deliveries in progress. Those still running
   * keep their leases: this node takes them back when it starts again (same owner).
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await Promise.race([Promise.allSettled([...this.active]), new Promise((r) => setTimeout(r, graceMs).unref())]);
  }

  private async run(): Promise<void> {
    const { log } = this.services;
    while (this.running) {
      try {
        const settings = await this.services.settings.snapshot();
        const concurrency = settings.get('delivery.concurrency');
        const room = concurrency - this.active.size;
        this.kicked = false;
        if (room <= 0) {
          // Every slot is busy: wait for one to free up, then look again at once.
          await this.sleep(null);
          continue;
        }
        const leased = await this.services.queue.claimDue(this.owner, new Date(), room, settings.get('queue.lease_time'));
        for (const message of leased) this.track(this.deliver(message, settings));
        if (leased.length === room) {
          await this.sleep(null);
          continue;
        }
        if (this.kicked) continue;
        const due = await this.services.queue.nextDue();
        const wait = due === null ? IDLE_POLL_MS : Math.min(IDLE_POLL_MS, due.getTime() - Date.now());
        // Never spin: something due now that could not be claimed (leased elsewhere) is looked at
        // again after a short pause, or sooner when kicked.
        await this.sleep(Math.max(wait, leased.length === 0 ? 50 : 0));
      } catch (err) {
        log.error({ event: 'queue.loop_error', err }, 'queue worker error; retrying shortly');
        await this.sleep(5000);
      }
    }
  }

  /** Sleeps until `ms` passes (null: until a delivery ends), a kick, or stop. */
  private sleep(ms: number | null): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      const done = (): void => {
        if (timer) clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      this.wake = done;
      if (ms !== null) timer = setTimeout(done, ms);
    });
  }

  private track(work: Promise<void>): void {
    this.active.add(work);
    void work.finally(() => {
      this.active.delete(work);
      this.wake?.();
    });
  }

  /** One leased message: every destination domain in parallel, then the results at once. */
  private async deliver(message: LeasedMessage, settings: SettingsSnapshot): Promise<void> {
    const { log } = this.services;
    try {
      const prepared = await this.prepare(message);
      // One SMTP session per destination domain; everything for the smarthost shares one.
      const byDomain = new Map<string, Recipient[]>();
      for (const r of message.recipients) {
        const domain = r.address.slice(r.address.lastIndexOf('@') + 1).toLowerCase();
        const key = smarthostFor(domain, settings) ? '' : domain;
        byDomain.set(key, [...(byDomain.get(key) ?? []), r]);
      }
      const resolver = this.resolverFor(settings.get('dns.servers'));
      // With several destinations, each one's deliveries are recorded as soon as it answered:
      // a crash while another destination stalls must not send this one the message again.
      const recordedEarly = new Set<number>();
      const outcomes = (
        await Promise.all(
          [...byDomain].map(async ([domain, recipients]) => {
            const result = await this.deliverDomain(message, prepared, domain, recipients, settings, resolver);
            if (byDomain.size > 1) await this.recordDelivered(message, result, recordedEarly);
            return result;
          }),
        )
      ).flat();
      await this.finish(message, outcomes.filter((o) => !recordedEarly.has(o.recipientId)), settings);
    } catch (err) {
      log.error({ event: 'queue.delivery_error', queueId: message.id, err }, 'delivery attempt failed unexpectedly');
      const outcomes: RecipientOutcome[] = message.recipients.map((r) => ({
        recipientId: r.id,
        outcome: 'deferred',
        reply: `local error: ${(err as Error).message}`,
        remoteMta: null,
        dsnRelayed: false,
      }));
      await this.finish(message, outcomes, settings).catch((e: unknown) =>
        log.error({ event: 'queue.record_failed', queueId: message.id, err: e }, 'could not record the attempt'),
      );
    }
  }

  /** Records delivered recipients at once, keeping the lease (those owed a success report wait for finish). */
  private async recordDelivered(message: LeasedMessage, outcomes: RecipientOutcome[], recorded: Set<number>): Promise<void> {
    const done = outcomes.filter((o) => {
      if (o.outcome !== 'delivered') return false;
      const notify = (message.recipients.find((r) => r.id === o.recipientId)?.notify ?? '').toUpperCase();
      return !notify.split(',').includes('SUCCESS') || o.dsnRelayed;
    });
    if (done.length === 0) return;
    const results: RecipientResult[] = done.map((o) => ({ recipientId: o.recipientId, outcome: 'delivered', error: null, remoteMta: o.remoteMta }));
    const ok = await this.services.queue.recordResults(message.id, this.owner, results, { keepLease: true }).catch(() => false);
    if (ok) for (const o of done) recorded.add(o.recipientId);
  }

  private resolvers = new Map<string, Resolver>();

  /** One resolver per `dns.servers` value (building one per delivery costs for nothing). */
  private resolverFor(servers: string): Resolver {
    let resolver = this.resolvers.get(servers);
    if (!resolver) {
      if (this.resolvers.size > 8) this.resolvers.clear();
      resolver = createResolver(servers);
      this.resolvers.set(servers, resolver);
    }
    return resolver;
  }

  /** The message as queued: its prefix (a collected message's Received line), then the blob. */
  private openStored(message: LeasedMessage): Readable {
    return withPrefix(message.prefix, this.services.blobs.open(message.blobHash) as Readable);
  }

  /** What every attempt of this message needs: 8-bit facts, and a DKIM signature when we sign. */
  private async prepare(message: LeasedMessage): Promise<{ prefix: Buffer; eightBitBody: boolean; eightBitHeader: boolean }> {
    let inHeader = true;
    let eightBitBody = false;
    let eightBitHeader = false;
    let tail = '';
    const head: Buffer[] = [];
    let headBytes = 0;
    for await (const chunk of this.openStored(message) as AsyncIterable<Buffer>) {
      if (inHeader) {
        const text = tail + chunk.toString('latin1');
        const end = text.indexOf('\r\n\r\n');
        const headerPart = end >= 0 ? text.slice(0, end) : text;
        if (/[\x80-\xff]/.test(headerPart)) eightBitHeader = true;
        if (headBytes < 64 * 1024) {
          head.push(chunk);
          headBytes += chunk.length;
        }
        if (end >= 0) {
          inHeader = false;
          if (/[\x80-\xff]/.test(text.slice(end))) eightBitBody = true;
        } else tail = text.slice(-3);
      } else if (!eightBitBody && chunk.some((b) => b >= 0x80)) eightBitBody = true;
      if (!inHeader && eightBitBody && eightBitHeader) break;
    }
    let prefix = Buffer.alloc(0);
    const from = parseHeaderBlock(Buffer.concat(head)).fields.find((f) => f.name.toLowerCase() === 'from')?.value ?? '';
    const signing = await signingKeyFor(from, this.services.directory, message.mailFrom).catch(() => null);
    if (signing) {
      try {
        const signature = await dkimSignatureFor(this.openStored(message), signing);
        prefix = Buffer.from(signature, 'utf8');
      } catch (err) {
        this.services.log.warn({ event: 'queue.dkim_failed', queueId: message.id, domain: signing.domain, err }, 'could not DKIM-sign; sending unsigned');
      }
    }
    return { prefix, eightBitBody, eightBitHeader };
  }

  private async deliverDomain(
    message: LeasedMessage,
    prepared: { prefix: Buffer; eightBitBody: boolean; eightBitHeader: boolean },
    domain: string,
    recipients: Recipient[],
    settings: SettingsSnapshot,
    resolver: Resolver,
  ): Promise<RecipientOutcome[]> {
    const { log, hostname } = this.services;
    const nonAscii = (s: string): boolean => /[^\x00-\x7f]/.test(s);
    const request: DeliveryRequest = {
      domain,
      mailFrom: message.mailFrom,
      recipients: recipients.map((r) => ({ id: r.id, address: r.address, orcpt: r.orcpt, notify: r.notify })),
      envId: message.envId,
      ret: message.ret,
      size: prepared.prefix.length + message.prefix.length + message.size,
      open: () => withPrefix(prepared.prefix, this.openStored(message)),
      needs8BitMime: prepared.eightBitBody || prepared.eightBitHeader,
      needsSmtpUtf8: prepared.eightBitHeader || nonAscii(message.mailFrom) || recipients.some((r) => nonAscii(r.address)),
    };
    const started = Date.now();
    // Key '' holds the smarthost's recipients (of any domain): see deliver().
    const smarthost = smarthostFor(domain === '' ? recipients[0]!.address.split('@').pop()!.toLowerCase() : domain, settings);
    const outcomes = await deliverMessage(request, {
      hostname,
      resolver,
      port: settings.get('delivery.remote_port'),
      smarthost,
      tlsPolicy: listed(settings.get('delivery.tls_required_domains'), domain) ? 'required' : 'opportunistic',
      log,
    });
    for (const o of outcomes) {
      const r = recipients.find((x) => x.id === o.recipientId);
      log.info(
        { event: `queue.${o.outcome}`, queueId: message.id, to: r?.address, relay: o.remoteMta, reply: o.reply, ms: Date.now() - started },
        `${o.outcome}: ${r?.address}`,
      );
    }
    return outcomes;
  }

  /** Notifications first (durable), then the results (which may remove the message). */
  private async finish(message: LeasedMessage, outcomes: RecipientOutcome[], settings: SettingsSnapshot): Promise<void> {
    const now = new Date();
    const schedule = parseSchedule(settings.get('queue.retry_schedule'));
    const maxAge = settings.get('queue.max_age');
    const delayWarning = settings.get('queue.delay_warning');
    const results: RecipientResult[] = [];
    const failed: DsnRecipient[] = [];
    const delayed: Array<DsnRecipient & { id: number }> = [];
    const succeeded: DsnRecipient[] = [];
    for (const o of outcomes) {
      const r = message.recipients.find((x) => x.id === o.recipientId);
      if (!r) continue;
      const notify = (r.notify ?? '').toUpperCase();
      const wants = (what: string): boolean => notify === '' ? what !== 'SUCCESS' : notify.split(',').includes(what);
      const dsn = (action: DsnRecipient['action']): DsnRecipient => ({
        address: r.address,
        orcpt: r.orcpt,
        action,
        diagnostic: o.reply,
        remoteMta: o.remoteMta,
      });
      if (o.outcome === 'delivered') {
        results.push({ recipientId: r.id, outcome: 'delivered', error: null, remoteMta: o.remoteMta });
        // rfc3461 4.1: NOTIFY=SUCCESS is ours to answer unless the next hop took the request.
        if (notify.split(',').includes('SUCCESS') && !o.dsnRelayed) succeeded.push(dsn('relayed'));
        continue;
      }
      if (o.outcome === 'deferred') {
        const decision = nextAttempt(r.attempts + 1, message.createdAt, now, schedule, maxAge);
        if (decision.kind === 'retry') {
          results.push({ recipientId: r.id, outcome: 'deferred', error: o.reply, nextAttemptAt: decision.at, remoteMta: o.remoteMta });
          const waited = now.getTime() - message.createdAt.getTime();
          if (delayWarning > 0 && waited >= delayWarning && !r.delayWarned && wants('DELAY')) delayed.push({ ...dsn('delayed'), id: r.id });
          continue;
        }
        // The time in the queue is up: a temporary failure becomes a permanent one.
        results.push({ recipientId: r.id, outcome: 'failed', error: `${o.reply} (gave up after ${Math.round(maxAge / 3_600_000)} h)`, remoteMta: o.remoteMta });
        if (wants('FAILURE')) failed.push({ ...dsn('failed'), status: '5.4.7' }); // rfc3463: delivery time expired
        continue;
      }
      results.push({ recipientId: r.id, outcome: 'failed', error: o.reply, remoteMta: o.remoteMta });
      if (wants('FAILURE')) failed.push(dsn('failed'));
    }
    if (failed.length > 0) await this.notify(message, failed, false, null);
    if (succeeded.length > 0) await this.notify(message, succeeded, true, null);
    if (delayed.length > 0) {
      await this.notify(message, delayed, true, new Date(message.createdAt.getTime() + maxAge));
      await this.services.queue.markDelayWarned(delayed.map((d) => d.id));
    }
    if (results.length === 0) return; // every recipient was recorded as it was delivered
    const recorded = await this.services.queue.recordResults(message.id, this.owner, results);
    if (!recorded) this.services.log.warn({ event: 'queue.lease_lost', queueId: message.id }, 'lease expired during delivery; results not recorded');
  }

  /** Sends a DSN to the message's sender (or, for a null sender, to the postmaster). */
  private async notify(message: LeasedMessage, recipients: DsnRecipient[], headersOnly: boolean, willRetryUntil: Date | null): Promise<void> {
    const { log, hostname } = this.services;
    let to = message.mailFrom;
    if (to === '') {
      // A bounce that bounced: never back to the null sender; the postmaster hears of it.
      if (recipients.every((r) => r.action !== 'failed')) return;
      to = `postmaster@${await this.postmasterDomain()}`;
    }
    const whole = await readAll(this.openStored(message), RETURN_FULL_LIMIT + 1);
    const headersOnlyNow = headersOnly || message.ret === 'HDRS' || whole.length > RETURN_FULL_LIMIT;
    const dsn = buildDsn({
      reportingMta: hostname,
      queueId: message.id,
      to,
      envId: message.envId,
      arrivalDate: message.createdAt,
      recipients,
      original: headersOnlyNow ? headerSection(whole) : whole,
      originalIsHeadersOnly: headersOnlyNow,
      willRetryUntil,
    });
    const settings = await this.services.settings.snapshot();
    const tx = new MessageTransaction(this.services, { authenticated: true, settings }, '', null);
    const verdict = await tx.addRecipient(to);
    if (!verdict.ok) {
      log.warn({ event: 'queue.dsn_undeliverable', queueId: message.id, to, reason: verdict.detail }, 'cannot send the delivery notification');
      return;
    }
    const spool = await tx.beginBody('');
    await spool.write(dsn);
    const result = await tx.commit();
    if (result.ok) {
      log.info({ event: 'queue.dsn_sent', queueId: message.id, to, action: recipients[0]!.action, dsnQueueId: result.outcome.queueId }, 'delivery notification sent');
      if (result.outcome.queueId !== null) this.kick();
    }
  }

  private async postmasterDomain(): Promise<string> {
    const domains = await this.services.directory.listDomains();
    const own = this.services.hostname.toLowerCase();
    return domains.find((d) => own === d.name || own.endsWith(`.${d.name}`))?.name ?? domains[0]?.name ?? own;
  }
}

function listed(list: string, domain: string): boolean {
  return list
    .split(',')
    .map((d) => d.trim().toLowerCase())
    .filter(Boolean)
    .includes(domain);
}

function smarthostFor(domain: string, settings: SettingsSnapshot): Smarthost | null {
  const target = settings.get('delivery.smarthost').trim();
  if (target === '') return null;
  const only = settings.get('delivery.smarthost_domains');
  if (only.trim() !== '' && !listed(only, domain)) return null;
  const tls = settings.get('delivery.smarthost_tls') as Smarthost['tls'];
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(target);
  const host = m?.[1] ?? target;
  const port = m?.[2] ? Number(m[2]) : tls === 'implicit' ? 465 : 587;
  const user = settings.get('delivery.smarthost_user');
  return { host, port, tls, username: user === '' ? null : user, password: user === '' ? null : settings.get('delivery.smarthost_password') };
}

async function readAll(stream: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    parts.push(chunk);
    n += chunk.length;
    if (n >= limit) {
      stream.destroy();
      break;
    }
  }
  return Buffer.concat(parts);
}

async function* prefixed(prefix: Buffer, body: Readable): AsyncGenerator<Buffer> {
  if (prefix.length > 0) yield prefix;
  yield* body as AsyncIterable<Buffer>;
}

function withPrefix(prefix: Buffer, body: Readable): Readable {
  return prefix.length === 0 ? body : Readable.from(prefixed(prefix, body), { objectMode: false });
}
