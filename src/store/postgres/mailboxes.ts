/**
 * Creating mailbox rows and resolving them by name (as store/sqlite/mailboxes.ts). UIDVALIDITY
 * comes from a clock-based counter (counters.uidvalidity): max(previous + 1, now in seconds), so
 * mailboxes created in the same second, on any node, or re-created after deletion, never share
 * one (RFC 3501 2.3.1.1). Call inside a transaction.
 */
import { normalizeMailboxName } from '../names.js';
import type { SpecialUse } from '../types.js';
import type { Queryable } from './db.js';

/** Inserts a mailbox; `name` must already be normalized. Returns its id. */
export async function insertMailbox(tx: Queryable, accountId: number, name: string, specialUse: SpecialUse | null): Promise<number> {
  const { value } = (await tx.one<{ value: number }>(
    `INSERT INTO counters (name, value) VALUES ('uidvalidity', $1)
     ON CONFLICT (name) DO UPDATE SET value = greatest(counters.value + 1, excluded.value)
     RETURNING value`,
    [Math.floor(Date.now() / 1000)],
  ))!;
  const row = await tx.one<{ id: number }>('INSERT INTO mailboxes (account_id, name, special_use, uidvalidity) VALUES ($1, $2, $3, $4) RETURNING id', [
    accountId,
    name,
    specialUse,
    value,
  ]);
  return row!.id;
}

/** The mailbox `name` of the account, exactly (IMAP APPEND); InvalidInput for an invalid name. */
export async function resolveExact(tx: Queryable, accountId: number, name: string): Promise<{ id: number } | undefined> {
  return tx.one<{ id: number }>('SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2', [accountId, normalizeMailboxName(name)]);
}

/** The mailbox `name` of the account, or its INBOX when that name is absent or invalid. */
export async function resolveForDelivery(tx: Queryable, accountId: number, name: string): Promise<{ id: number } | undefined> {
  let normalized = 'INBOX';
  try {
    normalized = normalizeMailboxName(name);
  } catch {
    // An invalid target name cannot exist: deliver to INBOX.
  }
  return (
    (await tx.one<{ id: number }>('SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2', [accountId, normalized])) ??
    (await tx.one<{ id: number }>("SELECT id FROM mailboxes WHERE account_id = $1 AND name = 'INBOX'", [accountId]))
  );
}
