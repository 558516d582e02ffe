/**
 * Where mail for a domain goes: its MX hosts in the order to try them, and their addresses.
 *
 * Purpose: the DNS half of rfc5321 section 5. `resolveMx` turns a domain into MX hosts sorted
 * by preference (shuffled among equal preferences), the implicit MX (the domain itself when it
 * has no MX but has A or AAAA records), a null MX (rfc7505), a domain that does not exist, or a
 * temporary failure. `resolveAddresses` turns a host into the IP addresses to connect to.
 *
 * Invariants
 * - Never throws: every DNS answer and error becomes a typed result. Only NXDOMAIN (ENOTFOUND)
 *   and "no such record" (ENODATA) are taken as facts; every other error (SERVFAIL, timeout,
 *   refused, bad response) is temporary, so a DNS outage delays mail instead of bouncing it.
 * - The resolver is injected (src/net/dns.ts builds it from the `dns.servers` setting), so
 *   tests run against a DNS server of their own on loopback.
 *
 * Security: DNS answers are untrusted. At most MAX_MX_HOSTS hosts and MAX_ADDRESSES_PER_HOST
 * addresses per host are kept, so a hostile zone cannot make one delivery try thousands of
 * connections. Host names are normalised (lower case, no trailing dot).
 *
 * Standards: rfc5321 5.1 (MX lookup, preference order, random among equal preferences, the
 * implicit MX, A and AAAA), rfc7505 3 and 4.1 (null MX: "." with preference 0, alone),
 * rfc5891 (IDNA: a U-label domain is looked up by its A-label).
 */
import type { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { domainToASCII } from 'node:url';

export interface MxHost {
  /** Lower-case, without a trailing dot. */
  host: string;
  preference: number;
}

export type MxResult =
  /** `implicit`: the domain had no MX records and is its own mail host (rfc5321 5.1). */
  | { kind: 'hosts'; hosts: MxHost[]; implicit: boolean }
  /** rfc7505: the domain accepts no mail; a permanent failure (556 5.1.10). */
  | { kind: 'null-mx' }
  /** NXDOMAIN, or no MX and no A/AAAA either: permanent. */
  | { kind: 'no-domain'; error: string }
  /** SERVFAIL, timeout, refused...: try again later. */
  | { kind: 'temporary'; error: string };

export type AddressResult =
  | { kind: 'addresses'; addresses: string[] }
  /** The name does not exist or has neither A nor AAAA records. */
  | { kind: 'none'; error: string }
  | { kind: 'temporary'; error: string };

/** rfc5321 does not limit MX records; Postfix tries 5 addresses. We keep a generous bound. */
export const MAX_MX_HOSTS = 20;
export const MAX_ADDRESSES_PER_HOST = 10;

/** Node's resolver error codes that state a fact rather than a failure. */
const NXDOMAIN = 'ENOTFOUND';
const NODATA = 'ENODATA';

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? 'EUNKNOWN';
}

function describeDnsError(name: string, type: string, err: unknown): string {
  const code = errorCode(err);
  const what =
    code === NXDOMAIN
      ? 'Host not found'
      : code === NODATA
        ? 'No data record of requested type'
        : code === 'ESERVFAIL'
          ? 'Server failure (SERVFAIL)'
          : code === 'ETIMEOUT'
            ? 'Timed out'
            : code === 'EREFUSED' || code === 'ECONNREFUSED'
              ? 'Query refused'
              : code;
  // Postfix's wording, which admins know from their logs.
  return `Name service error for name=${name} type=${type}: ${what}`;
}

/** Lower case, no trailing dot, A-labels for U-labels (the form DNS answers use). */
export function normalizeHost(name: string): string {
  const trimmed = name.trim().replace(/\.$/, '').toLowerCase();
  if (/^[\x00-\x7f]*$/.test(trimmed)) return trimmed;
  const ascii = domainToASCII(trimmed);
  return ascii === '' ? trimmed : ascii;
}

/** Fisher-Yates shuffle of `items` in place, with an injectable random source for tests. */
function shuffle<T>(items: T[], random: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}

/**
 * The MX hosts of `domain`, best first (rfc5321 5.1: lowest preference first, "randomized" among
 * equal preferences). Duplicate host names keep their best preference.
 */
