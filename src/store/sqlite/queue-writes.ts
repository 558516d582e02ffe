/**
 * The outbound queue's lease protocol in SQLite: claimDue hands due messages to one worker,
 * recordResults writes what an attempt learned and ends the lease, deleteQueued removes a
 * message. (Rows are created by the delivery commit, group-commit.ts.)
 *
 * Invariants
 * - A lease is (lease_owner, lease_until ms) on queue_messages. claimDue reads and sets leases
 *   in one IMMEDIATE transaction: SQLite's single writer makes a double lease impossible, across
 *   processes too. Both columns are NULL when nobody holds the message.
 * - A live lease is never handed out again by the store instance that took it, whatever the
 *   owner: a worker that claims more while it delivers must not get its own messages twice.
 *   Another instance with the same owner name (the worker's process restarted) takes it back at
 *   once; any owner takes it once it expired.
 * - recordResults changes nothing unless lease_owner is still the caller (an expired lease
 *   nobody took over still counts: its results are real). A recipient already delivered or
 *   failed keeps that status whatever a later result says.
 * - Group commit, as for deliveries (group-commit.ts): recordResults calls of one tick share a
 *   transaction, each in its own savepoint so a bad call fails alone; the transaction commits
 *   without fsync (synchronous=NORMAL) and the WAL is fsynced off the event loop (WalSync,
 *   shared with the delivery commit) before any caller hears of it. Calls that arrive during the
 *   fsync form the next batch.
 * - A message with no recipient left waiting is deleted with its blob reference in that
 *   transaction. The files of blobs it left unreferenced are deleted once the commit is durable,
 *   in the serial lane and only if still unreferenced (a delivery may have brought the same
 *   bytes back meanwhile), so no delivery dedupes against a file being removed (as
 *   expungeMessages, writes.ts, and GroupCommit's orphan removal).
 */
import type Database from 'better-sqlite3';
import { InvalidInput, NotFound, TemporaryFailure } from '../../util/errors.js';
import type { BlobStore, LeasedMessage, RecipientResult } from '../types.js';
import { BlobRefs, removeBlobFiles } from './blob-refs.js';
import {
  checkOwner,
  checkResults,
  checkTime,
  QUEUE_MESSAGE_COLUMNS,
  QUEUE_RECIPIENT_COLUMNS,
  toQueued,
  WAITING,
  type QueueMessageRow,
  type QueueRecipientRow,
} from '../queue-rows.js';
import type { SerialLane } from './serial-lane.js';
import { statementCache, type Prepare } from './statements.js';
import type { WalSync } from './wal-sync.js';

interface PendingRecord {
  queueId: number;
  owner: string;
  results: RecipientResult[];
  keepLease: boolean;
  resolve(recorded: boolean): void;
  reject(error: unknown): void;
}

type Applied = { ok: true; recorded: boolean; unreferenced: string[] } | { ok: false; error: unknown };


export class QueueWrites {
  private readonly sql: Prepare;
  private readonly refs: BlobRefs;
  private pending: PendingRecord[] = [];
  private flushQueued = false;
  /** Messages this instance leased and has not recorded yet: id -> lease_until (ms). */
  private readonly leasedHere = new Map<number, number>();
  private readonly runBatch: (batch: PendingRecord[]) => Applied[];
  private readonly settling = new Set<Promise<void>>();

  constructor(
    private readonly db: Database.Database,
    private readonly lane: SerialLane,
    private readonly blobs: BlobStore,
    private readonly walSync: WalSync,
  ) {
    this.sql = statementCache(db);
    this.refs = new BlobRefs(db);
    // Nested better-sqlite3 transactions are savepoints.
    const applyOne = db.transaction((p: PendingRecord) => this.apply(p));
    const batchTx = db.transaction((batch: PendingRecord[]): Applied[] =>
      batch.map((p) => {
        try {
          return { ok: true, ...applyOne(p) };
        } catch (error) {
          return { ok: false, error };
        }
      }),
    );
    this.runBatch = (batch) => {
      db.pragma('synchronous = NORMAL');
      try {
        return batchTx.immediate(batch);
      } finally {
        db.pragma('synchronous = FULL');
      }
    };
  }

