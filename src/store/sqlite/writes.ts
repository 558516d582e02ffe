/**
 * What the SQLite mail store's write operations share: the connection, its statement cache,
 * blob references, mailbox rows, the serial lane and the event bus, and the two ways a write runs.
 *
 * Invariants
 * - Every write is one IMMEDIATE transaction, durable when it returns (synchronous=FULL).
 * - Events are published after the commit, never for a transaction that rolled back.
 * - A write that may release blob references runs in the serial lane, and deletes the files of
 *   the blobs it left unreferenced after its commit and before it resolves (blob-refs.ts).
 */
import type Database from 'better-sqlite3';
import type { EventBus, MailEvent } from '../types.js';
import { BlobRefs, removeBlobFiles } from './blob-refs.js';
import type { SqliteBlobStore } from './blob-store.js';
import { MailboxRows } from './mailboxes.js';
import type { SerialLane } from './serial-lane.js';
import { statementCache, type Prepare } from './statements.js';

export interface WriteResult<T> {
  value: T;
  events: MailEvent[];
  /** Blobs this write left unreferenced: their files are deleted after the commit. */
  unreferenced?: string[];
}

export class SqliteWrites {
  readonly sql: Prepare;
  readonly refs: BlobRefs;
  readonly mailboxes: MailboxRows;

  constructor(
    readonly db: Database.Database,
    readonly blobs: SqliteBlobStore,
    readonly lane: SerialLane,
    private readonly events: EventBus,
  ) {
    this.sql = statementCache(db);
    this.refs = new BlobRefs(db);
    this.mailboxes = new MailboxRows(db);
  }

  /** A write that changes no blob reference: one transaction, then its events. */
  run<T>(work: () => WriteResult<T>): T {
    const result = this.db.transaction(work).immediate();
    this.publish(result.events);
    return result.value;
  }

  /** A write that may add or release blob references: in the lane, files removed after the commit. */
  runInLane<T>(work: () => WriteResult<T>): Promise<T> {
    return this.lane.run(async () => {
      const result = this.db.transaction(work).immediate();
      if (result.unreferenced && result.unreferenced.length > 0) await removeBlobFiles(this.blobs, result.unreferenced);
      this.publish(result.events);
      return result.value;
    });
  }

  /** Gives the mailbox its next MODSEQ (one per transaction and mailbox is enough) and returns it. */
  nextModSeq(mailboxId: number): number {
    return this.sql<[number], { modseq: number }>(
      'UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq AS modseq',
    ).get(mailboxId)!.modseq;
  }

  private publish(events: MailEvent[]): void {
    for (const event of events) {
      try {
        this.events.publish(event);
      } catch {
        // The bus must not throw (see EventBus); the write is durable regardless.
      }
    }
  }
}
