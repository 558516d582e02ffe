/**
 * Who a message collected from a domain's catch-all mailbox is for, read from its header
 * (shared/design/mdaemon-behaviours.md 4.2). Pure: header fields in, candidate addresses out,
 * each with the header that named it, for the log and for the policies (an address taken from a
 * Received line is never relayed).
 *
 * Two modes:
 * - envelope: one named header (X-Rcpt-To, Delivered-To, ...), its Nth occurrence from the top,
 *   an optional prefix stripped from the local part (qmail's virtual-domain prefix). One
 *   recipient, or none when the header is missing.
 * - headers (MDaemon's): the union of the addresses in a list of headers, optionally the
 *   `for <addr>` of Received lines and `(addr)` in the Subject.
 */
import libmime from 'libmime';
import { isDomainName, parseAddressList } from '../../message/address.js';
import { unfoldValue } from '../../message/envelope.js';
import type { HeaderField } from '../../message/header.js';

export interface RecipientRules {
  mode: 'envelope' | 'headers';
  envelopeHeader: string | null;
  envelopeOccurrence: number;
  stripPrefix: string | null;
  headers: string[];
  received: boolean;
  skipReceived: number;
  stopAtLocal: boolean;
  subjectParens: boolean;
  /** The source's domain: a stripped envelope address is moved into it. */
  domain: string;
}

export interface RecipientCandidate {
  /** `local@domain`, domain lower-cased, local part as written. */
  address: string;
  /** The display name, encoded words decoded; '' when none. */
  name: string;
  /** The header that named it: `To`, `X-Rcpt-To#2`, `Received#3`, `Subject`. */
  source: string;
  fromReceived: boolean;
}

/** At most this many candidates per message: a header naming thousands is a spam run, not a list. */
export const MAX_CANDIDATES = 500;

export async function extractRecipients(
  fields: readonly HeaderField[],
  rules: RecipientRules,
  isLocal: (address: string) => Promise<boolean>,
): Promise<RecipientCandidate[]> {
  const found = new Map<string, RecipientCandidate>();
  const add = (candidate: RecipientCandidate): void => {
    const key = candidate.address.toLowerCase();
    if (!found.has(key) && found.size < MAX_CANDIDATES) found.set(key, candidate);
  };

  if (rules.mode === 'envelope') {
    const name = (rules.envelopeHeader ?? 'X-Rcpt-To').toLowerCase();
    const occurrences = fields.filter((f) => f.name.toLowerCase() === name);
    const field = occurrences[rules.envelopeOccurrence - 1];
    if (!field) return [];
    const address = envelopeAddress(unfoldValue(field.value), rules);
    if (address) add({ address, name: '', source: `${field.name}#${rules.envelopeOccurrence}`, fromReceived: false });
    return [...found.values()];
  }

  const wanted = new Map(rules.headers.map((h) => [h.toLowerCase(), h]));
  for (const field of fields) {
    const label = wanted.get(field.name.toLowerCase());
    if (!label) continue;
    for (const entry of parseAddressList(unfoldValue(field.value))) {
      const address = normalize(entry.address);
      if (address) add({ address, name: decodeName(entry.name), source: label, fromReceived: false });
    }
  }
  if (rules.subjectParens) {
    const subject = fields.find((f) => f.name.toLowerCase() === 'subject');
    if (subject) {
      for (const m of decodeName(unfoldValue(subject.value)).matchAll(/\(\s*([^()\s<>@,;]+@[^()\s<>@,;]+)\s*\)/g)) {
        const address = normalize(m[1]!);
        if (address) add({ address, name: '', source: 'Subject', fromReceived: false });
      }
    }
  }
  if (rules.received) {
    const received = fields.filter((f) => f.name.toLowerCase() === 'received');
    for (let i = rules.skipReceived; i < received.length; i++) {
      const address = receivedFor(unfoldValue(received[i]!.value));
      if (!address) continue;
      add({ address, name: '', source: `Received#${i + 1}`, fromReceived: true });
      if (rules.stopAtLocal && (await isLocal(address))) break;
    }
  }
  return [...found.values()];
}

/** The address of an envelope header value: `<a@b>`, `a@b`, `rfc822;a@b`, with the prefix stripped. */
function envelopeAddress(value: string, rules: RecipientRules): string | null {
  const text = value.replace(/^rfc822\s*;\s*/i, '').trim();
  const first = parseAddressList(text)[0]?.address ?? text;
  let address = normalize(first);
  if (!address) return null;
  const prefix = rules.stripPrefix;
  if (prefix) {
    const at = address.lastIndexOf('@');
    const local = address.slice(0, at);
    if (local.toLowerCase().startsWith(prefix.toLowerCase()) && local.length > prefix.length) {
      // qmail delivers `user@ourdomain` to the catch-all as `<prefix>user@isp`: undo both.
      address = `${local.slice(prefix.length)}@${rules.domain.toLowerCase()}`;
    }
  }
  return address;
}

/** The address of a Received line's `for` clause (`for <a@b>;` or `for a@b`). */
export function receivedFor(value: string): string | null {
  const m = /(?:^|[\s)])for\s+<?([^\s<>;]+@[^\s<>;]+?)>?\s*(?:;|$|\s)/i.exec(value);
  return m ? normalize(m[1]!) : null;
}

/** Trimmed, `<>` removed, domain lower-cased; null unless it looks like local@domain. */
export function normalize(raw: string): string | null {
  const address = raw.trim().replace(/^<|>$/g, '').replace(/\.$/, '');
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return null;
  if (!isDomainName(address.slice(at + 1), true)) return null;
  if (/[\r\n\0]/.test(address) || address.length > 320) return null;
  return `${address.slice(0, at)}@${address.slice(at + 1).toLowerCase()}`;
}

function decodeName(name: string): string {
  if (!name.includes('=?')) return name.trim();
  try {
    return libmime.decodeWords(name).trim();
  } catch {
    return name.trim();
  }
}
