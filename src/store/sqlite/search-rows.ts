/**
 * The per-message search rows (table message_search, migration 6): the decoded, lower-cased
 * SUBJECT, FROM, TO, CC and BCC text of each message (BlobMeta.search), clustered by
 * (mailbox_id, uid), so SEARCH SUBJECT on a 10,000-message mailbox is one range scan with
 * instr() in SQL instead of loading and parsing every message's envelope.
 *
 * Invariants
 * - A message has a row exactly when its blob's meta had `search` when the message was stored,
 *   or got it since (setBlobMeta, the backfill). Every write on messages keeps the rows in step
 *   in the same transaction: delivery inserts, COPY copies, MOVE and the INBOX rename re-home,
 *   EXPUNGE deletes; DELETE and account removal cascade with the mailbox.
 * - The row of a (mailbox, uid) is written with INSERT OR REPLACE: a stale row can never make a
 *   delivery fail, and is replaced.
 * - Columns are picked from SEARCH_COLUMNS, never from input.
 */
import type Database from 'better-sqlite3';
import { parseSearchFields, SEARCH_COLUMNS, type SearchValues } from '../search-fields.js';
import type { BlobMeta, MetaIndexer, SearchField, SearchFields } from '../types.js';
import type { SqliteBlobStore } from './blob-store.js';

export { parseSearchFields, SEARCH_COLUMNS, type SearchValues } from '../search-fields.js';

export const INSERT_SEARCH_ROW =
  'INSERT OR REPLACE INTO message_search (mailbox_id, uid, subject, from_addr, to_addr, cc_addr, bcc_addr) VALUES (?, ?, ?, ?, ?, ?, ?)';

/** Copies a row to a new (mailbox, uid) (COPY); nothing when the source has none. */
export const COPY_SEARCH_ROW = `INSERT OR REPLACE INTO message_search (mailbox_id, uid, subject, from_addr, to_addr, cc_addr, bcc_addr)
  SELECT ?, ?, subject, from_addr, to_addr, cc_addr, bcc_addr FROM message_search WHERE mailbox_id = ? AND uid = ?`;

/** Re-homes a row (MOVE). */
export const MOVE_SEARCH_ROW = 'UPDATE OR REPLACE message_search SET mailbox_id = ?, uid = ? WHERE mailbox_id = ? AND uid = ?';

export const DELETE_SEARCH_ROW = 'DELETE FROM message_search WHERE mailbox_id = ? AND uid = ?';

/** Messages per backfill transaction. */
const BACKFILL_BATCH = 500;

interface MissingRow {
  id: number;
  blob_hash: string;
  envelope: string | null;
  structure: string | null;
  search: string | null;
}

/**
 * Indexes the messages that have no search row (stored before migration 6, or committed without
 * meta): from their blob's cached meta, or from the blob's bytes when it has none (that meta is
 * cached too). Runs at open, in batches of BACKFILL_BATCH messages (one transaction each, each
 * distinct blob computed once per batch), walking the messages once by id. Cheap when there is
 * nothing to do: two counts. A blob that cannot be read or parsed leaves its messages unindexed
 * (tried again at the next open). Returns how many messages got a row.
 */
export async function backfillSearchRows(db: Database.Database, blobs: SqliteBlobStore, indexer: MetaIndexer): Promise<number> {
  const messages = db.prepare<[], number>('SELECT count(*) FROM messages').pluck().get()!;
  const indexed = db.prepare<[], number>('SELECT count(*) FROM message_search').pluck().get()!;
  if (indexed >= messages) return 0;
  const missing = db.prepare<[number, number], MissingRow>(
    `SELECT m.id, m.blob_hash, b.envelope, b.structure, b.search
     FROM messages m LEFT JOIN blob_meta b ON b.hash = m.blob_hash
     WHERE m.id > ? AND NOT EXISTS (SELECT 1 FROM message_search s WHERE s.mailbox_id = m.mailbox_id AND s.uid = m.uid)
     ORDER BY m.id LIMIT ?`,
  );
  // The message may have moved or gone while its blob was read: its current row decides.
  const insert = db.prepare<[string | null, string | null, string | null, string | null, string | null, number]>(
    `INSERT OR IGNORE INTO message_search (mailbox_id, uid, subject, from_addr, to_addr, cc_addr, bcc_addr)
     SELECT mailbox_id, uid, ?, ?, ?, ?, ? FROM messages WHERE id = ?`,
  );
  const saveMeta = db.prepare<[{ hash: string; envelope: string; structure: string; search: string }]>(
    `INSERT INTO blob_meta (hash, envelope, structure, search)
     SELECT @hash, @envelope, @structure, @search WHERE EXISTS (SELECT 1 FROM blob_refs WHERE hash = @hash)
     ON CONFLICT (hash) DO UPDATE SET search = excluded.search WHERE blob_meta.search IS NULL`,
  );
  let after = 0;
  let filled = 0;
  for (;;) {
    const rows = missing.all(after, BACKFILL_BATCH);
    if (rows.length === 0) return filled;
    after = rows[rows.length - 1]!.id;
    const computed = new Map<string, { meta: BlobMeta; values: SearchValues; save: boolean } | null>();
    for (const row of rows) {
      if (computed.has(row.blob_hash)) continue;
      computed.set(row.blob_hash, await searchMetaOf(row, blobs, indexer));
    }
    db.transaction(() => {
      for (const [hash, found] of computed) {
        if (found?.save) saveMeta.run({ hash, envelope: found.meta.envelope, structure: found.meta.structure, search: found.meta.search! });
      }
      for (const row of rows) {
        const found = computed.get(row.blob_hash);
        if (found) filled += insert.run(...found.values, row.id).changes;
      }
    }).immediate();
  }
}

async function searchMetaOf(
  row: MissingRow,
  blobs: SqliteBlobStore,
  indexer: MetaIndexer,
): Promise<{ meta: BlobMeta; values: SearchValues; save: boolean } | null> {
  try {
    let meta: BlobMeta;
    if (row.envelope !== null && row.structure !== null) {
      meta = { envelope: row.envelope, structure: row.structure, search: row.search ?? indexer.search({ envelope: row.envelope, structure: row.structure }) };
    } else {
      meta = await indexer.build(blobs.open(row.blob_hash) as AsyncIterable<Buffer>);
    }
    if (meta.search === undefined) return null;
    return { meta, values: parseSearchFields(meta.search), save: row.search === null };
  } catch {
    return null; // unreadable blob or unparsable meta: left for the next open
  }
}
