/**
 * The embedded backend: SQLite (`<data>/fulmar.db`) for metadata and small message bodies,
 * FileBlobStore (`<data>/blobs`) for larger ones, and the in-memory event bus.
 *
 * Invariants
 * - WAL mode with synchronous=FULL: every COMMIT fsyncs the WAL, which is the durability point
 *   of a delivery. busy_timeout=5000 lets the server and CLI processes share the file.
 * - Foreign keys are enforced (mailboxes and messages cascade with their account).
 * - Operations that change blob references and files run in one serial lane (serial-lane.ts).
 * - Given an indexer, the open indexes messages stored without header SEARCH rows before it
 *   resolves (search-rows.ts backfillSearchRows); the server's open-store.ts gives one.
 */
import Database from 'better-sqlite3';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FileBlobStore } from '../blobs/file-blob-store.js';
import { MemoryEventBus } from '../memory-events.js';
import { MemoryLocks } from '../memory-locks.js';
import type { MetaIndexer, Store } from '../types.js';
import { INLINE_LIMIT, SqliteBlobStore } from './blob-store.js';
import { SqliteCollectStore } from './collect.js';
import { SqliteDirectory } from './directory.js';
import { GroupCommit, type GroupCommitStats } from './group-commit.js';
import { SqliteMailStore } from './mail.js';
import { migrate } from './migrations.js';
import { SqliteQueueStore } from './queue.js';
import { backfillSearchRows } from './search-rows.js';
import { SerialLane } from './serial-lane.js';
import { SqliteSettings } from './settings.js';
import { WalSync } from './wal-sync.js';

export const DATABASE_FILE = 'fulmar.db';
const BUSY_TIMEOUT_MS = 5000;

export interface SqliteStoreOptions {
  dataDir: string;
  /**
   * Lets the store index, at open, the messages it holds without search rows (stored before
   * schema 6, or committed without meta): see backfillSearchRows. Without it nothing is
   * backfilled (such messages are indexed when their meta is set, or at a later open with it).
   */
  indexer?: MetaIndexer;
}

export interface SqliteStore extends Store {
  readonly blobs: SqliteBlobStore;
  readonly databasePath: string;
  /** Group-commit counters, for tests and benchmarks. */
  readonly commitStats: Readonly<GroupCommitStats>;
}

export async function openSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  await mkdir(options.dataDir, { recursive: true });
  const files = await FileBlobStore.openAt(options.dataDir, { inlineLimit: INLINE_LIMIT });
  const databasePath = join(options.dataDir, DATABASE_FILE);
  const db = openDatabase(databasePath);
  const blobs = new SqliteBlobStore(db, files);
  if (options.indexer) {
    try {
      await backfillSearchRows(db, blobs, options.indexer);
    } catch (e) {
      db.close();
      throw e;
    }
  }
  const lane = new SerialLane();
  const events = new MemoryEventBus();
  const walSync = new WalSync(`${databasePath}-wal`);
  const groupCommit = new GroupCommit(db, lane, blobs, events, walSync);
  const queue = new SqliteQueueStore(db, lane, blobs, walSync);
  let closing: Promise<void> | null = null;

  return {
    directory: new SqliteDirectory(db, lane, blobs, events),
    mail: new SqliteMailStore(db, blobs, groupCommit, lane, events),
    queue,
    settings: new SqliteSettings(db),
    collect: new SqliteCollectStore(db),
    locks: new MemoryLocks(),
    blobs,
    events,
    databasePath,
    commitStats: groupCommit.stats,
    async sweepOrphans(minAgeMs: number): Promise<number> {
      const referenced = db.prepare<[string], { one: number }>('SELECT 1 AS one FROM blob_refs WHERE hash = ?');
      let removed = 0;
      for await (const hash of files.listOlderThan(minAgeMs)) {
        if (referenced.get(hash) !== undefined) continue;
        // Checked again and removed in the lane: no delivery can be deduping against it meanwhile.
        const gone = await lane.run(async () => {
          if (referenced.get(hash) !== undefined) return false;
          await files.remove(hash);
          return true;
        });
        if (gone) removed++;
      }
      return removed;
    },
    close(): Promise<void> {
      closing ??= (async () => {
        await groupCommit.close();
        await queue.close();
        await lane.idle();
        db.close();
      })();
      return closing;
    },
  };
}

/** Opens the database file with Fulmar's pragmas and brings its schema up to date. */
export function openDatabase(path: string): Database.Database {
  const db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    migrate(db);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}