  /** Waits until every recordResults submitted so far is settled. */
  async close(): Promise<void> {
    await this.lane.idle();
    await Promise.allSettled([...this.settling]);
  }

  claimDue(owner: string, now: Date, limit: number, leaseMs: number): LeasedMessage[] {
    checkOwner(owner);
    const at = checkTime(now, 'now');
    if (!Number.isSafeInteger(limit) || limit < 0) throw new InvalidInput(`claim limit must be a whole number, not ${limit}`);
    if (!Number.isSafeInteger(leaseMs) || leaseMs <= 0) throw new InvalidInput(`lease must be a positive number of ms, not ${leaseMs}`);
    if (limit === 0) return [];
    for (const [id, until] of this.leasedHere) if (until < at) this.leasedHere.delete(id);
    const mine = JSON.stringify([...this.leasedHere.keys()]);
    const leased = this.db
      .transaction((): LeasedMessage[] => {
        // Walks waiting recipients in due order (index queue_recipients_waiting) and stops at
        // `limit` distinct messages, so a long backlog costs only what is taken.
        const due = this.sql<[{ now: number; owner: string; mine: string }], { queue_id: number }>(
          `SELECT r.queue_id FROM queue_recipients r JOIN queue_messages m ON m.id = r.queue_id
           WHERE r.${WAITING} AND r.next_attempt_at <= @now AND m.held = 0
             AND (m.lease_owner IS NULL OR m.lease_until < @now
                  OR (m.lease_owner = @owner AND m.id NOT IN (SELECT value FROM json_each(@mine))))
           ORDER BY r.next_attempt_at, r.queue_id`,
        );
        const ids = new Set<number>();
        for (const row of due.iterate({ now: at, owner, mine })) {
          ids.add(row.queue_id);
          if (ids.size >= limit) break;
        }
        const lease = this.sql<[string, number, number]>('UPDATE queue_messages SET lease_owner = ?, lease_until = ? WHERE id = ?');
        const message = this.sql<[number], QueueMessageRow>(`SELECT ${QUEUE_MESSAGE_COLUMNS} FROM queue_messages WHERE id = ?`);
        const recipients = this.sql<[number, number], QueueRecipientRow>(
          `SELECT ${QUEUE_RECIPIENT_COLUMNS} FROM queue_recipients
           WHERE queue_id = ? AND ${WAITING} AND next_attempt_at <= ? ORDER BY id`,
        );
        const leased: LeasedMessage[] = [];
        for (const id of ids) {
          lease.run(owner, at + leaseMs, id);
          leased.push({ ...toQueued(message.get(id)!, recipients.all(id, at)), leaseOwner: owner });
        }
        return leased;
      })
      .immediate();
    for (const m of leased) this.leasedHere.set(m.id, at + leaseMs);
    return leased;
  }

