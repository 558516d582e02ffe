/**
 * Names as administrators type them, turned into the store's normal forms: internationalised
 * domains become punycode here, then the store's own checks (store/names.ts) apply.
 */
import { domainToASCII } from 'node:url';
import { normalizeDomain as storeDomain, parseAddress, parseAliasAddress } from '../store/names.js';

function asciiDomain(domain: string): string {
  const trimmed = domain.trim().replace(/\.$/, '');
  return domainToASCII(trimmed.toLowerCase()) || trimmed;
}

function withAsciiDomain(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? address : `${address.slice(0, at + 1)}${asciiDomain(address.slice(at + 1))}`;
}

export function normalizeDomain(name: string): string {
  return storeDomain(asciiDomain(name));
}

/** `local@domain` in its stored form (lower case, punycode domain). */
export function normalizeAddress(address: string): { address: string; localPart: string; domain: string } {
  return parseAddress(withAsciiDomain(address.trim()));
}

/** An alias key: an address, or `@domain` for a catch-all. */
export function normalizeAliasKey(key: string): { key: string; domain: string; catchAll: boolean } {
  const parsed = parseAliasAddress(withAsciiDomain(key.trim()));
  return { key: parsed.address, domain: parsed.domain, catchAll: parsed.localPart === null };
}

/** An alias target: any address, local or remote. */
export function normalizeTarget(target: string): string {
  return normalizeAddress(target).address;
}
