/**
 * Group commit for `commitDelivery`: concurrent deliveries share one blob persist and one SQLite
 * transaction (one WAL fsync).
 *
 * Each submit() pushes onto `pending`; the first one schedules a flush in the store's serial
 * lane, which waits one setImmediate (so every commit of the current tick joins) and then takes
 * everything pending. Commits that arrive while a flush runs wait for the next one, so batches
 * grow with the load.
 *
 * Invariants
 * - Durable before acknowledged: a promise resolves only after `blobs.persist` (file and folder
 *   fsync), the COMMIT and the fsync of the WAL (WalSync, on the thread pool) all succeeded.
 *   The next batch may commit while this one's fsync runs, so batches overlap and grow.
 * - Never partially acknowledged: each commit runs in its own SAVEPOINT, so one bad commit (a
 *   removed account) fails alone, but if the transaction itself fails every caller of the batch
 *   is rejected, with TemporaryFailure.
 * - Events are published after the transaction commits and before the callers are resolved,
 *   so when commitDelivery resolves, IDLE listeners have been told.
 * - A blob persisted for a commit that then failed is deleted unless something references it.
 */
import { checkCommit, remoteAddress } from '../commit-rules.js';
import type Database from 'better-sqlite3';
import { isFulmarError, NotFound, TemporaryFailure } from '../../util/errors.js';
import { markCollected } from './collect.js';
import { canonicalFlags } from '../flags.js';
import type { BlobStore, DeliveryCommit, DeliveryOutcome, EventBus, MailEvent, OutboundEnvelope } from '../types.js';
import { BlobRefs, removeBlobFiles } from './blob-refs.js';
import { MailboxRows } from './mailboxes.js';
import { INSERT_SEARCH_ROW, parseSearchFields, type SearchValues } from './search-rows.js';
import type { SerialLane } from './serial-lane.js';
import type { WalSync } from './wal-sync.js';
import { statementCache, type Prepare } from './statements.js';

export interface GroupCommitStats {
  /** Flushes that ran a transaction. */
  transactions: number;
  /** Commits submitted. */
  commits: number;
  largestBatch: number;
}

interface Pending {
  commit: DeliveryCommit;
  resolve(outcome: DeliveryOutcome): void;
  reject(error: unknown): void;
}

type Applied = { ok: true; outcome: DeliveryOutcome; events: MailEvent[] } | { ok: false; error: unknown };

export class GroupCommit {
  readonly stats: GroupCommitStats = { transactions: 0, commits: 0, largestBatch: 0 };
  private pending: Pending[] = [];
  private flushQueued = false;
  private closed = false;
  private readonly sql: Prepare;
  private readonly refs: BlobRefs;
  private readonly mailboxes: MailboxRows;
  private readonly runBatch: (batch: Pending[]) => Applied[];
  private readonly settling = new Set<Promise<void>>();

  constructor(
    private readonly db: Database.Database,
    private readonly lane: SerialLane,
    private readonly blobs: BlobStore,
    private readonly events: EventBus,
    private readonly walSync: WalSync,
  ) {
    this.sql = statementCache(db);
    this.refs = new BlobRefs(db);
    this.mailboxes = new MailboxRows(db);
    // Nested better-sqlite3 transactions are savepoints.
    const applyOne = db.transaction((commit: DeliveryCommit) => this.apply(commit));
    const batchTx = db.transaction((batch: Pending[]): Applied[] =>
      batch.map((p) => {
        try {
          return { ok: true, ...applyOne(p.commit) };
        } catch (error) {
          return { ok: false, error };
        }
      }),
    );
    // The commit itself does not fsync (synchronous=NORMAL); settle() fsyncs the WAL off the
    // event loop before any caller hears of it. Every other write keeps synchronous=FULL.
    this.runBatch = (batch) => {
      db.pragma('synchronous = NORMAL');
      try {
        return batchTx.immediate(batch);
      } finally {
        db.pragma('synchronous = FULL');
      }
    };
  }

