/**
 * The outbound queue's read side in SQLite (QueueStore). Rows are written by the delivery
 * commit (group-commit.ts); scheduling and retries belong to queue/.
 */
import type Database from 'better-sqlite3';
import type { QueuedMessage, QueueStore } from '../types.js';
import { statementCache, type Prepare } from './statements.js';

interface QueueMessageRow {
  id: number;
  blob_hash: string;
  size: number;
  mail_from: string;
  env_id: string | null;
  ret: 'FULL' | 'HDRS' | null;
  created_at: number;
}

interface QueueRecipientRow {
  id: number;
  queue_id: number;
  address: string;
  orcpt: string | null;
  notify: string | null;
  status: QueuedMessage['recipients'][number]['status'];
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
}

const MESSAGE_COLUMNS = 'id, blob_hash, size, mail_from, env_id, ret, created_at';
const RECIPIENT_COLUMNS = 'id, queue_id, address, orcpt, notify, status, attempts, next_attempt_at, last_error';

export class SqliteQueueStore implements QueueStore {
  private readonly sql: Prepare;

  constructor(private readonly db: Database.Database) {
    this.sql = statementCache(db);
  }

  async listQueued(): Promise<QueuedMessage[]> {
    // One read transaction, so messages and recipients come from the same snapshot.
    return this.db.transaction(() => {
      const messages = this.sql<[], QueueMessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM queue_messages ORDER BY id`).all();
      const recipients = this.sql<[], QueueRecipientRow>(
        `SELECT ${RECIPIENT_COLUMNS} FROM queue_recipients ORDER BY queue_id, id`,
      ).all();
      const byQueue = new Map<number, QueueRecipientRow[]>();
      for (const r of recipients) {
        const list = byQueue.get(r.queue_id);
        if (list) list.push(r);
        else byQueue.set(r.queue_id, [r]);
      }
      return messages.map((m) => toQueued(m, byQueue.get(m.id) ?? []));
    })();
  }

  async getQueued(id: number): Promise<QueuedMessage | null> {
    return this.db.transaction(() => {
      const message = this.sql<[number], QueueMessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM queue_messages WHERE id = ?`).get(id);
      if (!message) return null;
      const recipients = this.sql<[number], QueueRecipientRow>(
        `SELECT ${RECIPIENT_COLUMNS} FROM queue_recipients WHERE queue_id = ? ORDER BY id`,
      ).all(id);
      return toQueued(message, recipients);
    })();
  }
}

function toQueued(m: QueueMessageRow, recipients: QueueRecipientRow[]): QueuedMessage {
  return {
    id: m.id,
    blobHash: m.blob_hash,
    size: m.size,
    mailFrom: m.mail_from,
    createdAt: new Date(m.created_at),
    envId: m.env_id,
    ret: m.ret,
    recipients: recipients.map((r) => ({
      id: r.id,
      address: r.address,
      orcpt: r.orcpt,
      notify: r.notify,
      status: r.status,
      attempts: r.attempts,
      nextAttemptAt: new Date(r.next_attempt_at),
      lastError: r.last_error,
    })),
  };
}
