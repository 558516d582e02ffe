/**
 * Delivers one message to one destination domain over SMTP: finds the servers (MX hosts, or the
 * smarthost), tries their addresses in order, and returns one outcome per recipient.
 *
 * Purpose: the routing half of the SMTP client. The queue (src/queue/) decides when to try and
 * what to do with each outcome (retry, bounce, success report); session.ts speaks SMTP with one
 * address. This module walks the MX list: next address on a connection failure or a 4xx greeting
 * or EHLO, next MX host on a 421 mid-session, and stops at the first server that took the
 * transaction (it answered every recipient) or at a failure no other server can change.
 *
 * Invariants
 * - `deliverMessage` never rejects and returns exactly one outcome per recipient of the request,
 *   in the request's order. Every socket is destroyed before it resolves.
 * - `reply` always starts with a reply code and an rfc3463 status code (`550 5.1.1 ...`), the
 *   server's own when it answered, ours otherwise (`451 4.4.1 connect to ...`), so the queue can
 *   put it into a DSN's Status and Diagnostic-Code as it is.
 * - Temporary trouble never becomes a bounce here: DNS failures, connection failures, timeouts,
 *   TLS trouble and AUTH failures defer. Permanent outcomes come only from a server's 5xx, from
 *   the DNS saying the domain does not exist or takes no mail (null MX), from a mail loop, and
 *   from a message this server cannot take (SIZE, 8BITMIME, SMTPUTF8).
 * - A recipient that a server accepted is never offered to a second server within one call once
 *   the end of data was sent (session.ts).
 *
 * Security: DNS answers and servers are untrusted: at most MAX_ADDRESSES connection attempts
 * and MAX_SESSIONS greeted sessions per call, each step with a deadline. Envelope addresses and
 * DSN values are checked before use, so nothing from a queue record can add an SMTP command.
 * Smarthost credentials go only over TLS (unless its TLS mode is 'none') and never into logs.
 *
 * Standards: rfc5321 5 (MX order, implicit MX, trying each address), 4.5.4.1 (alternate
 * addresses), 4.5.3.2 (timeouts), rfc7505 (null MX: 556 5.1.10), rfc3207 (STARTTLS),
 * rfc2920 (PIPELINING), rfc1870 (SIZE), rfc6152 (8BITMIME), rfc6531 (SMTPUTF8), rfc3461
 * (DSN relay), rfc4954 (AUTH), rfc3463 (status codes).
 */
import type { Resolver } from 'node:dns/promises';
import { lookup } from 'node:dns/promises';
import type { Readable } from 'node:stream';
import type { Logger } from '../../log/logger.js';
import { normalizeHost, resolveAddresses, resolveMx, type MxHost } from './mx.js';
import { runSession, type Reason, type SessionTimeouts } from './session.js';

export interface OutboundRecipient {
  id: number;
  address: string;
  /** rfc3461 ORCPT as stored: `addr-type;address`, decoded (e.g. `rfc822;user@example.org`). */
  orcpt: string | null;
  /** rfc3461 NOTIFY value: `NEVER` or a comma list of SUCCESS, FAILURE, DELAY. */
  notify: string | null;
}

export interface DeliveryRequest {
  /** Destination domain, lower-case; all recipients are in it. */
  domain: string;
  /** '' = the null reverse-path. */
  mailFrom: string;
  recipients: OutboundRecipient[];
  envId: string | null;
  ret: 'FULL' | 'HDRS' | null;
  /** Exact bytes open() yields. */
  size: number;
  /** The message bytes with CRLF line ends; a fresh stream on each call. */
  open(): Readable;
  /** The body has 8-bit bytes (caller computes). */
  needs8BitMime: boolean;
  /** The envelope or headers need SMTPUTF8 (caller computes). */
  needsSmtpUtf8: boolean;
}

/** required = STARTTLS with a valid certificate for the MX name. */
export type TlsPolicy = 'opportunistic' | 'required';

export interface Smarthost {
  host: string;
  port: number;
  tls: 'starttls' | 'implicit' | 'none';
  username: string | null;
  password: string | null;
}

