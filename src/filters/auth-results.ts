/**
 * Sender and message authentication of mail arriving on port 25: SPF (client IP, HELO, MAIL
 * FROM), DKIM, DMARC and ARC, evaluated by mailauth over the spooled message, summed up in an
 * `Authentication-Results` header (RFC 8601) and a verdict: deliver, deliver to Junk, or refuse.
 *
 * Policy
 * - DMARC fail under p=reject: refused (550 5.7.1) when `smtp.dmarc_reject` is on, else Junk.
 *   Under p=quarantine: Junk. A `pct` below 100 applies the policy to that share of the mail
 *   and the next milder one to the rest (RFC 7489 6.6.4).
 * - Every distinct From domain is checked (RFC 7489 6.6.1): a second address in From cannot
 *   hide a domain that publishes p=reject. The strictest verdict wins.
 * - A DNS failure (timeout, SERVFAIL) gives temperror and never refuses mail; the whole check
 *   has a time budget (AUTH_CHECK_BUDGET_MS), after which lookups fail as timeouts.
 * - An internal error of the checks delivers the message without a header (logged by the caller).
 *
 * The message is streamed from the spool (bounded memory whatever its size): mailauth keeps the
 * header section and hashes the body as it passes.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import libmime from 'libmime';
import { authenticate, dmarc as checkDmarc, type AuthenticateResult, type DMARCResult } from 'mailauth';
import { createResolver } from '../net/dns.js';
import type { SettingsSnapshot } from '../store/runtime-settings.js';
import type { StagedBlob } from '../store/types.js';
import { mailauthResolver, type DnsLookup, type MailauthResolver } from './mailauth-resolver.js';

/** Time one message's checks may spend waiting for DNS, in all. */
export const AUTH_CHECK_BUDGET_MS = 8000;
/** First timeout of one DNS query (node:dns retries once, with a doubled timeout). */
export const AUTH_DNS_TIMEOUT_MS = 1500;

/** The SMTP client whose message is checked, and our own name (the authserv-id). */
export interface InboundClient {
  /** The client's IP address. */
  ip: string;
  /** Its HELO/EHLO name, when it gave one. */
  helo: string | null;
  /** Our hostname: the authserv-id of the header. */
  hostname: string;
}

export type AuthAction = 'deliver' | 'junk' | 'reject';

export interface AuthVerdict {
  /** `Authentication-Results: ...\r\n`, to put before the message; empty when the checks failed. */
  header: Buffer;
  action: AuthAction;
  /** The From domain whose DMARC policy decided a junk or reject action. */
  policyDomain: string | null;
  /** One word per method, for the log: `pass`, `fail`, `temperror`, ... */
  results: { spf: string; dkim: string; dmarc: string; arc: string };
  /** Why the checks could not run (the message is delivered as it is). */
  error?: string;
}

/** The facts of one DMARC evaluation that decide what happens to the message. */
export interface DmarcOutcome {
  result: string;
  /** The policy that applies (p=, or sp= for a subdomain), lower case; null without a record. */
  policy: string | null;
  pct?: number | undefined;
}

/**
 * What a DMARC evaluation asks us to do with the message (RFC 7489 6.6.4). `random` is in
 * [0, 1) and picks the messages a pct below 100 applies to.
 */
export function dmarcAction(outcome: DmarcOutcome | null, options: { rejectEnabled: boolean; random?: () => number }): AuthAction {
  if (!outcome || outcome.result !== 'fail') return 'deliver';
  let policy = (outcome.policy ?? 'none').toLowerCase();
  const pct = typeof outcome.pct === 'number' && Number.isFinite(outcome.pct) ? Math.max(0, Math.min(100, outcome.pct)) : 100;
  if (pct < 100 && (options.random ?? Math.random)() * 100 >= pct) {
    // Not sampled: the next milder policy applies.
    policy = policy === 'reject' ? 'quarantine' : 'none';
  }
  if (policy === 'reject') return options.rejectEnabled ? 'reject' : 'junk';
  if (policy === 'quarantine') return 'junk';
  return 'deliver';
}

const SEVERITY: Record<AuthAction, number> = { deliver: 0, junk: 1, reject: 2 };

/** One result of the header (`spf=pass (...) smtp.mailfrom=...`), made safe for a header line. */
function headerRow(text: string): string {
  // Values come from the message and the envelope: no line breaks or controls may pass.
  const flat = text.replace(/[\x00-\x1f\x7f]+/g, ' ').replace(/ {2,}/g, ' ').trim();
  return libmime.foldLines(flat.length > 900 ? `${flat.slice(0, 900)}...` : flat, 160);
}

/** `Authentication-Results: <authserv-id>;` and one method result per line (RFC 8601 2.2). */
export function authenticationResultsHeader(authservId: string, rows: string[]): string {
  const id = authservId.replace(/[^\x21-\x7e]/g, '');
  if (rows.length === 0) return `Authentication-Results: ${id}; none\r\n`;
  return `Authentication-Results: ${id};\r\n ${rows.map(headerRow).join(';\r\n ')}\r\n`;
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return (at >= 0 ? address.slice(at + 1) : address).trim().toLowerCase().replace(/\.$/, '');
}

