/**
 * Which envelope senders (MAIL FROM) an authenticated user may use (`submission.enforce_sender`):
 * - the null sender `<>` (bounces, receipts);
 * - the account's own address;
 * - an alias address whose targets include the account (`info@` → joe, ann: both may send as
 *   info@); only the alias's own targets, not a catch-all;
 * - the account's send-as list (Account.sendAs): exact addresses, or `@domain` for any address
 *   of that domain.
 * Addresses compare in their stored form: domain lower-cased and in punycode, local part
 * lower-cased (as the directory stores them).
 *
 * Pure: the caller looks up the alias of the sender address (Directory.getAlias) and passes it.
 */
import { normalizeAddress } from '../directory/names.js';
import type { Account, Alias } from '../store/types.js';

export type SenderVerdict =
  | { ok: true; via: 'null-sender' | 'own-address' | 'alias' | 'send-as' }
  | { ok: false };

/** The stored form of an address, or null when it is not one we could own. */
export function senderKey(address: string): string | null {
  try {
    return normalizeAddress(address).address;
  } catch {
    return null;
  }
}

export function senderAllowed(
  mailFrom: string,
  account: Pick<Account, 'address' | 'sendAs'>,
  aliases: readonly Alias[] = [],
): SenderVerdict {
  if (mailFrom === '') return { ok: true, via: 'null-sender' };
  const from = senderKey(mailFrom);
  if (from === null) return { ok: false };
  const own = account.address.toLowerCase();
  if (from === own) return { ok: true, via: 'own-address' };
  for (const alias of aliases) {
    if (alias.address.toLowerCase() === from && alias.targets.some((t) => t.toLowerCase() === own)) return { ok: true, via: 'alias' };
  }
  const domain = from.slice(from.lastIndexOf('@'));
  for (const pattern of account.sendAs) {
    const p = pattern.trim().toLowerCase();
    if (p === from || (p.startsWith('@') && p === domain)) return { ok: true, via: 'send-as' };
  }
  return { ok: false };
}

/**
 * The check as the MAIL command runs it: reads the account afresh (its send-as list may have
 * changed since the login) and the alias of the sender address, then applies senderAllowed.
 */
export async function checkSender(
  directory: { getUserById(id: number): Promise<Account | null>; getAlias(address: string): Promise<Alias | null> },
  account: Account,
  mailFrom: string,
): Promise<SenderVerdict> {
  if (mailFrom === '') return { ok: true, via: 'null-sender' };
  const current = (await directory.getUserById(account.id)) ?? account;
  const key = senderKey(mailFrom);
  const alias = key === null || key === current.address ? null : await directory.getAlias(key);
  return senderAllowed(mailFrom, current, alias ? [alias] : []);
}
