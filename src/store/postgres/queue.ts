/**
 * The outbound queue in PostgreSQL (QueueStore), worked by every node of a site at once: the
 * same behaviour as store/sqlite/queue.ts and queue-writes.ts, made safe for several processes
 * by row locks instead of SQLite's single writer. Rows are created by the delivery commit
 * (mail.ts); scheduling and retries belong to queue/.
 *
 * Invariants
 * - A lease is (lease_owner, lease_token, lease_until ms) on queue_messages; all three are NULL
 *   when nobody holds the message. lease_token is this store instance's random token: claimDue
 *   never hands out a live lease carrying its own token (a worker claiming more while it
 *   delivers does not get its own messages twice), whatever the owner; another instance with
 *   the same owner (the worker restarted) takes it back at once; anyone takes an expired lease.
 * - claimDue locks its candidates with FOR UPDATE SKIP LOCKED in one transaction and sets their
 *   lease before it commits: a message locked by another node's claim is skipped, one it leased
 *   meanwhile no longer qualifies (PostgreSQL rechecks the lease on the row's latest version),
 *   so no message is leased to two claimers. The claims of one instance run one at a time.
 * - recordResults locks the message row first (FOR UPDATE), so it is ordered with claims,
 *   deleteQueued and other results of that message; it changes nothing unless lease_owner is
 *   still the caller (an expired lease nobody took over still counts: its results are real).
 *   A recipient already delivered or failed keeps that status whatever a later result says.
 * - A message with no recipient left waiting is deleted, with its blob reference, in the
 *   transaction that recorded its last result (releaseBlobRefs drops database bytes with the last
 *   reference; shared-folder files are left to the orphan sweep, blob-store.ts).
 * - Queue ids come from the identity column and are never reused.
 */
import { randomUUID } from 'node:crypto';
import { InvalidInput, NotFound } from '../../util/errors.js';
import { byQueueId, checkOwner, checkResults, checkTime, QUEUE_MESSAGE_COLUMNS, QUEUE_RECIPIENT_COLUMNS, toQueued, WAITING, type QueueMessageRow, type QueueRecipientRow } from '../queue-rows.js';
import type { EventBus, LeasedMessage, QueuedMessage, QueueStore, RecipientResult } from '../types.js';
import { releaseBlobRefs } from './blob-refs.js';
import type { PgBlobStore } from './blob-store.js';
import type { Db, Queryable } from './db.js';


export class PgQueueStore implements QueueStore {
  /** Names this instance's leases (see the module invariants). */
  private readonly token = randomUUID();
  /** The tail of this instance's claims, run one at a time. */
  private claiming: Promise<unknown> = Promise.resolve();

  constructor(
    readonly db: Db,
    readonly blobs: PgBlobStore,
    readonly events: EventBus,
  ) {}

  async listQueued(): Promise<QueuedMessage[]> {
    // One snapshot for messages and recipients.
    return this.db.tx(async (tx) => {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const messages = await tx.query<QueueMessageRow>(`SELECT ${QUEUE_MESSAGE_COLUMNS} FROM queue_messages ORDER BY id`);
      const recipients = await tx.query<QueueRecipientRow>(`SELECT ${QUEUE_RECIPIENT_COLUMNS} FROM queue_recipients ORDER BY queue_id, id`);
      const byQueue = byQueueId(recipients);
      return messages.map((m) => toQueued(m, byQueue.get(m.id) ?? []));
    });
  }

  async getQueued(id: number): Promise<QueuedMessage | null> {
    if (!Number.isSafeInteger(id)) return null;
    return this.db.tx(async (tx) => {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const message = await tx.one<QueueMessageRow>(`SELECT ${QUEUE_MESSAGE_COLUMNS} FROM queue_messages WHERE id = $1`, [id]);
      if (!message) return null;
      const recipients = await tx.query<QueueRecipientRow>(`SELECT ${QUEUE_RECIPIENT_COLUMNS} FROM queue_recipients WHERE queue_id = $1 ORDER BY id`, [id]);
      return toQueued(message, recipients);
    });
  }

  claimDue(owner: string, now: Date, limit: number, leaseMs: number): Promise<LeasedMessage[]> {
    try {
      checkOwner(owner);
      checkTime(now, 'now');
      if (!Number.isSafeInteger(limit) || limit < 0) throw new InvalidInput(`claim limit must be a whole number, not ${limit}`);
      if (!Number.isSafeInteger(leaseMs) || leaseMs <= 0) throw new InvalidInput(`lease must be a positive number of ms, not ${leaseMs}`);
    } catch (e) {
      return Promise.reject(e);
    }
    if (limit === 0) return Promise.resolve([]);
    const run = this.claiming.then(() => this.claim(owner, now.getTime(), limit, leaseMs));
    this.claiming = run.catch(() => undefined);
    return run;
  }

