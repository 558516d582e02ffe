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
import type { BlobStore, DeliveryCommit, DeliveryOutcome, Mailbox, MailStore, MessageRecord } from '../types.js';
import type { GroupCommit } from './group-commit.js';
import { MAILBOX_SELECT, MESSAGE_COLUMNS, toMailbox, toMessage, type MailboxRow, type MessageRow } from './rows.js';
import { statementCache, type Prepare } from './statements.js';

export class SqliteMailStore implements MailStore {
  private readonly sql: Prepare;

  constructor(
    db: Database.Database,
    private readonly blobs: BlobStore,
    private readonly groupCommit: GroupCommit,
  ) {
    this.sql = statementCache(db);
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
}
