/**
 * Writes on the mailbox list of an account: CREATE, DELETE, RENAME and subscriptions.
 *
 * Invariants
 * - Names are validated and INBOX spelled canonically by normalizeMailboxName; `/` is the
 *   hierarchy delimiter. The children of `a` are the names in [`a/`, `a0`) (`0` follows `/`), a
 *   range of the (account_id, name) index.
 * - A mailbox keeps its id, UIDVALIDITY, special use and messages through a rename (except
 *   INBOX, RFC 3501 6.3.5: its messages move to a new mailbox and INBOX stays, empty).
 * - Subscriptions are names (RFC 3501 6.3.6): deleting a mailbox keeps them; a rename moves the
 *   subscriptions of the renamed names along (as Dovecot does).
 */
import { AlreadyExists, InvalidInput, NotFound } from '../../util/errors.js';
import { normalizeMailboxName } from '../names.js';
import type { Mailbox, MailEvent, SpecialUse } from '../types.js';
import { MAILBOX_SELECT, toMailbox, type MailboxRow } from '../rows.js';
import type { SqliteWrites } from './writes.js';

const SPECIAL_USES: ReadonlySet<string> = new Set<SpecialUse>(['\\Sent', '\\Drafts', '\\Trash', '\\Junk', '\\Archive']);

interface NamedBox {
  id: number;
  name: string;
}

export class MailboxOps {
  constructor(private readonly w: SqliteWrites) {}

  async createMailbox(accountId: number, name: string, specialUse: SpecialUse | null = null): Promise<Mailbox> {
    // A trailing delimiter says the client means to create children (RFC 3501 6.3.3).
    const wanted = normalizeMailboxName(name.endsWith('/') && name.length > 1 ? name.slice(0, -1) : name);
    if (specialUse !== null && !SPECIAL_USES.has(specialUse)) throw new InvalidInput(`"${specialUse}" is not a special use`);
    return this.w.run(() => {
      this.account(accountId);
      if (this.find(accountId, wanted)) throw new AlreadyExists(`mailbox ${wanted} already exists`);
      const events = this.createSuperiors(accountId, wanted);
      const id = this.w.mailboxes.create(accountId, wanted, specialUse);
      events.push({ type: 'mailbox', accountId, mailboxId: id, change: 'created' });
      return { value: this.mailbox(id), events };
    });
  }

  async deleteMailbox(accountId: number, name: string): Promise<void> {
    const wanted = normalizeMailboxName(name);
    if (wanted === 'INBOX') throw new InvalidInput('INBOX cannot be deleted');
    await this.w.runInLane(() => {
      const box = this.find(accountId, wanted);
      if (!box) throw new NotFound(`mailbox ${wanted} does not exist`);
      if (this.children(accountId, wanted, 1).length > 0) {
        throw new InvalidInput(`mailbox ${wanted} has children; delete them first`);
      }
      const blobs = this.w
        .sql<[number], { blob_hash: string; n: number; bytes: number }>(
          'SELECT blob_hash, count(*) AS n, sum(size) AS bytes FROM messages WHERE mailbox_id = ? GROUP BY blob_hash',
        )
        .all(box.id);
      const bytes = blobs.reduce((sum, b) => sum + b.bytes, 0);
      // Messages, their search rows and tombstones go with the row (ON DELETE CASCADE);
      // subscriptions stay.
      this.w.sql('DELETE FROM mailboxes WHERE id = ?').run(box.id);
      this.w.sql('UPDATE accounts SET used_bytes = max(0, used_bytes - ?) WHERE id = ?').run(bytes, accountId);
      const unreferenced = this.w.refs.release(new Map(blobs.map((b) => [b.blob_hash, b.n])));
      const events: MailEvent[] = [{ type: 'mailbox', accountId, mailboxId: box.id, change: 'deleted' }];
      return { value: undefined, events, unreferenced };
    });
  }

  async renameMailbox(accountId: number, from: string, to: string): Promise<void> {
    const fromName = normalizeMailboxName(from);
    const toName = normalizeMailboxName(to);
    this.w.run(() => {
      this.account(accountId);
      const source = this.find(accountId, fromName);
      if (!source) throw new NotFound(`mailbox ${fromName} does not exist`);
      if (this.find(accountId, toName)) throw new AlreadyExists(`mailbox ${toName} already exists`);
      if (fromName === 'INBOX') return { value: undefined, events: this.renameInbox(accountId, source.id, toName) };
      if (toName.startsWith(`${fromName}/`)) throw new InvalidInput(`mailbox ${fromName} cannot be renamed inside itself`);

      const family = [source, ...this.children(accountId, fromName)];
      const ids = new Set(family.map((b) => b.id));
      const renames = family.map((box) => ({ box, name: normalizeMailboxName(toName + box.name.slice(fromName.length)) }));
      for (const { name } of renames) {
        const holder = this.find(accountId, name);
        // A holder inside the family is itself renamed away.
        if (holder && !ids.has(holder.id)) throw new AlreadyExists(`mailbox ${name} already exists`);
      }
      const setName = this.w.sql<[string, number]>('UPDATE mailboxes SET name = ? WHERE id = ?');
      // Two passes, so no new name collides with an old one still in place (names never hold NUL).
      for (const { box } of renames) setName.run(`\0${box.id}`, box.id);
      for (const { box, name } of renames) setName.run(name, box.id);
      const subscribed = this.w.sql<[number, string]>('DELETE FROM subscriptions WHERE account_id = ? AND name = ?');
      const subscribe = this.w.sql<[number, string]>('INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)');
      // All old names first, then all new ones: renaming T/B to T moves T/B/C to T/C while T/B/B/C
      // moves to T/B/C, a name that was old too; one by one, the second would be dropped again.
      const moved = renames.filter(({ box }) => subscribed.run(accountId, box.name).changes > 0);
      for (const { name } of moved) subscribe.run(accountId, name);
      const events = this.createSuperiors(accountId, toName);
      for (const { box } of renames) events.push({ type: 'mailbox', accountId, mailboxId: box.id, change: 'renamed' });
      return { value: undefined, events };
    });
  }

