/**
 * Facts the collectors read from a downloaded message's header: its envelope sender, its
 * dedupe key, and the key that stands for a UIDL when the server has no UIDL.
 */
import { createHash } from 'node:crypto';
import { parseAddressList } from '../message/address.js';
import { unfoldValue } from '../message/envelope.js';
import type { HeaderField } from '../message/header.js';
import { normalize } from './domainpop/recipients.js';

/** The envelope sender for a collected message: Return-Path, else Sender, else From; '' if none. */
export function senderOf(fields: readonly HeaderField[]): string {
  for (const name of ['return-path', 'sender', 'from']) {
    const field = fields.find((f) => f.name.toLowerCase() === name);
    if (!field) continue;
    const value = unfoldValue(field.value).trim();
    if (name === 'return-path' && /^<\s*>$/.test(value)) return '';
    const first = parseAddressList(value)[0]?.address;
    const address = first ? normalize(first) : null;
    if (address) return address;
  }
  return '';
}

/**
 * The dedupe key: the Message-ID's `<id>` (compared exactly; comments and spaces dropped), or
 * the Date value. Null when dedupe is off or the message has no such header: such a message is
 * never dropped as a duplicate.
 */
export function messageKey(fields: readonly HeaderField[], mode: 'Message-ID' | 'Date' | 'off'): string | null {
  if (mode === 'off') return null;
  const field = fields.find((f) => f.name.toLowerCase() === mode.toLowerCase());
  if (!field) return null;
  const value = unfoldValue(field.value).trim();
  if (mode === 'Date') return value === '' ? null : `date:${value.slice(0, 200)}`;
  const id = /<[^<>\s]+>/.exec(value.replace(/\([^()]*\)/g, ''))?.[0];
  return id ? `mid:${id.slice(0, 250)}` : null;
}

/**
 * A stand-in for the UIDL of a server without UIDL: a hash of the header section (the same
 * bytes from TOP n 0 or from RETR; trailing line ends ignored).
 */
export function headerKey(header: Buffer): string {
  let end = header.length;
  while (end > 0 && (header[end - 1] === 0x0a || header[end - 1] === 0x0d)) end--;
  const cut = header.indexOf('\r\n\r\n');
  const stop = cut >= 0 && cut < end ? cut : end;
  return `hdr-${createHash('sha256').update(header.subarray(0, stop)).digest('hex').slice(0, 40)}`;
}
