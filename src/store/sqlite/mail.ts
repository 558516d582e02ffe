/**
 * Mailboxes and messages in SQLite (MailStore): reads, message streams and the delivery commit
 * here; IMAP's mailbox writes in mailbox-ops.ts, message writes in message-ops.ts, and its
 * bulk reads in message-reads.ts.
 *
 * Invariants
 * - Reads always query the database (no caching), so another process's change is seen at once.
 * - Writes on the ingest path go through GroupCommit (see group-commit.ts).
 */
import type Database from 'better-sqlite3';
import { Readable } from 'node:stream';
import { normalizeMailboxName } from '../names.js';
import type {
  BlobMeta,
  CopyResult,
  DeliveryCommit,
  DeliveryOutcome,
  EventBus,
  FlagUpdate,
  FlagUpdateResult,
  Mailbox,
  MailboxCounts,
  MailStore,
  MessageFlags,
  MessageRecord,
  MessageWithMeta,
  SearchField,
  SpecialUse,
} from '../types.js';
import type { SqliteBlobStore } from './blob-store.js';
import type { SerialLane } from './serial-lane.js';
import type { GroupCommit } from './group-commit.js';
import { MailboxOps } from './mailbox-ops.js';
import { MessageOps } from './message-ops.js';
import { MessageReads } from './message-reads.js';
import { SqliteWrites } from './writes.js';
import { parseSearchFields } from './search-rows.js';
import { MAILBOX_SELECT, MESSAGE_COLUMNS, toMailbox, toMessage, type MailboxRow, type MessageRow } from '../rows.js';
import { statementCache, type Prepare } from './statements.js';

export class SqliteMailStore implements MailStore {
  private readonly sql: Prepare;
  private readonly mailboxOps: MailboxOps;
  private readonly messageOps: MessageOps;
  private readonly reads: MessageReads;

  constructor(
    private readonly db: Database.Database,
    private readonly blobs: SqliteBlobStore,
    private readonly groupCommit: GroupCommit,
    lane: SerialLane,
    events: EventBus,
  ) {
    this.sql = statementCache(db);
    const writes = new SqliteWrites(db, blobs, lane, events);
    this.mailboxOps = new MailboxOps(writes);
    this.messageOps = new MessageOps(writes);
    this.reads = new MessageReads(db);
  }

  async listMailboxes(accountId: number): Promise<Mailbox[]> {
    return this.sql<[number], MailboxRow>(
      `${MAILBOX_SELECT} WHERE m.account_id = ? ORDER BY m.name <> 'INBOX', m.name`,
    )
      .all(accountId)
      .map(toMailbox);
  }

  async getMailboxById(mailboxId: number): Promise<Mailbox | null> {
    const row = this.sql<[number], MailboxRow>(`${MAILBOX_SELECT} WHERE m.id = ?`).get(mailboxId);
    return row ? toMailbox(row) : null;
  }

  async getMailbox(accountId: number, name: string): Promise<Mailbox | null> {
    const row = this.sql<[number, string], MailboxRow>(`${MAILBOX_SELECT} WHERE m.account_id = ? AND m.name = ?`).get(
      accountId,
      normalizeMailboxName(name),
    );
    return row ? toMailbox(row) : null;
  }