  recordResults(queueId: number, owner: string, results: RecipientResult[], keepLease = false): Promise<boolean> {
    try {
      checkResults(queueId, owner, results);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<boolean>((resolve, reject) => {
      this.pending.push({ queueId, owner, results, keepLease, resolve, reject });
      if (this.flushQueued) return;
      this.flushQueued = true;
      void this.lane.run(async () => {
        // Every recordResults of the current tick joins this transaction.
        await new Promise<void>((r) => setImmediate(r));
        await this.flush();
      });
    });
  }

  deleteQueued(queueId: number): Promise<void> {
    if (!Number.isSafeInteger(queueId)) return Promise.reject(new InvalidInput(`no queue id ${queueId}`));
    return this.lane.run(async () => {
      const unreferenced = this.db
        .transaction(() => {
          const row = this.sql<[number], { blob_hash: string }>('SELECT blob_hash FROM queue_messages WHERE id = ?').get(queueId);
          if (!row) throw new NotFound(`queued message ${queueId} does not exist`);
          return this.removeMessage(queueId, row.blob_hash);
        })
        .immediate();
      this.leasedHere.delete(queueId);
      await removeBlobFiles(this.blobs, unreferenced);
    });
  }

  /** Runs in the lane; never throws (every caller is settled instead). */
  private async flush(): Promise<void> {
    this.flushQueued = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    let applied: Applied[];
    try {
      applied = this.runBatch(batch);
    } catch (error) {
      const failure = new TemporaryFailure('could not record the delivery results', error);
      for (const p of batch) p.reject(failure);
      return;
    }
    // The lane is free for the next batch (and deliveries) while this one's WAL fsync runs.
    const settle = this.settle(batch, applied);
    this.settling.add(settle);
    void settle.finally(() => this.settling.delete(settle));
  }

  /** Waits until the batch is durable, removes the blob files it freed, then tells the callers. */
  private async settle(batch: PendingRecord[], applied: Applied[]): Promise<void> {
    if (applied.some((a) => a.ok)) {
      try {
        await this.walSync.sync();
      } catch (error) {
        const failure = new TemporaryFailure('could not make the delivery results durable (fsync failed)', error);
        applied = applied.map((a) => (a.ok ? { ok: false, error: failure } : a));
      }
    }
    const unreferenced = applied.flatMap((a) => (a.ok ? a.unreferenced : []));
    if (unreferenced.length > 0) {
      await this.lane
        .run(() => removeBlobFiles(this.blobs, unreferenced.filter((hash) => !this.refs.isReferenced(hash))))
        .catch(() => undefined); // the database is failing: leave the files (an orphan is harmless)
    }
    batch.forEach((p, i) => {
      const a = applied[i]!;
      if (a.ok) {
        if (!p.keepLease) this.leasedHere.delete(p.queueId);
        p.resolve(a.recorded);
      } else {
        p.reject(a.error);
      }
    });
  }

  /** One recordResults call; runs inside the batch transaction, in its own savepoint. */
  private apply(p: PendingRecord): { recorded: boolean; unreferenced: string[] } {
    const message = this.sql<[number], { blob_hash: string; lease_owner: string | null }>(
      'SELECT blob_hash, lease_owner FROM queue_messages WHERE id = ?',
    ).get(p.queueId);
    if (!message || message.lease_owner !== p.owner) return { recorded: false, unreferenced: [] };
    const update = this.sql<[string, number | null, string | null, string | null, number, number]>(
      `UPDATE queue_recipients SET status = ?, next_attempt_at = coalesce(?, next_attempt_at), attempts = attempts + 1,
         last_error = ?, remote_mta = ?
       WHERE id = ? AND queue_id = ? AND ${WAITING}`,
    );
    const belongs = this.sql<[number, number], { one: number }>('SELECT 1 AS one FROM queue_recipients WHERE id = ? AND queue_id = ?');
    for (const r of p.results) {
      const next = r.outcome === 'deferred' ? r.nextAttemptAt!.getTime() : null;
      const changed = update.run(r.outcome, next, r.error ?? null, r.remoteMta ?? null, r.recipientId, p.queueId).changes;
      // Not changed: already delivered or failed (kept), or not this message's (a caller's bug).
      if (changed === 0 && belongs.get(r.recipientId, p.queueId) === undefined) {
        throw new InvalidInput(`recipient ${r.recipientId} is not a recipient of queued message ${p.queueId}`);
      }
    }
    if (!p.keepLease) this.sql<[number]>('UPDATE queue_messages SET lease_owner = NULL, lease_until = NULL WHERE id = ?').run(p.queueId);
    const waiting = this.sql<[number], { one: number }>(
      `SELECT 1 AS one FROM queue_recipients WHERE queue_id = ? AND ${WAITING} LIMIT 1`,
    ).get(p.queueId);
    const unreferenced = waiting === undefined ? this.removeMessage(p.queueId, message.blob_hash) : [];
    return { recorded: true, unreferenced };
  }

  /** Deletes a message's rows and its one blob reference (the delivery commit added one per queue entry). */
  private removeMessage(queueId: number, blobHash: string): string[] {
    this.sql<[number]>('DELETE FROM queue_recipients WHERE queue_id = ?').run(queueId);
    this.sql<[number]>('DELETE FROM queue_messages WHERE id = ?').run(queueId);
    return this.refs.release(new Map([[blobHash, 1]]));
  }
}