  private claim(owner: string, at: number, limit: number, leaseMs: number): Promise<LeasedMessage[]> {
    return this.db.tx(async (tx) => {
      // Walks waiting recipients in due order (index queue_recipients_waiting), locking their
      // messages, and stops at `limit` distinct messages, so a long backlog costs only what is
      // taken. Messages another claim holds locked are skipped, not waited for. A message with
      // several due recipients comes back once per recipient: the next round excludes it.
      const ids: number[] = [];
      const taken = new Set<number>();
      for (;;) {
        const want = limit - ids.length;
        const rows = await tx.query<{ id: number }>(
          `SELECT m.id FROM queue_recipients r JOIN queue_messages m ON m.id = r.queue_id
           WHERE r.${WAITING} AND r.next_attempt_at <= $1 AND NOT m.held
             AND (m.lease_owner IS NULL OR m.lease_until < $1
                  OR (m.lease_owner = $2 AND m.lease_token IS DISTINCT FROM $3))
             AND m.id <> ALL ($4::bigint[])
           ORDER BY r.next_attempt_at, r.queue_id
           LIMIT $5
           FOR UPDATE OF m SKIP LOCKED`,
          [at, owner, this.token, ids, want],
        );
        for (const row of rows) {
          if (ids.length < limit && !taken.has(row.id)) {
            taken.add(row.id);
            ids.push(row.id);
          }
        }
        if (ids.length >= limit || rows.length < want) break;
      }
      if (ids.length === 0) return [];
      // Read after the locks were taken: a result recorded meanwhile is seen, and a message
      // left with nothing due is not leased.
      const recipients = byQueueId(
        await tx.query<QueueRecipientRow>(
          `SELECT ${QUEUE_RECIPIENT_COLUMNS} FROM queue_recipients
           WHERE queue_id = ANY ($1::bigint[]) AND ${WAITING} AND next_attempt_at <= $2 ORDER BY queue_id, id`,
          [ids, at],
        ),
      );
      const leasing = ids.filter((id) => recipients.has(id));
      if (leasing.length === 0) return [];
      const messages = await tx.query<QueueMessageRow>(
        `UPDATE queue_messages SET lease_owner = $1, lease_token = $2, lease_until = $3
         WHERE id = ANY ($4::bigint[]) RETURNING ${QUEUE_MESSAGE_COLUMNS}`,
        [owner, this.token, at + leaseMs, leasing],
      );
      const byId = new Map(messages.map((m) => [m.id, m]));
      return leasing.flatMap((id) => {
        const m = byId.get(id);
        return m ? [{ ...toQueued(m, recipients.get(id)!), leaseOwner: owner }] : [];
      });
    });
  }

  async recordResults(queueId: number, owner: string, results: RecipientResult[], options: { keepLease?: boolean } = {}): Promise<boolean> {
    checkResults(queueId, owner, results);
    const keepLease = options.keepLease ?? false;
    return this.db.tx(async (tx) => {
      const message = await tx.one<{ blob_hash: string; lease_owner: string | null }>(
        'SELECT blob_hash, lease_owner FROM queue_messages WHERE id = $1 FOR UPDATE',
        [queueId],
      );
      if (!message || message.lease_owner !== owner) return false;
      if (results.length > 0) {
        const recipientIds = results.map((r) => r.recipientId);
        const belonging = await tx.query<{ id: number }>('SELECT id FROM queue_recipients WHERE queue_id = $1 AND id = ANY ($2::bigint[])', [
          queueId,
          recipientIds,
        ]);
        if (belonging.length !== recipientIds.length) {
          const known = new Set(belonging.map((r) => r.id));
          const stranger = recipientIds.find((id) => !known.has(id));
          throw new InvalidInput(`recipient ${stranger} is not a recipient of queued message ${queueId}`);
        }
        // Recipients already delivered or failed are left as they are.
        await tx.query(
          `UPDATE queue_recipients r SET status = v.status, next_attempt_at = coalesce(v.next_attempt_at, r.next_attempt_at),
             attempts = r.attempts + 1, last_error = v.last_error, remote_mta = v.remote_mta
           FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[]) AS v(id, status, next_attempt_at, last_error, remote_mta)
           WHERE r.id = v.id AND r.queue_id = $1 AND r.${WAITING}`,
          [
            queueId,
            recipientIds,
            results.map((r) => r.outcome),
            results.map((r) => (r.outcome === 'deferred' ? r.nextAttemptAt!.getTime() : null)),
            results.map((r) => r.error ?? null),
            results.map((r) => r.remoteMta ?? null),
          ],
        );
      }
      const waiting = await tx.one(`SELECT 1 AS one FROM queue_recipients WHERE queue_id = $1 AND ${WAITING} LIMIT 1`, [queueId]);
      if (waiting === undefined) {
        await removeMessage(tx, queueId, message.blob_hash);
      } else if (!keepLease) {
        await tx.query('UPDATE queue_messages SET lease_owner = NULL, lease_token = NULL, lease_until = NULL WHERE id = $1', [queueId]);
      }
      return true;
    });
  }