/** The first word of a result (`pass`), for logs. */
function word(result: string | undefined): string {
  return result ?? 'none';
}

export interface AuthCheckRequest {
  client: InboundClient;
  /** MAIL FROM; '' for the null sender (SPF then checks the HELO name). */
  mailFrom: string;
  resolver: MailauthResolver;
  /** `smtp.dmarc_reject`. */
  dmarcReject: boolean;
  random?: () => number;
}

/** Runs the checks on one message (a Buffer or a stream of its bytes) and returns the verdict. */
export async function checkMessageAuth(message: Readable | Buffer, request: AuthCheckRequest): Promise<AuthVerdict> {
  const { client, resolver } = request;
  const result: AuthenticateResult = await authenticate(message, {
    ip: client.ip,
    helo: client.helo ?? undefined,
    sender: request.mailFrom === '' ? undefined : request.mailFrom,
    mta: client.hostname,
    resolver: resolver as never,
    disableBimi: true,
    // DMARC is evaluated below, once per From domain.
    disableDmarc: true,
  } as Parameters<typeof authenticate>[1]);

  const rows: string[] = [];
  const spf = result.spf || null;
  rows.push(spf ? spf.info : 'spf=none');
  const dkimResults = result.dkim.results ?? [];
  if (dkimResults.length === 0) rows.push('dkim=none (message not signed)');
  for (const r of dkimResults) rows.push(r.info);

  const spfDomains = spf && spf.status.result === 'pass' ? [spf.domain] : [];
  const dkimDomains = dkimResults
    .filter((r) => r.status.result === 'pass')
    .map((r) => ({ id: r.id, domain: r.signingDomain, aligned: r.status.aligned, underSized: r.status.underSized }));
  const arcResult = result.arc || undefined;

  const fromDomains = [...new Set((result.dkim.headerFrom ?? []).map(domainOf).filter((d) => d !== ''))];
  let action: AuthAction = 'deliver';
  let policyDomain: string | null = null;
  const dmarcWords: string[] = [];
  if (fromDomains.length === 0) {
    rows.push('dmarc=none (no From address)');
    dmarcWords.push('none');
  }
  for (const domain of fromDomains) {
    const d: DMARCResult | false = await checkDmarc({
      headerFrom: `postmaster@${domain}`,
      spfDomains,
      dkimDomains: dkimDomains as never,
      ...(arcResult ? { arcResult } : {}),
      resolver: resolver as never,
    });
    if (!d) continue;
    rows.push(d.info);
    dmarcWords.push(d.status.result);
    const verdict = dmarcAction(
      { result: d.status.result, policy: d.policy ?? null, pct: d.pct },
      { rejectEnabled: request.dmarcReject, ...(request.random ? { random: request.random } : {}) },
    );
    if (SEVERITY[verdict] > SEVERITY[action]) {
      action = verdict;
      policyDomain = domain;
    }
  }
  rows.push(arcResult?.info ?? `arc=${word(arcResult?.status.result)}`);

  return {
    header: Buffer.from(authenticationResultsHeader(client.hostname, rows), 'utf8'),
    action,
    policyDomain,
    results: {
      spf: word(spf?.status.result),
      dkim: dkimResults.length === 0 ? 'none' : dkimResults.map((r) => r.status.result).join(','),
      dmarc: dmarcWords.join(',') || 'none',
      arc: word(arcResult?.status.result),
    },
  };
}

/** The spooled bytes as a stream (a file) or a buffer (small messages kept inline). */
export function readStagedBlob(blob: StagedBlob): Readable | Buffer {
  if (blob.inline) return blob.inline;
  if (blob.stagingPath) return createReadStream(blob.stagingPath, { highWaterMark: 64 * 1024 });
  return Buffer.alloc(0);
}

// One node:dns resolver per `dns.servers` value (a runtime setting that may change).
let cachedResolver: { servers: string; dns: DnsLookup } | null = null;

function resolverFor(servers: string): DnsLookup {
  if (cachedResolver?.servers !== servers) cachedResolver = { servers, dns: createResolver(servers, AUTH_DNS_TIMEOUT_MS) };
  return cachedResolver.dns;
}

/**
 * The checks as ingest runs them on a spooled message: null when `smtp.auth_checks` is off;
 * never throws (a failure of the checks themselves delivers the message unchanged).
 */
export async function checkSpooledMessage(
  blob: StagedBlob,
  client: InboundClient,
  mailFrom: string,
  settings: SettingsSnapshot,
): Promise<AuthVerdict | null> {
  if (!settings.get('smtp.auth_checks')) return null;
  const resolver = mailauthResolver(resolverFor(settings.get('dns.servers')), { budgetMs: AUTH_CHECK_BUDGET_MS });
  const message = readStagedBlob(blob);
  try {
    return await checkMessageAuth(message, { client, mailFrom, resolver, dmarcReject: settings.get('smtp.dmarc_reject') });
  } catch (err) {
    return {
      header: Buffer.alloc(0),
      action: 'deliver',
      policyDomain: null,
      results: { spf: 'none', dkim: 'none', dmarc: 'none', arc: 'none' },
      error: (err as Error).message,
    };
  } finally {
    if (!Buffer.isBuffer(message)) message.destroy();
  }
}