  submit(commit: DeliveryCommit): Promise<DeliveryOutcome> {
    if (this.closed) return Promise.reject(new TemporaryFailure('the store is closed'));
    try {
      checkCommit(commit);
    } catch (e) {
      return Promise.reject(e);
    }
    this.stats.commits++;
    return new Promise<DeliveryOutcome>((resolve, reject) => {
      this.pending.push({ commit, resolve, reject });
      if (this.flushQueued) return;
      this.flushQueued = true;
      void this.lane.run(async () => {
        await new Promise<void>((r) => setImmediate(r));
        await this.flush();
      });
    });
  }

  /** Refuses new commits and waits until the pending ones are flushed and settled. */
  async close(): Promise<void> {
    this.closed = true;
    await this.lane.idle();
    await Promise.allSettled([...this.settling]);
  }

  private async flush(): Promise<void> {
    this.flushQueued = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
    try {
      await this.flushBatch(batch);
    } catch (error) {
      // A bug, not a database failure: still settle every caller (settling twice is a no-op).
      for (const p of batch) p.reject(new TemporaryFailure('delivery commit failed unexpectedly', error));
    }
  }

  private async flushBatch(batch: Pending[]): Promise<void> {
    const failures = new Map<Pending, unknown>();
    try {
      await this.blobs.persist(batch.map((p) => p.commit.blob));
    } catch {
      // Find the culprit(s): persist is idempotent, so retry one by one.
      for (const p of batch) {
        await this.blobs.persist([p.commit.blob]).catch((error: unknown) => failures.set(p, error));
      }
    }
    const live = batch.filter((p) => !failures.has(p));

    let applied: Applied[] = [];
    if (live.length > 0) {
      try {
        this.stats.transactions++;
        applied = this.runBatch(live);
      } catch (error) {
        const failure = new TemporaryFailure('could not commit the delivery transaction', error);
        applied = live.map(() => ({ ok: false, error: failure }));
      }
    }
    // The lane is free for the next batch while this one's WAL fsync runs.
    this.track(this.settle(live, applied, failures));
  }

  /** Waits until the batch is durable, then tells listeners and callers. */
  private async settle(live: Pending[], applied: Applied[], failures: Map<Pending, unknown>): Promise<void> {
    if (applied.some((r) => r.ok)) {
      try {
        await this.walSync.sync();
      } catch (error) {
        const failure = new TemporaryFailure('could not make the delivery durable (fsync failed)', error);
        applied = applied.map((r) => (r.ok ? { ok: false, error: failure } : r));
      }
    }
    live.forEach((p, i) => {
      const result = applied[i]!;
      if (!result.ok) failures.set(p, result.error);
      else for (const event of result.events) this.publish(event);
    });
    live.forEach((p, i) => {
      const result = applied[i]!;
      if (result.ok) p.resolve(result.outcome);
    });
    if (failures.size === 0) return;
    // Before rejecting, so a rejected caller finds no blob of its own left behind. In the lane:
    // a later flush must not dedupe against a file that is being removed.
    const hashes = [...failures.keys()].map((p) => p.commit.blob.hash);
    await this.lane.run(() => this.removeOrphans(hashes));
    for (const [p, error] of failures) {
      p.reject(isFulmarError(error) ? error : new TemporaryFailure('delivery failed', error));
    }
  }

  private track(work: Promise<void>): void {
    this.settling.add(work);
    void work.finally(() => this.settling.delete(work));
  }

  private publish(event: MailEvent): void {
    try {
      this.events.publish(event);
    } catch {
      // The bus must not throw (see EventBus); if one does, the delivery is durable regardless.
    }
  }