export async function resolveMx(domain: string, resolver: Resolver, random: () => number = Math.random): Promise<MxResult> {
  const name = normalizeHost(domain);
  let records: Array<{ exchange: string; priority: number }>;
  try {
    records = await resolver.resolveMx(name);
  } catch (err) {
    const code = errorCode(err);
    if (code === NXDOMAIN) return { kind: 'no-domain', error: describeDnsError(name, 'MX', err) };
    if (code !== NODATA) return { kind: 'temporary', error: describeDnsError(name, 'MX', err) };
    records = [];
  }
  // rfc7505 3: a null MX is a single MX record with an empty exchange (the root, ".") and
  // preference 0. rfc7505 4.1: a null MX among other records is a misconfiguration; those
  // other records are used, and the "." entry is ignored since it can never be connected to.
  const real = records.filter((r) => normalizeHost(r.exchange) !== '');
  if (records.length > 0 && real.length === 0) return { kind: 'null-mx' };
  if (real.length === 0) return implicitMx(name, resolver);
  const best = new Map<string, number>();
  for (const r of real) {
    const host = normalizeHost(r.exchange);
    const known = best.get(host);
    if (known === undefined || r.priority < known) best.set(host, r.priority);
  }
  const byPreference = new Map<number, MxHost[]>();
  for (const [host, preference] of best) {
    const group = byPreference.get(preference) ?? [];
    group.push({ host, preference });
    byPreference.set(preference, group);
  }
  const hosts: MxHost[] = [];
  for (const preference of [...byPreference.keys()].sort((a, b) => a - b)) {
    const group = byPreference.get(preference)!;
    shuffle(group, random);
    hosts.push(...group);
  }
  return { kind: 'hosts', hosts: hosts.slice(0, MAX_MX_HOSTS), implicit: false };
}

/** rfc5321 5.1: no MX records: the domain itself is the host, if it has an address record. */
async function implicitMx(name: string, resolver: Resolver): Promise<MxResult> {
  const addresses = await resolveAddresses(name, resolver);
  switch (addresses.kind) {
    case 'addresses':
      return { kind: 'hosts', hosts: [{ host: name, preference: 0 }], implicit: true };
    case 'none':
      return { kind: 'no-domain', error: addresses.error };
    case 'temporary':
      return { kind: 'temporary', error: addresses.error };
  }
}

let ipv6Routable: boolean | null = null;

/**
 * Whether this machine has a global IPv6 address (neither loopback nor link-local), i.e. can
 * probably reach IPv6 hosts. Read once.
 */
export function hasGlobalIpv6(): boolean {
  if (ipv6Routable === null) {
    ipv6Routable = Object.values(networkInterfaces()).some((list) =>
      (list ?? []).some((a) => a.family === 'IPv6' && !a.internal && !/^fe[89ab]/i.test(a.address)),
    );
  }
  return ipv6Routable;
}

export interface AddressOptions {
  /** Put IPv6 addresses first (default: when this machine has a global IPv6 address). */
  preferIpv6?: boolean;
}

/**
 * The A and AAAA addresses of `host`, both families, IPv6 first only when this machine seems to
 * have IPv6 connectivity. Within a family, the order the DNS gave is kept. An IP literal is
 * returned as it is.
 */
export async function resolveAddresses(host: string, resolver: Resolver, options: AddressOptions = {}): Promise<AddressResult> {
  const literal = host.replace(/^\[(.*)\]$/, '$1');
  if (isIP(literal) !== 0) return { kind: 'addresses', addresses: [literal] };
  const name = normalizeHost(host);
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
  const found: { v4: string[]; v6: string[] } = { v4: [], v6: [] };
  const errors: Array<{ type: string; err: unknown }> = [];
  if (v4.status === 'fulfilled') found.v4 = v4.value;
  else errors.push({ type: 'A', err: v4.reason });
  if (v6.status === 'fulfilled') found.v6 = v6.value;
  else errors.push({ type: 'AAAA', err: v6.reason });
  const preferIpv6 = options.preferIpv6 ?? hasGlobalIpv6();
  const ordered = (preferIpv6 ? [...found.v6, ...found.v4] : [...found.v4, ...found.v6]).slice(0, MAX_ADDRESSES_PER_HOST);
  if (ordered.length > 0) return { kind: 'addresses', addresses: ordered };
  // Nothing found: temporary if either lookup failed for another reason than "no such name/data".
  const soft = errors.find((e) => errorCode(e.err) !== NXDOMAIN && errorCode(e.err) !== NODATA);
  if (soft !== undefined) return { kind: 'temporary', error: describeDnsError(name, soft.type, soft.err) };
  const first = errors[0];
  return { kind: 'none', error: first ? describeDnsError(name, first.type, first.err) : `${name}: host has no address` };
}
