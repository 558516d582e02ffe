/**
 * The per-message header SEARCH rows on PostgreSQL (table message_search): the same model as
 * store/sqlite/search-rows.ts; the parser of BlobMeta.search is shared (store/search-fields.ts).
 *
 * Invariants
 * - A message has a row exactly when its blob's meta had `search` when the message was stored,
 *   or got it since (setBlobMeta). Every write on messages keeps the rows in step in the same
 *   transaction: delivery inserts, COPY copies, MOVE and the INBOX rename re-home, EXPUNGE
 *   deletes; DELETE and account removal cascade with the mailbox.
 * - A (mailbox, uid) row is written with ON CONFLICT DO UPDATE (SQLite's INSERT OR REPLACE): a
 *   stale row never makes a delivery fail, it is replaced.
 * - Columns are picked from SEARCH_COLUMNS, never from input.
 * - Matching is strpos() on the stored text, which is decoded and lower-cased already (the
 *   caller lower-cases the needle): no LIKE, so `%` and `_` are plain characters; strpos(NULL, x)
 *   is NULL, so a message without the field never matches; strpos(x, '') is 1.
 */
import type { Queryable } from './db.js';
export { parseSearchFields, SEARCH_COLUMNS, type SearchValues } from '../search-fields.js';
import type { SearchValues } from '../search-fields.js';

/** Rows per INSERT statement (arrays bound as parameters, never one parameter per row). */
const BATCH = 10_000;

/** Gives each (mailbox, uid) the same search values; replaces a row left behind. */
export async function insertSearchRows(tx: Queryable, mailboxIds: readonly number[], uids: readonly number[], values: SearchValues): Promise<void> {
  for (let start = 0; start < uids.length; start += BATCH) {
    await tx.query(
      `INSERT INTO message_search (mailbox_id, uid, subject, from_addr, to_addr, cc_addr, bcc_addr)
       SELECT t.mailbox_id, t.uid, $3, $4, $5, $6, $7 FROM unnest($1::bigint[], $2::bigint[]) AS t(mailbox_id, uid)
       ON CONFLICT (mailbox_id, uid) DO UPDATE SET subject = excluded.subject, from_addr = excluded.from_addr,
         to_addr = excluded.to_addr, cc_addr = excluded.cc_addr, bcc_addr = excluded.bcc_addr`,
      [mailboxIds.slice(start, start + BATCH), uids.slice(start, start + BATCH), ...values],
    );
  }
}

/** Gives every message of the blob that has no search row one (setBlobMeta). */
export async function indexBlobMessages(tx: Queryable, hash: string, values: SearchValues): Promise<void> {
  await tx.query(
    `INSERT INTO message_search (mailbox_id, uid, subject, from_addr, to_addr, cc_addr, bcc_addr)
     SELECT mailbox_id, uid, $2, $3, $4, $5, $6 FROM messages WHERE blob_hash = $1
     ON CONFLICT (mailbox_id, uid) DO NOTHING`,
    [hash, ...values],
  );
}