  /** One commit's rows; runs inside the batch transaction, in its own savepoint. */
  private apply(commit: DeliveryCommit): { outcome: DeliveryOutcome; events: MailEvent[] } {
    const { blob } = commit;
    const internalDate = commit.internalDate.getTime();
    const delivered: DeliveryOutcome['delivered'] = [];
    const events: MailEvent[] = [];
    const search = commit.local.length > 0 ? this.searchValues(commit) : null;
    for (const local of commit.local) {
      const mailbox = local.exactMailbox
        ? this.mailboxes.resolveExact(local.accountId, local.mailbox)
        : this.mailboxes.resolveForDelivery(local.accountId, local.mailbox);
      if (!mailbox) {
        throw new NotFound(
          local.exactMailbox
            ? `mailbox ${local.mailbox} does not exist`
            : `account ${local.accountId} no longer exists`,
        );
      }
      const { uid, modseq } = this.sql<[number], { uid: number; modseq: number }>(
        `UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 WHERE id = ?
         RETURNING uidnext - 1 AS uid, highestmodseq AS modseq`,
      ).get(mailbox.id)!;
      const size = local.prefix.length + blob.size;
      this.sql(
        `INSERT INTO messages (mailbox_id, uid, modseq, blob_hash, blob_size, prefix, size, internal_date, flags)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(mailbox.id, uid, modseq, blob.hash, blob.size, local.prefix, size, internalDate, JSON.stringify(canonicalFlags(local.flags)));
      this.sql('UPDATE accounts SET used_bytes = used_bytes + ? WHERE id = ?').run(size, local.accountId);
      if (search) this.sql(INSERT_SEARCH_ROW).run(mailbox.id, uid, ...search);
      delivered.push({ accountId: local.accountId, mailboxId: mailbox.id, uid });
      events.push({ type: 'exists', accountId: local.accountId, mailboxId: mailbox.id, uid, modSeq: modseq });
    }
    if (commit.collected) markCollected(this.sql, commit.collected);
    const outbound = commit.outbound && commit.outbound.recipients.length > 0 ? commit.outbound : null;
    const queueId = outbound ? this.enqueue(commit, outbound) : null;
    this.refs.add(blob.hash, blob.size, delivered.length + (outbound ? 1 : 0), blob.inline);
    if (commit.meta) {
      // After the reference, so meta never outlives its blob (blob-refs.ts deletes both). The
      // first meta stays; search text is added to meta cached without it.
      this.sql(
        `INSERT INTO blob_meta (hash, envelope, structure, search) VALUES (?, ?, ?, ?)
         ON CONFLICT (hash) DO UPDATE SET search = excluded.search WHERE blob_meta.search IS NULL AND excluded.search IS NOT NULL`,
      ).run(blob.hash, commit.meta.envelope, commit.meta.structure, commit.meta.search ?? null);
    }
    return { outcome: { delivered, queueId }, events };
  }

  /** The search row values of the commit's messages: its meta's, else those cached with the blob. */
  private searchValues(commit: DeliveryCommit): SearchValues | null {
    const text =
      commit.meta?.search ??
      this.sql<[string], string | null>('SELECT search FROM blob_meta WHERE hash = ?').pluck().get(commit.blob.hash) ??
      null;
    return text === null ? null : parseSearchFields(text);
  }

  private enqueue(commit: DeliveryCommit, outbound: OutboundEnvelope): number {
    const now = Date.now();
    // Queue ids are never reused (a plain INTEGER PRIMARY KEY reuses the largest id once it is
    // deleted): an id in a log line, a `queue show` or a worker's lease names one message only.
    const { id } = this.sql<[], { id: number }>(
      `INSERT INTO counters (name, value) VALUES ('queue_id', (SELECT coalesce(max(id), 0) + 1 FROM queue_messages))
       ON CONFLICT (name) DO UPDATE SET value = max(value + 1, excluded.value)
       RETURNING value AS id`,
    ).get()!;
    const queueId = id;
    this.sql(
      `INSERT INTO queue_messages (id, blob_hash, size, mail_from, env_id, ret, created_at, prefix) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(queueId, commit.blob.hash, commit.blob.size, outbound.mailFrom, outbound.envId ?? null, outbound.ret ?? null, now, outbound.prefix && outbound.prefix.length > 0 ? outbound.prefix : null);
    const insert = this.sql(
      `INSERT INTO queue_recipients (queue_id, address, orcpt, notify, next_attempt_at) VALUES (?, ?, ?, ?, ?)`,
    );
    for (const r of outbound.recipients) {
      insert.run(queueId, remoteAddress(r.address), r.orcpt ?? null, r.notify ?? null, now);
    }
    return queueId;
  }

  private async removeOrphans(hashes: string[]): Promise<void> {
    if (hashes.length === 0) return;
    try {
      await removeBlobFiles(this.blobs, new Set(hashes.filter((h) => !this.refs.isReferenced(h))));
    } catch {
      // The database is failing too: leave the files; an orphan is harmless.
    }
  }
}
