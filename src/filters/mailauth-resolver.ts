/**
 * The DNS lookups of one message's authentication checks (SPF, DKIM, DMARC, ARC), shaped as
 * mailauth wants them: `(name, rrtype) => records`, failing with the node:dns error codes that
 * mailauth maps to results (ENOTFOUND / ENODATA: no record; anything else: temperror).
 *
 * On top of node:dns this adds what one message's checks need to stay bounded:
 * - a deadline for the whole message: once passed, every lookup (pending or new) fails at once
 *   with ETIMEOUT, so a dead DNS server costs at most the budget, not one timeout per lookup;
 * - a cap on the number of distinct lookups (a header full of DKIM-Signature fields must not
 *   turn one message into hundreds of queries);
 * - one query per name and type: a repeated lookup shares the first one's answer or error.
 */
import type { Resolver } from 'node:dns/promises';

/** mailauth's resolver: TXT gives string[][], A/AAAA string[], MX {exchange, priority}[]. */
export type MailauthResolver = (name: string, rrtype: string) => Promise<unknown[]>;

/** The part of node:dns/promises' Resolver the adapter uses (a fake in unit tests). */
export type DnsLookup = Pick<Resolver, 'resolve'>;

export interface MailauthResolverOptions {
  /** Milliseconds from now after which every lookup fails with ETIMEOUT. */
  budgetMs: number;
  /** Distinct (name, type) lookups allowed; more fail with ETIMEOUT (a temporary error). */
  maxLookups?: number;
  now?: () => number;
}

export const DEFAULT_MAX_LOOKUPS = 50;

const SUPPORTED_TYPES = new Set(['A', 'AAAA', 'CNAME', 'MX', 'NS', 'PTR', 'SOA', 'SRV', 'TXT', 'CAA', 'NAPTR']);

/** An error shaped like node:dns's, so mailauth reads its `code`. */
export function dnsError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

export function mailauthResolver(dns: DnsLookup, options: MailauthResolverOptions): MailauthResolver {
  const now = options.now ?? Date.now;
  const deadline = now() + options.budgetMs;
  const maxLookups = options.maxLookups ?? DEFAULT_MAX_LOOKUPS;
  const answers = new Map<string, Promise<unknown[]>>();

  const lookup = async (name: string, rrtype: string): Promise<unknown[]> => {
    const type = rrtype.toUpperCase();
    // mailauth asks for TXT on names taken from messages; refuse what cannot be a DNS name.
    if (!SUPPORTED_TYPES.has(type)) throw dnsError('ENODATA', `${type} lookups are not supported`);
    if (name.length === 0 || name.length > 253 || /[\s\0]/.test(name)) throw dnsError('ENOTFOUND', `invalid DNS name ${JSON.stringify(name)}`);
    const left = deadline - now();
    if (left <= 0) throw dnsError('ETIMEOUT', `DNS lookup of ${name} ${type}: time budget for this message used up`);
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(dnsError('ETIMEOUT', `DNS lookup of ${name} ${type} timed out`)), left);
    });
    try {
      const query = Promise.resolve().then(() => dns.resolve(name, type) as Promise<unknown[]>);
      return await Promise.race([query, expired]);
    } finally {
      clearTimeout(timer);
    }
  };

  return (name: string, rrtype: string): Promise<unknown[]> => {
    const key = `${name.toLowerCase().replace(/\.$/, '')}\0${rrtype.toUpperCase()}`;
    let answer = answers.get(key);
    if (answer) return answer;
    if (answers.size >= maxLookups) return Promise.reject(dnsError('ETIMEOUT', `more than ${maxLookups} DNS lookups for one message`));
    answer = lookup(name, rrtype);
    // A rejection no caller awaited yet must not count as unhandled.
    answer.catch(() => {});
    answers.set(key, answer);
    return answer;
  };
}
