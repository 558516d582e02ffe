/**
 * Validation and normal forms of the names the directory holds: domains, addresses, alias keys.
 * Domains are kept in ASCII (IDNs as punycode) and lower case.
 */
import { domainToASCII } from 'node:url';
import { InvalidInput } from '../util/errors.js';

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export function normalizeDomain(name: string): string {
  const trimmed = name.trim().replace(/\.$/, '');
  const ascii = domainToASCII(trimmed.toLowerCase());
  if (!ascii || ascii.length > 253) throw new InvalidInput(`"${name}" is not a valid domain name`);
  const labels = ascii.split('.');
  if (labels.length < 1 || !labels.every((l) => LABEL.test(l))) {
    throw new InvalidInput(`"${name}" is not a valid domain name (letters, digits, hyphens and dots only)`);
  }
  return ascii;
}

/** `local@domain` in its stored form; the local part is lower-cased as well. */
export function normalizeAddress(address: string): { address: string; localPart: string; domain: string } {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) {
    throw new InvalidInput(`"${address}" is not an email address (expected local@domain)`);
  }
  const localPart = address.slice(0, at).toLowerCase();
  if (localPart.length > 64) throw new InvalidInput(`the local part of "${address}" is longer than 64 characters`);
  if (/[\s<>()\[\]\\,;:"@]/.test(localPart) || localPart.startsWith('.') || localPart.endsWith('.') || localPart.includes('..')) {
    throw new InvalidInput(`"${address}" has a local part Fulmar cannot host (no spaces, quotes, brackets or leading, trailing or double dots)`);
  }
  const domain = normalizeDomain(address.slice(at + 1));
  return { address: `${localPart}@${domain}`, localPart, domain };
}

/** An alias key: an address, or `@domain` for a catch-all. */
export function normalizeAliasKey(key: string): { key: string; domain: string; catchAll: boolean } {
  if (key.startsWith('@')) {
    const domain = normalizeDomain(key.slice(1));
    return { key: `@${domain}`, domain, catchAll: true };
  }
  const a = normalizeAddress(key);
  return { key: a.address, domain: a.domain, catchAll: false };
}

/** An alias target: any address (local or remote). Lower-cases only the domain of remote targets. */
export function normalizeTarget(target: string): string {
  return normalizeAddress(target).address;
}
