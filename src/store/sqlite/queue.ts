/**
 * The outbound queue in SQLite (QueueStore): reads and the administrator's changes here; the
 * lease protocol (claimDue, recordResults) and deletion in queue-writes.ts. Rows are created by
 * the delivery commit (group-commit.ts); scheduling and retries belong to queue/.
 *
 * Invariants
 * - Every read goes to the database: the CLI and other processes change the queue.
 * - Writes are IMMEDIATE transactions, durable when they resolve (synchronous=FULL here; group
 *   commit with an off-thread WAL fsync for recordResults, queue-writes.ts).
 */
import type Database from 'better-sqlite3';
import { InvalidInput, NotFound } from '../../util/errors.js';
import type { BlobStore, LeasedMessage, QueuedMessage, QueueStore, RecipientResult } from '../types.js';
import {
  byQueueId,
  QUEUE_MESSAGE_COLUMNS,
  QUEUE_RECIPIENT_COLUMNS,
  toQueued,
  WAITING,
  type QueueMessageRow,
  type QueueRecipientRow,
} from '../queue-rows.js';
import { QueueWrites } from './queue-writes.js';
import type { SerialLane } from './serial-lane.js';
import { statementCache, type Prepare } from './statements.js';
import type { WalSync } from './wal-sync.js';

export class SqliteQueueStore implements QueueStore {
  private readonly sql: Prepare;
  private readonly writes: QueueWrites;

  constructor(
    private readonly db: Database.Database,
    lane: SerialLane,
    blobs: BlobStore,
    walSync: WalSync,
  ) {
    this.sql = statementCache(db);
    this.writes = new QueueWrites(db, lane, blobs, walSync);
  }

  /** Waits until every recordResults submitted so far is settled (the store's close). */
  close(): Promise<void> {
    return this.writes.close();
  }

  async listQueued(): Promise<QueuedMessage[]> {
    // One read transaction, so messages and recipients come from the same snapshot.
    return this.db.transaction(() => {
      const messages = this.sql<[], QueueMessageRow>(`SELECT ${QUEUE_MESSAGE_COLUMNS} FROM queue_messages ORDER BY id`).all();
      const recipients = this.sql<[], QueueRecipientRow>(
        `SELECT ${QUEUE_RECIPIENT_COLUMNS} FROM queue_recipients ORDER BY queue_id, id`,
      ).all();
      const byQueue = byQueueId(recipients);
      return messages.map((m) => toQueued(m, byQueue.get(m.id) ?? []));
    })();
  }

  async getQueued(id: number): Promise<QueuedMessage | null> {
    return this.db.transaction(() => {
      const message = this.sql<[number], QueueMessageRow>(`SELECT ${QUEUE_MESSAGE_COLUMNS} FROM queue_messages WHERE id = ?`).get(id);
      if (!message) return null;
      const recipients = this.sql<[number], QueueRecipientRow>(
        `SELECT ${QUEUE_RECIPIENT_COLUMNS} FROM queue_recipients WHERE queue_id = ? ORDER BY id`,
      ).all(id);
      return toQueued(message, recipients);
    })();
  }

  async claimDue(owner: string, now: Date, limit: number, leaseMs: number): Promise<LeasedMessage[]> {
    return this.writes.claimDue(owner, now, limit, leaseMs);
  }

  recordResults(queueId: number, owner: string, results: RecipientResult[], options: { keepLease?: boolean } = {}): Promise<boolean> {
    return this.writes.recordResults(queueId, owner, results, options.keepLease ?? false);
  }

  /**
   * The earliest time a waiting recipient of a non-held message can be claimed: its
   * next_attempt_at, or just after its message's lease when that is later (a message in flight
   * is not due while its worker holds it; an expired lease no longer delays it).
   */
  async nextDue(): Promise<Date | null> {
    const rows = this.sql<[], { due: number; lease_until: number | null }>(
      `SELECT r.next_attempt_at AS due, m.lease_until FROM queue_recipients r JOIN queue_messages m ON m.id = r.queue_id
       WHERE r.${WAITING} AND m.held = 0 ORDER BY r.next_attempt_at`,
    );
    let best: number | null = null;
    // In due order: once a recipient is due no earlier than the best so far, none later can beat it.
    for (const row of rows.iterate()) {
      if (best !== null && row.due >= best) break;
      const at = row.lease_until === null ? row.due : Math.max(row.due, row.lease_until + 1);
      if (best === null || at < best) best = at;
    }
    return best === null ? null : new Date(best);
  }

  async retryNow(queueId?: number): Promise<number> {
    if (queueId !== undefined && !Number.isSafeInteger(queueId)) throw new InvalidInput(`no queue id ${queueId}`);
    const now = Date.now();
    return this.db
      .transaction(() => {
        if (queueId !== undefined) this.requireMessage(queueId);
        const only = queueId === undefined ? '' : 'AND queue_id = @id';
        return this.sql<[{ now: number; id: number | null }]>(
          `UPDATE queue_recipients SET next_attempt_at = @now
           WHERE ${WAITING} AND next_attempt_at > @now ${only}
             AND queue_id IN (SELECT id FROM queue_messages WHERE held = 0)`,
        ).run({ now, id: queueId ?? null }).changes;
      })
      .immediate();
  }

  async setHeld(queueId: number, held: boolean): Promise<void> {
    const changes = this.sql<[number, number]>('UPDATE queue_messages SET held = ? WHERE id = ?').run(held ? 1 : 0, queueId).changes;
    if (changes === 0) throw new NotFound(`queued message ${queueId} does not exist`);
  }

  deleteQueued(queueId: number): Promise<void> {
    return this.writes.deleteQueued(queueId);
  }

  async markDelayWarned(recipientIds: number[]): Promise<void> {
    if (!Array.isArray(recipientIds) || !recipientIds.every((id) => Number.isSafeInteger(id))) {
      throw new InvalidInput('recipient ids must be whole numbers');
    }
    if (recipientIds.length === 0) return;
    this.sql<[string]>('UPDATE queue_recipients SET delay_warned = 1 WHERE id IN (SELECT value FROM json_each(?))').run(
      JSON.stringify(recipientIds),
    );
  }

  private requireMessage(queueId: number): void {
    if (this.sql<[number], { one: number }>('SELECT 1 AS one FROM queue_messages WHERE id = ?').get(queueId) === undefined) {
      throw new NotFound(`queued message ${queueId} does not exist`);
    }
  }
}