  /**
   * The earliest time a waiting recipient of a non-held message can be claimed: its
   * next_attempt_at, or just after its message's lease when that is later (a message in flight
   * is not due while its worker holds it; an expired lease no longer delays it).
   */
  async nextDue(): Promise<Date | null> {
    // Messages nobody holds: the first waiting recipient in due order (the partial index).
    // Leased ones (few: those in flight, or left by a dead worker): each from its lease's end.
    const row = await this.db.one<{ due: number | null }>(
      `SELECT least(
         (SELECT r.next_attempt_at FROM queue_recipients r JOIN queue_messages m ON m.id = r.queue_id
          WHERE r.${WAITING} AND NOT m.held AND m.lease_until IS NULL
          ORDER BY r.next_attempt_at LIMIT 1),
         (SELECT min(greatest(w.due, m.lease_until + 1)) FROM queue_messages m
          CROSS JOIN LATERAL (SELECT min(r.next_attempt_at) AS due FROM queue_recipients r WHERE r.queue_id = m.id AND r.${WAITING}) w
          WHERE m.lease_until IS NOT NULL AND NOT m.held AND w.due IS NOT NULL)
       ) AS due`,
    );
    const due = row?.due ?? null;
    return due === null ? null : new Date(due);
  }

  async retryNow(queueId?: number): Promise<number> {
    if (queueId !== undefined && !Number.isSafeInteger(queueId)) throw new InvalidInput(`no queue id ${queueId}`);
    const now = Date.now();
    return this.db.tx(async (tx) => {
      if (queueId !== undefined && (await tx.one('SELECT 1 AS one FROM queue_messages WHERE id = $1', [queueId])) === undefined) {
        throw new NotFound(`queued message ${queueId} does not exist`);
      }
      const row = await tx.one<{ n: number }>(
        `WITH made AS (
           UPDATE queue_recipients SET next_attempt_at = $1
           WHERE ${WAITING} AND next_attempt_at > $1 AND ($2::bigint IS NULL OR queue_id = $2)
             AND queue_id IN (SELECT id FROM queue_messages WHERE NOT held)
           RETURNING 1)
         SELECT count(*)::int AS n FROM made`,
        [now, queueId ?? null],
      );
      return row?.n ?? 0;
    });
  }

  async setHeld(queueId: number, held: boolean): Promise<void> {
    if (!Number.isSafeInteger(queueId)) throw new InvalidInput(`no queue id ${queueId}`);
    const changed = await this.db.query('UPDATE queue_messages SET held = $1 WHERE id = $2 RETURNING id', [held, queueId]);
    if (changed.length === 0) throw new NotFound(`queued message ${queueId} does not exist`);
  }

  async deleteQueued(queueId: number): Promise<void> {
    if (!Number.isSafeInteger(queueId)) throw new InvalidInput(`no queue id ${queueId}`);
    await this.db.tx(async (tx) => {
      const row = await tx.one<{ blob_hash: string }>('SELECT blob_hash FROM queue_messages WHERE id = $1 FOR UPDATE', [queueId]);
      if (!row) throw new NotFound(`queued message ${queueId} does not exist`);
      await removeMessage(tx, queueId, row.blob_hash);
    });
  }

  async markDelayWarned(recipientIds: number[]): Promise<void> {
    if (!Array.isArray(recipientIds) || !recipientIds.every((id) => Number.isSafeInteger(id))) {
      throw new InvalidInput('recipient ids must be whole numbers');
    }
    if (recipientIds.length === 0) return;
    await this.db.query('UPDATE queue_recipients SET delay_warned = true WHERE id = ANY ($1::bigint[]) AND NOT delay_warned', [recipientIds]);
  }
}

/** Deletes a message's rows and its one blob reference (the delivery commit added one per queue entry). */
async function removeMessage(tx: Queryable, queueId: number, blobHash: string): Promise<void> {
  await tx.query('DELETE FROM queue_recipients WHERE queue_id = $1', [queueId]);
  await tx.query('DELETE FROM queue_messages WHERE id = $1', [queueId]);
  await releaseBlobRefs(tx, new Map([[blobHash, 1]]));
}