  async listMessages(mailboxId: number): Promise<MessageRecord[]> {
    return this.sql<[number], MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ? ORDER BY uid`)
      .all(mailboxId)
      .map(toMessage);
  }

  async getMessage(mailboxId: number, uid: number): Promise<MessageRecord | null> {
    const row = this.sql<[number, number], MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ? AND uid = ?`,
    ).get(mailboxId, uid);
    return row ? toMessage(row) : null;
  }

  async listMessageSizes(mailboxId: number): Promise<Array<{ uid: number; size: number }>> {
    return this.sql<[number], { uid: number; size: number }>('SELECT uid, size FROM messages WHERE mailbox_id = ? ORDER BY uid').all(mailboxId);
  }

  async readMessage(message: MessageRecord): Promise<Buffer> {
    const inline = this.blobs.inlineBytes(message.blobHash);
    if (inline) return message.prefix.length > 0 ? Buffer.concat([message.prefix, inline]) : inline;
    const parts: Buffer[] = [message.prefix];
    for await (const chunk of this.blobs.open(message.blobHash) as AsyncIterable<Buffer>) parts.push(chunk);
    return Buffer.concat(parts);
  }

  openMessage(message: MessageRecord): Readable {
    const { blobs } = this;
    async function* bytes(): AsyncGenerator<Buffer> {
      if (message.prefix.length > 0) yield message.prefix;
      // Opened lazily: a stream nobody reads holds no file descriptor.
      yield* blobs.open(message.blobHash) as AsyncIterable<Buffer>;
    }
    return Readable.from(bytes(), { objectMode: false });
  }

  commitDelivery(commit: DeliveryCommit): Promise<DeliveryOutcome> {
    return this.groupCommit.submit(commit);
  }

  expungeMessages(mailboxId: number, uids: number[]): Promise<number[]> {
    return this.messageOps.expungeMessages(mailboxId, uids);
  }

  // ---- IMAP writes (mailbox-ops.ts, message-ops.ts)

  createMailbox(accountId: number, name: string, specialUse?: SpecialUse | null): Promise<Mailbox> {
    return this.mailboxOps.createMailbox(accountId, name, specialUse ?? null);
  }

  deleteMailbox(accountId: number, name: string): Promise<void> {
    return this.mailboxOps.deleteMailbox(accountId, name);
  }

  renameMailbox(accountId: number, from: string, to: string): Promise<void> {
    return this.mailboxOps.renameMailbox(accountId, from, to);
  }

  setSubscribed(accountId: number, name: string, subscribed: boolean): Promise<void> {
    return this.mailboxOps.setSubscribed(accountId, name, subscribed);
  }

  listSubscriptions(accountId: number): Promise<string[]> {
    return this.mailboxOps.listSubscriptions(accountId);
  }

  storeFlags(mailboxId: number, update: FlagUpdate): Promise<FlagUpdateResult> {
    return this.messageOps.storeFlags(mailboxId, update);
  }

  copyMessages(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<CopyResult> {
    return this.messageOps.copyMessages(fromMailboxId, uids, toMailboxId);
  }

  moveMessages(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<CopyResult> {
    return this.messageOps.moveMessages(fromMailboxId, uids, toMailboxId);
  }

  // ---- IMAP reads (message-reads.ts)

  mailboxCounts(mailboxId: number): Promise<MailboxCounts> {
    return this.reads.mailboxCounts(mailboxId);
  }

  listUids(mailboxId: number): Promise<number[]> {
    return this.reads.listUids(mailboxId);
  }

  listFlags(mailboxId: number, uids: number[], changedSince?: number): Promise<MessageFlags[]> {
    return this.reads.listFlags(mailboxId, uids, changedSince);
  }

  listMessagesByUid(mailboxId: number, uids: number[]): Promise<MessageWithMeta[]> {
    return this.reads.listMessagesByUid(mailboxId, uids);
  }

  listVanished(mailboxId: number, sinceModSeq: number): Promise<number[]> {
    return this.reads.listVanished(mailboxId, sinceModSeq);
  }

  searchHeaderField(mailboxId: number, field: SearchField, needle: string): Promise<number[]> {
    return this.reads.searchHeaderField(mailboxId, field, needle);
  }

  getBlobMeta(hash: string): Promise<BlobMeta | null> {
    return this.reads.getBlobMeta(hash);
  }

  /**
   * Kept only while the blob is referenced (it goes with the last reference, blob-refs.ts). Meta
   * without `search` keeps the search text cached before. When the blob gets search text for the
   * first time, its messages without a search row get one: a scan of the messages table (no
   * index by blob), which only messages stored without meta ever cause.
   */
  async setBlobMeta(hash: string, meta: BlobMeta): Promise<void> {
    const search = meta.search ?? null;
    if (search !== null) parseSearchFields(search); // InvalidInput when malformed
    this.db.transaction(() => {
      const had = this.sql<[string], string | null>('SELECT search FROM blob_meta WHERE hash = ?').pluck().get(hash) ?? null;
      const stored = this.sql<[{ hash: string; envelope: string; structure: string; search: string | null }]>(
        `INSERT INTO blob_meta (hash, envelope, structure, search)
         SELECT @hash, @envelope, @structure, @search WHERE EXISTS (SELECT 1 FROM blob_refs WHERE hash = @hash)
         ON CONFLICT (hash) DO UPDATE SET envelope = excluded.envelope, structure = excluded.structure,
           search = coalesce(excluded.search, blob_meta.search)`,
      ).run({ hash, envelope: meta.envelope, structure: meta.structure, search });
      if (stored.changes === 0 || search === null || had !== null) return;
      this.sql<[{ hash: string; search: string }]>(
        `INSERT OR IGNORE INTO message_search (mailbox_id, uid, subject, from_addr, to_addr, cc_addr, bcc_addr)
         SELECT mailbox_id, uid, json_extract(@search, '$.subject'), json_extract(@search, '$.from'), json_extract(@search, '$.to'),
           json_extract(@search, '$.cc'), json_extract(@search, '$.bcc')
         FROM messages WHERE blob_hash = @hash`,
      ).run({ hash, search });
    }).immediate();
  }
}
