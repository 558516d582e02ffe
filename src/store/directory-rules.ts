/**
 * What both store adapters check and normalize before they write directory rows: quotas, the
 * mailboxes of a new account, alias targets, DKIM keys and send-as patterns. Pure; one copy, so
 * the backends cannot drift apart.
 */
import { InvalidInput } from '../util/errors.js';
import { normalizeMailboxName, parseAddress, parseAliasAddress } from './names.js';
import type { DkimKey, NewMailbox } from './types.js';

const DKIM_ALGORITHMS: ReadonlySet<string> = new Set<DkimKey['algorithm']>(['rsa-sha256', 'ed25519-sha256']);
// RFC 6376 3.1: the selector is one or more sub-domain labels.
const DKIM_SELECTOR = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export function checkQuota(quotaBytes: number | null): void {
  if (quotaBytes !== null && (!Number.isSafeInteger(quotaBytes) || quotaBytes < 0)) {
    throw new InvalidInput(`quota must be a whole number of bytes or unlimited, not ${quotaBytes}`);
  }
}

/** The mailboxes to create: the given ones, normalized and de-duplicated, INBOX always first. */
export function mailboxPlan(mailboxes: NewMailbox[]): NewMailbox[] {
  const plan = new Map<string, NewMailbox>([['INBOX', { name: 'INBOX', specialUse: null }]]);
  for (const box of mailboxes) {
    const name = normalizeMailboxName(box.name);
    if (plan.has(name) && name !== 'INBOX') throw new InvalidInput(`mailbox ${name} is listed twice`);
    plan.set(name, { name, specialUse: box.specialUse });
  }
  return [...plan.values()];
}

/** Alias targets may be remote: the domain is lower-cased and, as for local addresses, the local part. */
export function normalizeTarget(target: string): string {
  return parseAddress(target).address;
}

export function checkDkimKey(key: DkimKey): void {
  if (typeof key.selector !== 'string' || !DKIM_SELECTOR.test(key.selector)) {
    throw new InvalidInput(`"${String(key.selector)}" is not a valid DKIM selector`);
  }
  if (!DKIM_ALGORITHMS.has(key.algorithm)) throw new InvalidInput(`unknown DKIM algorithm ${String(key.algorithm)}`);
  if (typeof key.privateKeyPem !== 'string' || !key.privateKeyPem.includes('PRIVATE KEY')) {
    throw new InvalidInput('the DKIM private key must be a PEM');
  }
  if (typeof key.publicKey !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(key.publicKey)) {
    throw new InvalidInput('the DKIM public key must be base64');
  }
  if (!(key.createdAt instanceof Date) || Number.isNaN(key.createdAt.getTime())) {
    throw new InvalidInput('the DKIM key has no valid creation date');
  }
}

/** Exact addresses and `@domain` patterns, normalized and de-duplicated, in the order given. */
export function normalizeSendAs(patterns: string[]): string[] {
  if (!Array.isArray(patterns)) throw new InvalidInput('send-as patterns must be a list');
  const normal = new Set<string>();
  for (const pattern of patterns) {
    if (typeof pattern !== 'string') throw new InvalidInput('a send-as pattern must be a string');
    normal.add(parseAliasAddress(pattern).address);
  }
  return [...normal];
}
