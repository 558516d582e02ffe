/**
 * Normalizes and validates the names the store keys on: domains, addresses, alias addresses
 * and mailbox names. Shared by every adapter, so SQLite and PostgreSQL agree on what is valid.
 *
 * Invariants
 * - Domains and addresses come out lower-cased (see store/types.ts); a trailing dot is dropped.
 * - `INBOX` is always spelled so, and so is the `INBOX/` prefix of its children (RFC 3501 6.3.1:
 *   the name INBOX is case-insensitive).
 * - Every failure is an InvalidInput whose message names the offending value.
 */
import { InvalidInput } from '../util/errors.js';

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// Printable characters that cannot appear unquoted in a local part, plus whitespace and controls.
const LOCAL_FORBIDDEN = /[\s\x00-\x1f\x7f@<>,;:"()[\]\\]/;

export interface ParsedAddress {
  /** `local@domain`, lower-cased. */
  address: string;
  localPart: string;
  domain: string;
}

export interface ParsedAliasAddress {
  /** `local@domain`, or `@domain` for a catch-all; lower-cased. */
  address: string;
  /** null for a catch-all. */
  localPart: string | null;
  domain: string;
}

export function normalizeDomain(name: string): string {
  const domain = name.trim().toLowerCase().replace(/\.$/, '');
  if (domain.length === 0 || domain.length > 253 || !domain.split('.').every((l) => LABEL.test(l))) {
    throw new InvalidInput(`"${name}" is not a valid domain name`);
  }
  return domain;
}

function normalizeLocalPart(local: string, original: string): string {
  const lower = local.toLowerCase();
  if (
    lower.length === 0 ||
    lower.length > 64 ||
    LOCAL_FORBIDDEN.test(lower) ||
    lower.startsWith('.') ||
    lower.endsWith('.') ||
    lower.includes('..')
  ) {
    throw new InvalidInput(`"${original}" is not a valid address`);
  }
  return lower;
}

function splitAt(address: string): [string, string] {
  const at = address.lastIndexOf('@');
  if (at < 0) throw new InvalidInput(`"${address}" is not a valid address (no @)`);
  return [address.slice(0, at), address.slice(at + 1)];
}

/** `Alice@Example.COM` → `alice@example.com`; throws InvalidInput when malformed. */
export function parseAddress(address: string): ParsedAddress {
  const trimmed = address.trim();
  const [local, domainPart] = splitAt(trimmed);
  const localPart = normalizeLocalPart(local, address);
  const domain = normalizeDomainOf(domainPart, address);
  return { address: `${localPart}@${domain}`, localPart, domain };
}

/** Like parseAddress, but also accepts `@domain` (a catch-all). */
export function parseAliasAddress(address: string): ParsedAliasAddress {
  const trimmed = address.trim();
  if (trimmed.startsWith('@')) {
    const domain = normalizeDomainOf(trimmed.slice(1), address);
    return { address: `@${domain}`, localPart: null, domain };
  }
  return parseAddress(trimmed);
}

function normalizeDomainOf(domainPart: string, original: string): string {
  try {
    return normalizeDomain(domainPart);
  } catch {
    throw new InvalidInput(`"${original}" is not a valid address (bad domain)`);
  }
}

/** Validates a mailbox name (`/` is the hierarchy delimiter) and spells INBOX canonically. */
export function normalizeMailboxName(name: string): string {
  // rfc9051 5.1, rfc6855 3: no C0 or C1 controls, no U+2028/U+2029.
  if (name.length === 0 || name.length > 512 || /[\x00-\x1f\x7f-\x9f\u2028\u2029]/.test(name)) {
    throw new InvalidInput(`"${name}" is not a valid mailbox name`);
  }
  if (name.startsWith('/') || name.endsWith('/') || name.includes('//')) {
    throw new InvalidInput(`"${name}" is not a valid mailbox name (empty hierarchy level)`);
  }
  // Names are never paths here, but clients map them to folders (Maildir, mbsync): refuse the
  // levels that would climb out of one.
  if (name.split('/').some((level) => level === '.' || level === '..')) {
    throw new InvalidInput(`"${name}" is not a valid mailbox name (a level may not be . or ..)`);
  }
  const first = name.split('/', 1)[0]!;
  return first.toUpperCase() === 'INBOX' ? 'INBOX' + name.slice(first.length) : name;
}
