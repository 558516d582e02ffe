/**
 * Mailboxes and messages in PostgreSQL (MailStore), the same behaviour as store/sqlite/mail.ts:
 * reads, message streams, blob meta and the delivery commit (delivery.ts) here; IMAP's mailbox
 * writes in mailbox-ops.ts, message writes in message-ops.ts, bulk reads in message-reads.ts.
 *
 * Invariants
 * - Several nodes share the database: nothing mutable is cached in the process; every read
 *   queries the database, so another node's change is seen at once.
 * - Every write is one transaction (Db.tx); its events are published after COMMIT.
 */
import { Readable } from 'node:stream';
import { InvalidInput } from '../../util/errors.js';
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
import type { PgBlobStore } from './blob-store.js';
import type { Db } from './db.js';
import { PgDelivery } from './delivery.js';
import { PgMailboxOps } from './mailbox-ops.js';
import { PgMessageOps } from './message-ops.js';
import { PgMessageReads } from './message-reads.js';
import { MESSAGE_COLUMNS, toMessage, type MessageRow } from '../rows.js';
import { indexBlobMessages, parseSearchFields } from './search-rows.js';

export class PgMailStore implements MailStore {
  private readonly mailboxOps: PgMailboxOps;
  private readonly messageOps: PgMessageOps;
  private readonly reads: PgMessageReads;
  private readonly delivery: PgDelivery;

  constructor(
    readonly db: Db,
    readonly blobs: PgBlobStore,
    readonly events: EventBus,
  ) {
    this.mailboxOps = new PgMailboxOps(db, blobs, events);
    this.messageOps = new PgMessageOps(db, blobs, events);
    this.reads = new PgMessageReads(db);
    this.delivery = new PgDelivery(db, blobs, events);
  }

  // ---- mailboxes (mailbox-ops.ts)

  listMailboxes(accountId: number): Promise<Mailbox[]> {
    return this.mailboxOps.listMailboxes(accountId);
  }

  getMailbox(accountId: number, name: string): Promise<Mailbox | null> {
    return this.mailboxOps.getMailbox(accountId, name);
  }

  getMailboxById(mailboxId: number): Promise<Mailbox | null> {
    return this.mailboxOps.getMailboxById(mailboxId);
  }

  createMailbox(accountId: number, name: string, specialUse?: SpecialUse | null): Promise<Mailbox> {
    return this.mailboxOps.createMailbox(accountId, name, specialUse);
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

  // ---- message writes (message-ops.ts, delivery.ts)

  storeFlags(mailboxId: number, update: FlagUpdate): Promise<FlagUpdateResult> {
    return this.messageOps.storeFlags(mailboxId, update);
  }

  copyMessages(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<CopyResult> {
    return this.messageOps.copyMessages(fromMailboxId, uids, toMailboxId);
  }

  moveMessages(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<CopyResult> {
    return this.messageOps.moveMessages(fromMailboxId, uids, toMailboxId);
  }

  expungeMessages(mailboxId: number, uids: number[]): Promise<number[]> {
    return this.messageOps.expungeMessages(mailboxId, uids);
  }

  commitDelivery(commit: DeliveryCommit): Promise<DeliveryOutcome> {
    return this.delivery.commit(commit);
  }

  // ---- message reads

  async listMessages(mailboxId: number): Promise<MessageRecord[]> {
    const rows = await this.db.query<MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = $1 ORDER BY uid`, [mailboxId]);
    return rows.map(toMessage);
  }

  async listMessageSizes(mailboxId: number): Promise<Array<{ uid: number; size: number }>> {
    return this.db.query<{ uid: number; size: number }>('SELECT uid, size FROM messages WHERE mailbox_id = $1 ORDER BY uid', [mailboxId]);
  }

  async getMessage(mailboxId: number, uid: number): Promise<MessageRecord | null> {
    if (!Number.isSafeInteger(uid)) return null;
    const row = await this.db.one<MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = $1 AND uid = $2`, [mailboxId, uid]);
    return row ? toMessage(row) : null;
  }

  openMessage(message: MessageRecord): Readable {
    const { blobs } = this;
    async function* bytes(): AsyncGenerator<Buffer> {
      if (message.prefix.length > 0) yield message.prefix;
      // Opened lazily: a stream nobody reads runs no query.
      yield* blobs.open(message.blobHash) as AsyncIterable<Buffer>;
    }
    return Readable.from(bytes(), { objectMode: false });
  }

  async readMessage(message: MessageRecord): Promise<Buffer> {
    const parts: Buffer[] = message.prefix.length > 0 ? [message.prefix] : [];
    for await (const chunk of this.blobs.open(message.blobHash) as AsyncIterable<Buffer>) parts.push(chunk);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

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
   * first time, its messages without a search row get one (by the messages_blob index).
   *
   * The blob_refs row is read FOR SHARE first: a release of the last reference (FOR UPDATE) has
   * then either committed (no meta is written) or waits, and a delivery of the same blob (its
   * addBlobRefs upsert) has either committed (its messages are indexed here) or waits and then
   * reads the search text committed here (delivery.ts) — no message is left without its row.
   */
  async setBlobMeta(hash: string, meta: BlobMeta): Promise<void> {
    if (typeof meta?.envelope !== 'string' || typeof meta.structure !== 'string') throw new InvalidInput('blob meta needs an envelope and a structure');
    const search = meta.search ?? null;
    const values = search !== null ? parseSearchFields(search) : null; // InvalidInput when malformed
    await this.db.tx(async (tx) => {
      const referenced = await tx.one('SELECT 1 AS one FROM blob_refs WHERE hash = $1 FOR SHARE', [hash]);
      if (!referenced) return;
      const had = (await tx.one<{ search: string | null }>('SELECT search FROM blob_meta WHERE hash = $1 FOR UPDATE', [hash]))?.search ?? null;
      await tx.query(
        `INSERT INTO blob_meta (hash, envelope, structure, search) VALUES ($1, $2, $3, $4)
         ON CONFLICT (hash) DO UPDATE SET envelope = excluded.envelope, structure = excluded.structure,
           search = coalesce(excluded.search, blob_meta.search)`,
        [hash, meta.envelope, meta.structure, search],
      );
      if (values === null || had !== null) return;
      await indexBlobMessages(tx, hash, values);
    });
  }
}
