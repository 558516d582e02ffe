/**
 * The bulk reads an IMAP session makes on a selected mailbox (as store/sqlite/message-reads.ts):
 * counts, the UID map, flags and rows by UID set, expunge tombstones, blob meta, header SEARCH.
 * Sized for 100,000-message mailboxes: a UID set is bound as one bigint[] parameter (or, when it
 * is one contiguous run, as its two ends), never spliced into SQL or bound one per UID.
 *
 * Invariant: read-only, no caching (every call queries the database, so another node's change
 * is seen at once).
 */
import { InvalidInput, NotFound } from '../../util/errors.js';
import type { BlobMeta, MailboxCounts, MessageFlags, MessageWithMeta, SearchField } from '../types.js';
import type { Queryable } from './db.js';
import { MESSAGE_WITH_META_SELECT, toMessageWithMeta, type MessageWithMetaRow } from '../rows.js';
import { SEARCH_COLUMNS } from './search-rows.js';

// The exact text of the canonical flags inside the JSON column (flags.ts keeps them canonical).
const SEEN = JSON.stringify('\\Seen');
const DELETED = JSON.stringify('\\Deleted');

/** A UID set as SQL: `uid BETWEEN $a AND $b` for one run, else `uid = ANY($a::bigint[])`. */
interface UidFilter {
  sql: (column: string, first: number) => string;
  params: unknown[];
}

function isUid(uid: number): boolean {
  return Number.isInteger(uid) && uid > 0 && uid <= 0xffffffff;
}

/** Null when no valid UID was asked for (the answer is then empty). */
export function uidFilter(uids: readonly number[]): UidFilter | null {
  const valid = uids.filter(isUid);
  if (valid.length === 0) return null;
  let sorted = true;
  for (let i = 1; i < valid.length && sorted; i++) sorted = valid[i]! > valid[i - 1]!;
  if (!sorted) {
    valid.sort((a, b) => a - b);
    let w = 1;
    for (let r = 1; r < valid.length; r++) if (valid[r] !== valid[w - 1]) valid[w++] = valid[r]!;
    valid.length = w;
  }
  const first = valid[0]!;
  const last = valid[valid.length - 1]!;
  if (last - first + 1 === valid.length) {
    return { sql: (column, n) => `${column} BETWEEN $${n} AND $${n + 1}`, params: [first, last] };
  }
  return { sql: (column, n) => `${column} = ANY($${n}::bigint[])`, params: [valid] };
}

export class PgMessageReads {
  constructor(private readonly db: Queryable) {}

  /** One statement (one snapshot): the mailbox's existence and its counts. */
  async mailboxCounts(mailboxId: number): Promise<MailboxCounts> {
    const row = await this.db.one<{
      present: boolean;
      messages: number;
      unseen: number;
      deleted: number;
      size: number;
      first_unseen_uid: number | null;
    }>(
      `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE id = $1) AS present,
         count(*) AS messages,
         count(*) FILTER (WHERE strpos(flags, $2) = 0) AS unseen,
         count(*) FILTER (WHERE strpos(flags, $3) > 0) AS deleted,
         coalesce(sum(size), 0)::bigint AS size,
         min(uid) FILTER (WHERE strpos(flags, $2) = 0) AS first_unseen_uid
       FROM messages WHERE mailbox_id = $1`,
      [mailboxId, SEEN, DELETED],
    );
    if (!row?.present) throw new NotFound(`mailbox ${mailboxId} does not exist`);
    return { messages: row.messages, unseen: row.unseen, deleted: row.deleted, size: row.size, firstUnseenUid: row.first_unseen_uid };
  }

  async listUids(mailboxId: number): Promise<number[]> {
    // One row with a float8[] (parsed to numbers, exact below 2^53) instead of a row per UID.
    const row = await this.db.one<{ uids: number[] | null }>(
      'SELECT array_agg(uid::float8 ORDER BY uid) AS uids FROM messages WHERE mailbox_id = $1',
      [mailboxId],
    );
    return row?.uids ?? [];
  }

  /** CHANGEDSINCE is filtered inside the scan. */
  async listFlags(mailboxId: number, uids: readonly number[], changedSince = 0): Promise<MessageFlags[]> {
    const filter = uidFilter(uids);
    if (!filter) return [];
    const rows = await this.db.query<{ uid: number; modseq: number; flags: string }>(
      `SELECT uid, modseq, flags FROM messages WHERE mailbox_id = $1 AND modseq > $2 AND ${filter.sql('uid', 3)} ORDER BY uid`,
      [mailboxId, changedSince, ...filter.params],
    );
    // Most rows share a few flag sets: parse each distinct text once (copies, so callers may mutate).
    const parsed = new Map<string, string[]>();
    return rows.map(({ uid, modseq, flags: text }) => {
      let flags = parsed.get(text);
      if (flags === undefined) {
        flags = JSON.parse(text) as string[];
        parsed.set(text, flags);
      }
      return { uid, modSeq: modseq, flags: flags.slice() };
    });
  }

  async listMessagesByUid(mailboxId: number, uids: readonly number[]): Promise<MessageWithMeta[]> {
    const filter = uidFilter(uids);
    if (!filter) return [];
    const rows = await this.db.query<MessageWithMetaRow>(
      `${MESSAGE_WITH_META_SELECT} WHERE m.mailbox_id = $1 AND ${filter.sql('m.uid', 2)} ORDER BY m.uid`,
      [mailboxId, ...filter.params],
    );
    return rows.map(toMessageWithMeta);
  }

  async listVanished(mailboxId: number, sinceModSeq: number): Promise<number[]> {
    const rows = await this.db.query<{ uid: number }>('SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid', [
      mailboxId,
      sinceModSeq,
    ]);
    return rows.map((r) => r.uid);
  }

  /** One range scan of the mailbox's message_search rows (search-rows.ts), matched in SQL. */
  async searchHeaderField(mailboxId: number, field: SearchField, needle: string): Promise<number[]> {
    if (!Object.hasOwn(SEARCH_COLUMNS, field)) throw new InvalidInput(`cannot search the ${String(field)} field`);
    if (typeof needle !== 'string') throw new InvalidInput('a SEARCH needle must be text');
    // strpos(NULL, x) is NULL: a message without the field never matches; strpos(x, '') is 1.
    const row = await this.db.one<{ uids: number[] | null }>(
      `SELECT array_agg(uid::float8 ORDER BY uid) AS uids FROM message_search
       WHERE mailbox_id = $1 AND strpos(${SEARCH_COLUMNS[field]}, $2) > 0`,
      [mailboxId, needle],
    );
    return row?.uids ?? [];
  }

  async getBlobMeta(hash: string): Promise<BlobMeta | null> {
    const row = await this.db.one<{ envelope: string; structure: string; search: string | null }>(
      'SELECT envelope, structure, search FROM blob_meta WHERE hash = $1',
      [hash],
    );
    if (!row) return null;
    const { search, envelope, structure } = row;
    return search === null ? { envelope, structure } : { envelope, structure, search };
  }
}
