/**
 * The bulk reads an IMAP session makes on a selected mailbox: counts, the UID map, flags and
 * rows by UID set, expunge tombstones, blob meta, header SEARCH. Sized for 100,000-message mailboxes: UID sets
 * are read by spans (by-uid.ts), never bound one parameter per UID, and wide results use raw
 * rows.
 *
 * Invariant: read-only, no caching of data (every call queries the database).
 */
import type Database from 'better-sqlite3';
import { InvalidInput, NotFound } from '../../util/errors.js';
import type { BlobMeta, MailboxCounts, MessageFlags, MessageWithMeta, SearchField } from '../types.js';
import { readByUid } from './by-uid.js';
import { MESSAGE_WITH_META_SELECT, toMessageWithMeta, type MessageWithMetaRow } from '../rows.js';
import { SEARCH_COLUMNS } from './search-rows.js';
import { statementCache, type Prepare } from './statements.js';

// The exact text of the canonical flags inside the JSON column (flags.ts keeps them canonical).
const SEEN = JSON.stringify('\\Seen');
const DELETED = JSON.stringify('\\Deleted');

type FlagRow = [uid: number, modseq: number, flags: string];

export class MessageReads {
  private readonly sql: Prepare;

  constructor(db: Database.Database) {
    this.sql = statementCache(db);
  }

  /** One scan of messages_imap (no table rows read). */
  async mailboxCounts(mailboxId: number): Promise<MailboxCounts> {
    if (!this.sql<[number], number>('SELECT 1 FROM mailboxes WHERE id = ?').pluck().get(mailboxId)) {
      throw new NotFound(`mailbox ${mailboxId} does not exist`);
    }
    const counts = this.sql<[string, string, string, number], Omit<MailboxCounts, 'unseen' | 'deleted'> & Record<'unseen' | 'deleted', number | null>>(
      `SELECT count(*) AS messages, sum(instr(flags, ?) = 0) AS unseen, sum(instr(flags, ?) > 0) AS deleted,
         total(size) AS size, min(CASE WHEN instr(flags, ?) = 0 THEN uid END) AS firstUnseenUid
       FROM messages WHERE mailbox_id = ?`,
    ).get(SEEN, DELETED, SEEN, mailboxId)!;
    return { ...counts, unseen: counts.unseen ?? 0, deleted: counts.deleted ?? 0 };
  }

  async listUids(mailboxId: number): Promise<number[]> {
    return this.sql<[number], number>('SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid').pluck().all(mailboxId);
  }

  /** Index-only reads of messages_imap by UID spans; CHANGEDSINCE is filtered inside the scan. */
  async listFlags(mailboxId: number, uids: number[], changedSince = 0): Promise<MessageFlags[]> {
    const stmt = this.sql<[number, number, number, number], FlagRow>(
      'SELECT uid, modseq, flags FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? AND modseq > ? ORDER BY uid',
    ).raw();
    const rows = readByUid(uids, (first, last) => stmt.all(mailboxId, first, last, changedSince), (row) => row[0]);
    // Most rows share a few flag sets: parse each distinct text once (copies, so callers may mutate).
    const parsed = new Map<string, string[]>();
    return rows.map(([uid, modSeq, text]) => {
      let flags = parsed.get(text);
      if (flags === undefined) {
        flags = JSON.parse(text) as string[];
        parsed.set(text, flags);
      }
      return { uid, modSeq, flags: flags.slice() };
    });
  }

  async listMessagesByUid(mailboxId: number, uids: number[]): Promise<MessageWithMeta[]> {
    const stmt = this.sql<[number, number, number], MessageWithMetaRow>(
      `${MESSAGE_WITH_META_SELECT} WHERE m.mailbox_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid`,
    );
    return readByUid(uids, (first, last) => stmt.all(mailboxId, first, last), (row) => row.uid).map(toMessageWithMeta);
  }

  async listVanished(mailboxId: number, sinceModSeq: number): Promise<number[]> {
    return this.sql<[number, number], number>('SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid')
      .pluck()
      .all(mailboxId, sinceModSeq);
  }

  /** One range scan of the mailbox's message_search rows (search-rows.ts), matched in SQL. */
  async searchHeaderField(mailboxId: number, field: SearchField, needle: string): Promise<number[]> {
    if (!Object.hasOwn(SEARCH_COLUMNS, field)) throw new InvalidInput(`cannot search the ${String(field)} field`);
    // instr(NULL, ?) is NULL: a message without the field never matches; instr(x, '') is 1.
    return this.sql<[number, string], number>(
      `SELECT uid FROM message_search WHERE mailbox_id = ? AND instr(${SEARCH_COLUMNS[field]}, ?) > 0 ORDER BY uid`,
    )
      .pluck()
      .all(mailboxId, needle);
  }

  async getBlobMeta(hash: string): Promise<BlobMeta | null> {
    const row = this.sql<[string], { envelope: string; structure: string; search: string | null }>(
      'SELECT envelope, structure, search FROM blob_meta WHERE hash = ?',
    ).get(hash);
    if (!row) return null;
    const { search, ...meta } = row;
    return search === null ? meta : { ...meta, search };
  }
}
