/**
 * DKIM signing of outgoing mail (RFC 6376, RFC 8463 for Ed25519), by mailauth's signer:
 * relaxed/relaxed canonicalisation over the usual header fields (those present are signed).
 *
 * The queue worker asks signingKeyFor() which key applies to a message, then dkimSignatureFor()
 * for the DKIM-Signature field to send before the message's own bytes. The message is streamed
 * (the signer keeps the header section and hashes the body as it passes).
 */
import type { Readable } from 'node:stream';
import { domainToASCII } from 'node:url';
import { dkimSign } from 'mailauth';
import { parseAddressList } from '../message/address.js';
import type { DkimKey } from '../store/types.js';

/** The header fields signed when present (RFC 6376 5.4.1's list, trimmed to what mail uses). */
export const SIGNED_HEADERS = [
  'From',
  'To',
  'Cc',
  'Subject',
  'Date',
  'Message-ID',
  'Reply-To',
  'In-Reply-To',
  'References',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
] as const;

export interface SigningKey {
  /** The d= domain: the key's domain. */
  domain: string;
  key: DkimKey;
}

/** Thrown when the signer produced no signature (bad key, unparsable message). */
export class DkimSigningFailed extends Error {
  override readonly name = 'DkimSigningFailed';
}

/**
 * The `DKIM-Signature: ...\r\n` field (folded, ending in CRLF) to prepend to `message`, signed
 * with `key` for `domain`. Rejects with DkimSigningFailed when no signature could be made.
 */
export async function dkimSignatureFor(message: Buffer | Readable, options: { domain: string; key: DkimKey }): Promise<string> {
  const { domain, key } = options;
  const result = await dkimSign(message, {
    canonicalization: 'relaxed/relaxed',
    // mailauth reads the list as one colon-separated string (its typings say string[]).
    headerList: SIGNED_HEADERS.join(':') as unknown as string[],
    signatureData: [
      {
        signingDomain: domain,
        selector: key.selector,
        privateKey: key.privateKeyPem,
        algorithm: key.algorithm,
        canonicalization: 'relaxed/relaxed',
      },
    ],
  } as Parameters<typeof dkimSign>[1]);
  const problems = (result.errors ?? []) as Array<{ err?: Error }>;
  const signature = result.signatures.trim();
  if (problems.length > 0 || !signature.startsWith('DKIM-Signature:')) {
    const why = problems.map((p) => p.err?.message ?? String(p)).join('; ') || 'no signature produced';
    throw new DkimSigningFailed(`DKIM signing for ${domain} (selector ${key.selector}) failed: ${why}`);
  }
  return `${signature}\r\n`;
}

/** The domain of an address, or of the first address of a header value (`"Joe" <joe@x>`). */
function domainOfFirstAddress(text: string): string | null {
  const value = text.trim();
  if (value === '') return null;
  const candidates = /[<>,:;"()]/.test(value) || /\s/.test(value) ? parseAddressList(value).map((a) => a.address) : [value];
  for (const address of candidates) {
    const at = address.lastIndexOf('@');
    if (at > 0 && at < address.length - 1) {
      const domain = address.slice(at + 1).toLowerCase().replace(/\.$/, '');
      // d= is written in A-labels (punycode), as the directory stores domains.
      return domainToASCII(domain) || domain;
    }
  }
  return null;
}

/**
 * Which key signs a message: the key of the From domain (`from`: an address or a From header
 * value) when it is a local domain with a key, else the key of the envelope sender's domain,
 * else null (the message goes unsigned).
 */
export async function signingKeyFor(
  from: string,
  directory: { getDkimKey(domain: string): Promise<DkimKey | null> },
  envelopeSender?: string,
): Promise<SigningKey | null> {
  const tried = new Set<string>();
  for (const candidate of [from, envelopeSender ?? '']) {
    const domain = domainOfFirstAddress(candidate);
    if (domain === null || tried.has(domain)) continue;
    tried.add(domain);
    const key = await directory.getDkimKey(domain);
    if (key) return { domain, key };
  }
  return null;
}
