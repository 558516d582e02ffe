/**
 * Creating mailbox rows and resolving them by name. UIDVALIDITY comes from a clock-based counter
 * (counters.uidvalidity): max(previous + 1, now in seconds), so two mailboxes created in the
 * same second, or a mailbox re-created after deletion, never share a UIDVALIDITY (RFC 3501 2.3.1.1).
 *
 * Invariants: call inside a write transaction. A new mailbox has uidnext 1 and highestmodseq 1
 * (CONDSTORE needs a non-zero MODSEQ, RFC 7162 3.1.1).
 */
import type Database from 'better-sqlite3';
import { normalizeMailboxName } from '../names.js';
import type { SpecialUse } from '../types.js';

export interface MailboxRef {
  id: number;
}

export class MailboxRows {
  private readonly nextUidValidity;
  private readonly insertStmt;
  private readonly findStmt;

  constructor(db: Database.Database) {
    this.nextUidValidity = db.prepare<[number], { value: number }>(
      `INSERT INTO counters (name, value) VALUES ('uidvalidity', ?)
       ON CONFLICT (name) DO UPDATE SET value = max(value + 1, excluded.value)
       RETURNING value`,
    );
    this.insertStmt = db.prepare<[number, string, SpecialUse | null, number]>(
      'INSERT INTO mailboxes (account_id, name, special_use, uidvalidity) VALUES (?, ?, ?, ?)',
    );
    this.findStmt = db.prepare<[number, string], MailboxRef>('SELECT id FROM mailboxes WHERE account_id = ? AND name = ?');
  }

  /** Inserts a mailbox; `name` must already be normalized. Returns its id. */
  create(accountId: number, name: string, specialUse: SpecialUse | null): number {
    const uidValidity = this.nextUidValidity.get(Math.floor(Date.now() / 1000))!.value;
    return Number(this.insertStmt.run(accountId, name, specialUse, uidValidity).lastInsertRowid);
  }

  /** The mailbox `name` of the account, exactly (IMAP APPEND); InvalidInput for an invalid name. */
  resolveExact(accountId: number, name: string): MailboxRef | undefined {
    return this.findStmt.get(accountId, normalizeMailboxName(name));
  }

  /** The mailbox `name` of the account, or its INBOX when that name is absent or invalid. */
  resolveForDelivery(accountId: number, name: string): MailboxRef | undefined {
    let normalized = 'INBOX';
    try {
      normalized = normalizeMailboxName(name);
    } catch {
      // An invalid target name cannot exist: deliver to INBOX.
    }
    return this.findStmt.get(accountId, normalized) ?? this.findStmt.get(accountId, 'INBOX');
  }
}