export interface DeliveryTimeouts {
  connectMs: number;
  greetingMs: number;
  commandMs: number;
  dataBlockMs: number;
  dataEndMs: number;
}

export interface DeliveryOptions {
  /** Our EHLO name. */
  hostname: string;
  /** node:dns/promises Resolver (src/net/dns.ts). */
  resolver: Resolver;
  /** Remote port (25 normally; `delivery.remote_port` in tests). */
  port: number;
  /** When set: no MX lookup, connect there, AUTH if username. */
  smarthost: Smarthost | null;
  tlsPolicy: TlsPolicy;
  /** rfc5321 4.5.3.2 limits by default, the connect limit scaled down to 30 s (DEFAULT_TIMEOUTS). */
  timeouts?: Partial<DeliveryTimeouts>;
  log?: Logger;
  localAddress?: string;
  /** Extra CA certificates (PEM) trusted when a certificate is verified (tests, private smarthosts). */
  tlsCa?: Array<string | Buffer>;
}

export interface RecipientOutcome {
  recipientId: number;
  outcome: 'delivered' | 'deferred' | 'failed';
  /** e.g. "550 5.1.1 <x@y>: no such user" or "451 4.4.1 connect to mx1.example[192.0.2.1]:25: Connection refused". */
  reply: string;
  /** The host name that answered, or that we were talking to; null when no server was reached. */
  remoteMta: string | null;
  /** True when the remote advertised DSN and we passed NOTIFY/ORCPT on (RFC 3461 relay rules). */
  dsnRelayed: boolean;
}

/**
 * rfc5321 4.5.3.2: initial 220 message 5 min, MAIL 5 min, RCPT 5 min, DATA initiation 2 min,
 * data block 3 min, DATA termination 10 min. The connect limit is not in the RFC; 30 s as
 * Postfix's smtp_connect_timeout.
 */
export const DEFAULT_TIMEOUTS: DeliveryTimeouts = {
  connectMs: 30_000,
  greetingMs: 300_000,
  commandMs: 300_000,
  dataBlockMs: 180_000,
  dataEndMs: 600_000,
};
/** rfc5321 4.5.3.2.3: DATA initiation, 2 minutes (never more than the command limit). */
const DATA_INIT_MS = 120_000;
/** How long we wait for the reply to QUIT: the outcome is known by then. */
const QUIT_MS = 2_000;

/** Connection attempts per call (Postfix tries 5 addresses) and greeted sessions (Postfix 2). */
export const MAX_ADDRESSES = 10;
export const MAX_SESSIONS = 5;

/** rfc5321 4.5.3.1.3: a path is at most 256 octets; text allowed in a path (no controls, no < >). */
const PATH_CHARS = /^[^\x00-\x1f\x7f<>]*$/;
const NOTIFY = /^(?:NEVER|(?:SUCCESS|FAILURE|DELAY)(?:,(?:SUCCESS|FAILURE|DELAY))*)$/i;

function validPath(address: string): boolean {
  return PATH_CHARS.test(address) && Buffer.byteLength(address, 'utf8') <= 256;
}

function nonAscii(s: string): boolean {
  return /[^\x00-\x7f]/.test(s);
}

function reason(code: number, status: string, text: string, remoteMta: string | null = null): Reason {
  return { reply: `${code} ${status} ${text}`, permanent: code >= 500, remoteMta };
}

export async function deliverMessage(request: DeliveryRequest, options: DeliveryOptions): Promise<RecipientOutcome[]> {
  try {
    return await deliver(request, options);
  } catch (err) {
    // A bug: defer everything rather than lose or bounce mail.
    options.log?.error({ event: 'smtp.client.bug', domain: request.domain, err }, 'delivery failed unexpectedly');
    const text = `451 4.3.0 local error: ${err instanceof Error ? err.message : String(err)}`;
    return request.recipients.map((r) => ({ recipientId: r.id, outcome: 'deferred', reply: text, remoteMta: null, dsnRelayed: false }));
  }
}