  async setSubscribed(accountId: number, name: string, subscribed: boolean): Promise<void> {
    const wanted = normalizeMailboxName(name);
    this.w.run(() => {
      this.account(accountId);
      if (subscribed) this.w.sql('INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)').run(accountId, wanted);
      else this.w.sql('DELETE FROM subscriptions WHERE account_id = ? AND name = ?').run(accountId, wanted);
      return { value: undefined, events: [] };
    });
  }

  async listSubscriptions(accountId: number): Promise<string[]> {
    return this.w
      .sql<[number], string>("SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name <> 'INBOX', name")
      .pluck()
      .all(accountId);
  }

  /**
   * RFC 3501 6.3.5: a new mailbox `to` (new UIDVALIDITY) takes every INBOX message with its UID;
   * INBOX keeps its UIDVALIDITY and uidnext, and its UIDs become expunged. INBOX's children stay.
   */
  private renameInbox(accountId: number, inboxId: number, to: string): MailEvent[] {
    const events = this.createSuperiors(accountId, to);
    const id = this.w.mailboxes.create(accountId, to, null);
    this.w
      .sql<[number, number]>(
        `UPDATE mailboxes SET (uidnext, highestmodseq) = (SELECT uidnext, highestmodseq FROM mailboxes WHERE id = ?) WHERE id = ?`,
      )
      .run(inboxId, id);
    events.push({ type: 'mailbox', accountId, mailboxId: id, change: 'created' });
    const uids = this.w.sql<[number], number>('SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid').pluck().all(inboxId);
    if (uids.length > 0) {
      const modSeq = this.w.nextModSeq(inboxId);
      this.w.sql('UPDATE messages SET mailbox_id = ? WHERE mailbox_id = ?').run(id, inboxId);
      this.w.sql('UPDATE message_search SET mailbox_id = ? WHERE mailbox_id = ?').run(id, inboxId);
      this.w
        .sql('INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) SELECT ?, uid, ? FROM messages WHERE mailbox_id = ?')
        .run(inboxId, modSeq, id);
      for (const uid of uids) events.push({ type: 'expunge', accountId, mailboxId: inboxId, uid, modSeq });
    }
    if (this.w.sql<[number], number>("SELECT 1 FROM subscriptions WHERE account_id = ? AND name = 'INBOX'").pluck().get(accountId)) {
      this.w.sql('INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)').run(accountId, to);
    }
    return events;
  }

  /** Creates the missing superiors of `name` (no special use, not subscribed). */
  private createSuperiors(accountId: number, name: string): MailEvent[] {
    const events: MailEvent[] = [];
    const levels = name.split('/');
    for (let i = 1; i < levels.length; i++) {
      const superior = levels.slice(0, i).join('/');
      if (this.find(accountId, superior)) continue;
      const id = this.w.mailboxes.create(accountId, superior, null);
      events.push({ type: 'mailbox', accountId, mailboxId: id, change: 'created' });
    }
    return events;
  }

  private children(accountId: number, name: string, limit = -1): NamedBox[] {
    return this.w
      .sql<[number, string, string, number], NamedBox>(
        'SELECT id, name FROM mailboxes WHERE account_id = ? AND name >= ? AND name < ? ORDER BY name LIMIT ?',
      )
      .all(accountId, `${name}/`, `${name}0`, limit);
  }

  private find(accountId: number, name: string): NamedBox | undefined {
    return this.w.sql<[number, string], NamedBox>('SELECT id, name FROM mailboxes WHERE account_id = ? AND name = ?').get(accountId, name);
  }

  private account(accountId: number): void {
    if (!this.w.sql<[number], number>('SELECT 1 FROM accounts WHERE id = ?').pluck().get(accountId)) {
      throw new NotFound(`account ${accountId} does not exist`);
    }
  }

  private mailbox(id: number): Mailbox {
    return toMailbox(this.w.sql<[number], MailboxRow>(`${MAILBOX_SELECT} WHERE m.id = ?`).get(id)!);
  }
}
