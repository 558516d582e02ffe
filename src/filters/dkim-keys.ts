/**
 * DKIM signing keys (RFC 6376 3.6, RFC 8463): generation with node:crypto and the DNS TXT
 * record that publishes the public half.
 *
 * - RSA (2048 bits by default): p= is the base64 of the SubjectPublicKeyInfo (DER).
 * - Ed25519: p= is the base64 of the raw 32-byte public key (RFC 8463 4), not of the SPKI.
 * The private key is kept as PKCS#8 PEM, which mailauth's signer reads.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { DkimKey } from '../store/types.js';
import { InvalidInput } from '../util/errors.js';

export type DkimKeyType = 'rsa' | 'ed25519';

export const DEFAULT_RSA_BITS = 2048;

/** `fulmar` + yyyymm of the date (UTC), e.g. `fulmar202611`: a new selector each month of rotation. */
export function defaultSelector(date: Date = new Date()): string {
  return `fulmar${date.getUTCFullYear()}${String(date.getUTCMonth() + 1).padStart(2, '0')}`;
}

const SELECTOR_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** A selector is one or more DNS labels (RFC 6376 3.1); throws InvalidInput otherwise. */
export function checkSelector(selector: string): string {
  if (selector.length === 0 || selector.length > 200 || !selector.split('.').every((l) => SELECTOR_LABEL.test(l))) {
    throw new InvalidInput(`"${selector}" is not a valid DKIM selector: use letters, digits and hyphens (e.g. fulmar202611)`);
  }
  return selector.toLowerCase();
}

export function parseKeyType(text: string): DkimKeyType {
  const t = text.trim().toLowerCase();
  if (t === 'rsa' || t === 'rsa-sha256') return 'rsa';
  if (t === 'ed25519' || t === 'ed25519-sha256') return 'ed25519';
  throw new InvalidInput(`unknown DKIM algorithm "${text}"; use rsa (RSA 2048, the default) or ed25519`);
}

export function generateDkimKey(type: DkimKeyType, selector: string, options: { rsaBits?: number; now?: Date } = {}): DkimKey {
  const createdAt = options.now ?? new Date();
  if (type === 'ed25519') {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    return {
      selector: checkSelector(selector),
      algorithm: 'ed25519-sha256',
      privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      publicKey: rawEd25519(publicKey.export({ type: 'spki', format: 'der' })).toString('base64'),
      createdAt,
    };
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: options.rsaBits ?? DEFAULT_RSA_BITS });
  return {
    selector: checkSelector(selector),
    algorithm: 'rsa-sha256',
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    createdAt,
  };
}

/** The 32 key bytes at the end of an Ed25519 SubjectPublicKeyInfo (12-byte DER prefix). */
function rawEd25519(spki: Buffer): Buffer {
  return spki.subarray(spki.length - 32);
}

/** The p= value of a private key's public half, for checking a stored key against DNS. */
export function publicKeyValue(privateKeyPem: string): string {
  const pub = createPublicKey(privateKeyPem);
  const der = pub.export({ type: 'spki', format: 'der' });
  return (pub.asymmetricKeyType === 'ed25519' ? rawEd25519(der) : der).toString('base64');
}

/** The TXT value (`v=DKIM1; k=rsa; p=...`). */
export function dkimTxtValue(key: Pick<DkimKey, 'algorithm' | 'publicKey'>): string {
  return `v=DKIM1; k=${key.algorithm === 'ed25519-sha256' ? 'ed25519' : 'rsa'}; p=${key.publicKey}`;
}

/** The TXT value as DNS character-strings of at most 255 octets (RFC 1035 3.3). */
export function txtStrings(value: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < value.length; i += 255) out.push(value.slice(i, i + 255));
  return out.length > 0 ? out : [''];
}

/** The zone-file line to publish: `sel._domainkey.example.com. IN TXT "v=DKIM1; k=rsa; p=..." "..."`. */
export function dkimDnsRecord(domain: string, key: Pick<DkimKey, 'selector' | 'algorithm' | 'publicKey'>): string {
  const strings = txtStrings(dkimTxtValue(key)).map((s) => `"${s}"`);
  return `${key.selector}._domainkey.${domain}. IN TXT ${strings.join(' ')}`;
}
