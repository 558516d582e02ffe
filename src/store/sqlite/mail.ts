/**
 * Mailboxes and messages in SQLite (MailStore): reads, message streams and the delivery commit.
 *
 * Invariants
 * - Reads always query the database (no caching), so another process's change is seen at once.
 * - Writes on the ingest path go through GroupCommit (see group-commit.ts).
 */
import type Database from 'better-sqlite3';
import { Readable } from 'node:stream';
import { normalizeMailboxName } from '../names.js';
import { NotFound } from '../../util/errors.js';
import type { DeliveryCommit, DeliveryOutcome, EventBus, Mailbox, MailStore, MessageRecord } from '../types.js';
import { BlobRefs, removeBlobFiles } from './blob-refs.js';
import type { SqliteBlobStore } from './blob-store.js';
import type { SerialLane } from './serial-lane.js';
import type { GroupCommit } from './group-commit.js';
import { MAILBOX_SELECT, MESSAGE_COLUMNS, toMailbox, toMessage, type MailboxRow, type MessageRow } from './rows.js';
import { statementCache, type Prepare } from './statements.js';

export class SqliteMailStore implements MailStore {
  private readonly sql: Prepare;

  private readonly refs: BlobRefs;

  constructor(
    private readonly db: Database.Database,
    private readonly blobs: SqliteBlobStore,
    private readonly groupCommit: GroupCommit,
    private readonly lane: SerialLane,
    private readonly events: EventBus,
  ) {
    this.sql = statementCache(db);
    this.refs = new BlobRefs(db);
  }

  async listMailboxes(accountId: number): Promise<Mailbox[]> {
    return this.sql<[number], MailboxRow>(
      `${MAILBOX_SELECT} WHERE m.account_id = ? ORDER BY m.name <> 'INBOX', m.name`,
    )
      .all(accountId)
      .map(toMailbox);
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

  async expungeMessages(mailboxId: number, uids: number[]): Promise<number[]> {
    if (uids.length === 0) return [];
    // In the lane with deliveries and account removals: blob files are only deleted there.
    return this.lane.run(async () => {
      const removal = this.db
        .transaction(() => {
          const box = this.sql<[number], { account_id: number }>('SELECT account_id FROM mailboxes WHERE id = ?').get(mailboxId);
          if (!box) return null;
          const find = this.sql<[number, number], { id: number; blob_hash: string; size: number }>(
            'SELECT id, blob_hash, size FROM messages WHERE mailbox_id = ? AND uid = ?',
          );
          const remove = this.sql<[number]>('DELETE FROM messages WHERE id = ?');
          const counts = new Map<string, number>();
          const removed: number[] = [];
          let bytes = 0;
          for (const uid of new Set(uids)) {
            const row = find.get(mailboxId, uid);
            if (!row) continue;
            remove.run(row.id);
            counts.set(row.blob_hash, (counts.get(row.blob_hash) ?? 0) + 1);
            bytes += row.size;
            removed.push(uid);
          }
          if (removed.length === 0) return { accountId: box.account_id, removed, modSeq: 0, unreferenced: [] as string[] };
          this.sql('UPDATE accounts SET used_bytes = max(0, used_bytes - ?) WHERE id = ?').run(bytes, box.account_id);
          const { modseq } = this.sql<[number], { modseq: number }>(
            'UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq AS modseq',
          ).get(mailboxId)!;
          return { accountId: box.account_id, removed, modSeq: modseq, unreferenced: this.refs.release(counts) };
        })
        .immediate();
      if (!removal) throw new NotFound(`mailbox ${mailboxId} does not exist`);
      await removeBlobFiles(this.blobs, removal.unreferenced);
      for (const uid of removal.removed) {
        this.events.publish({ type: 'expunge', accountId: removal.accountId, mailboxId, uid, modSeq: removal.modSeq });
      }
      return removal.removed;
    });
  }
}