async function deliver(request: DeliveryRequest, options: DeliveryOptions): Promise<RecipientOutcome[]> {
  const outcomes = new Map<number, RecipientOutcome>();
  const settle = (ids: Iterable<{ id: number }>, why: Reason, outcome?: RecipientOutcome['outcome']): void => {
    for (const { id } of ids) {
      if (outcomes.has(id)) continue;
      outcomes.set(id, {
        recipientId: id,
        outcome: outcome ?? (why.permanent ? 'failed' : 'deferred'),
        reply: why.reply,
        remoteMta: why.remoteMta,
        dsnRelayed: false,
      });
    }
  };
  const ordered = (): RecipientOutcome[] => request.recipients.map((r) => outcomes.get(r.id)!);

  // Envelope checks: what a queue record holds must not be able to add a command.
  if (request.mailFrom !== '' && !validPath(request.mailFrom)) {
    settle(request.recipients, reason(553, '5.1.7', `bad sender address syntax: ${JSON.stringify(request.mailFrom.slice(0, 100))}`));
    return ordered();
  }
  for (const r of request.recipients) {
    if (r.address === '' || !validPath(r.address)) {
      settle([r], reason(553, '5.1.3', `bad recipient address syntax: ${JSON.stringify(r.address.slice(0, 100))}`));
    }
  }
  let pending = request.recipients
    .filter((r) => !outcomes.has(r.id))
    .map((r) => ({
      ...r,
      // Only well-formed DSN values are passed on (rfc3461 4.1, 4.2); others are dropped.
      notify: r.notify !== null && NOTIFY.test(r.notify) ? r.notify : null,
      orcpt: r.orcpt !== null && PATH_CHARS.test(r.orcpt) && !/\s/.test(r.orcpt) && r.orcpt.length <= 500 ? r.orcpt : null,
    }));
  if (pending.length === 0) return ordered();
  const validEnvId = request.envId !== null && /^[\x21-\x7e]{1,100}$/.test(request.envId) ? request.envId : null;
  const req: DeliveryRequest = { ...request, envId: validEnvId };
  const needsSmtpUtf8 = request.needsSmtpUtf8 || nonAscii(request.mailFrom) || pending.some((r) => nonAscii(r.address));

  const t = { ...DEFAULT_TIMEOUTS };
  for (const [k, v] of Object.entries(options.timeouts ?? {}) as Array<[keyof DeliveryTimeouts, number | undefined]>) {
    if (typeof v === 'number' && v > 0) t[k] = v;
  }
  const timeouts: SessionTimeouts = {
    ...t,
    dataInitMs: Math.min(t.commandMs, DATA_INIT_MS),
    quitMs: Math.min(t.commandMs, QUIT_MS),
  };

  // Where to go.
  const smarthost = options.smarthost;
  let hosts: MxHost[];
  let loopTruncated = false;
  if (smarthost !== null) {
    hosts = [{ host: normalizeHost(smarthost.host.replace(/^\[(.*)\]$/, '$1')), preference: 0 }];
  } else {
    const mx = await resolveMx(request.domain, options.resolver);
    switch (mx.kind) {
      case 'null-mx':
        // rfc7505 4.2: 556 5.1.10 for a domain that declares it takes no mail.
        settle(pending, reason(556, '5.1.10', `Domain ${request.domain} does not accept mail (null MX)`));
        return ordered();
      case 'no-domain':
        settle(pending, reason(550, '5.1.2', `Host or domain name not found. ${mx.error}`));
        return ordered();
      case 'temporary':
        settle(pending, reason(451, '4.4.3', `Host or domain name lookup failed. ${mx.error}`));
        return ordered();
      case 'hosts':
        hosts = mx.hosts;
    }
    // Mail loop detection by name (Postfix also compares addresses): we may send only to hosts
    // more preferred than ourselves; when we are the best MX, the mail loops back to us.
    const self = normalizeHost(options.hostname);
    const mine = hosts.find((h) => h.host === self);
    if (mine !== undefined) {
      hosts = hosts.filter((h) => h.preference < mine.preference);
      loopTruncated = true;
      if (hosts.length === 0) {
        settle(pending, reason(554, '5.4.6', `mail for ${request.domain} loops back to myself`));
        return ordered();
      }
    }
  }

  const port = smarthost?.port ?? options.port;
  let last: Reason | null = null;
  let addressesTried = 0;
  let sessions = 0;
  let lookupError: string | null = null;
  let lookupTemporary = false;
  hostLoop: for (const mx of hosts) {
    if (addressesTried >= MAX_ADDRESSES || sessions >= MAX_SESSIONS) break;
    const found = await addressesOf(mx.host, options.resolver, smarthost !== null);
    if (found.kind !== 'addresses') {
      if (found.kind === 'temporary') lookupTemporary = true;
      if (found.kind === 'temporary' || lookupError === null) lookupError = found.error;
      options.log?.info({ event: 'smtp.client.no_address', host: mx.host, error: found.error }, 'MX host has no usable address');
      continue;
    }
    for (const address of found.addresses) {
      if (addressesTried >= MAX_ADDRESSES || sessions >= MAX_SESSIONS) break hostLoop;
      addressesTried++;
      const base = {
        request: req,
        host: mx.host,
        address,
        port,
        hostname: options.hostname,
        tlsPolicy: options.tlsPolicy,
        smarthost,
        needsSmtpUtf8,
        timeouts,
        ...(options.tlsCa ? { tlsCa: options.tlsCa } : {}),
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        ...(options.log ? { log: options.log } : {}),
      };
      let result = await runSession({ ...base, recipients: pending, plainOnly: false });
      if (result.next?.retryWithoutTls) {
        options.log?.info({ event: 'smtp.client.tls_fallback', host: mx.host, address, reason: result.next.reason.reply }, 'TLS failed; trying again without TLS');
        if (result.greeted) sessions++;
        for (const o of result.decided) outcomes.set(o.recipientId, o);
        pending = pending.filter((r) => !outcomes.has(r.id));
        result = await runSession({ ...base, recipients: pending, plainOnly: true });
      }
      if (result.greeted) sessions++;
      for (const o of result.decided) outcomes.set(o.recipientId, o);
      pending = pending.filter((r) => !outcomes.has(r.id));
      // A clean attempt is already told by the queue's per-recipient lines; a failed one is news.
      options.log?.[result.next ? 'info' : 'debug'](
        {
          event: 'smtp.client.attempt',
          domain: request.domain,
          host: mx.host,
          address,
          decided: result.decided.length,
          pending: pending.length,
          ...(result.next ? { reason: result.next.reason.reply, scope: result.next.scope } : {}),
        },
        `delivery attempt at ${mx.host}[${address}]`,
      );
      if (pending.length === 0 || result.next === null) break hostLoop;
      last = result.next.reason;
      if (result.next.scope === 'stop') break hostLoop;
      if (result.next.scope === 'host') continue hostLoop;
    }
  }

  if (pending.length > 0) {
    let why = last;
    if (why === null) {
      const detail = lookupError ?? 'no address';
      if (loopTruncated) {
        // The better MX hosts have no address, and we must not take the mail ourselves.
        why = reason(451, '4.4.4', `unable to find primary relay for ${request.domain}: ${detail}`);
      } else if (lookupTemporary || smarthost !== null) {
        // A smarthost that cannot be found is a configuration problem: wait, never bounce.
        why = reason(451, '4.4.3', `Host or domain name lookup failed. ${detail}`);
      } else {
        // Every MX host name is unknown to the DNS: a broken domain, bounced as Postfix does.
        why = reason(550, '5.4.4', `no MX host for ${request.domain} has a valid address record. ${detail}`);
      }
    }
    settle(pending, why);
  }
  return ordered();
}

/**
 * A server's addresses: MX hosts through the injected resolver; a smarthost through it too, and
 * then through the system's resolver (hosts file included), since it is often a local name.
 */
async function addressesOf(
  host: string,
  resolver: Resolver,
  isSmarthost: boolean,
): Promise<{ kind: 'addresses'; addresses: string[] } | { kind: 'none' | 'temporary'; error: string }> {
  const found = await resolveAddresses(host, resolver);
  if (found.kind === 'addresses' || !isSmarthost) return found;
  try {
    const system = await lookup(host, { all: true, verbatim: true });
    if (system.length > 0) return { kind: 'addresses', addresses: system.map((a) => a.address) };
  } catch {
    // Fall through with the DNS answer.
  }
  return { kind: 'temporary', error: found.error };
}
