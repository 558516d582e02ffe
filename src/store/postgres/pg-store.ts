/**
 * The PostgreSQL backend: every interface of store/types.ts over one pooled database that
 * several Fulmar nodes share. Message bytes live in the database (chunked) or in a folder all
 * nodes mount; mailbox events reach the other nodes through LISTEN/NOTIFY.
 *
 * Invariants
 * - Opening creates the database when it does not exist and migrates it (once, whatever the
 *   number of nodes starting at once: schema.ts).
 * - Every write that the store's contract calls durable is a committed transaction: PostgreSQL
 *   fsyncs its WAL at COMMIT (synchronous_commit = on, the server default; a site that turns it
 *   off trades this promise away).
 */
import { mkdir } from 'node:fs/promises';
import { FileBlobStore } from '../blobs/file-blob-store.js';
import type { CollectStore, DirectoryStore, MailStore, QueueStore, Store } from '../types.js';
import { PG_INLINE_LIMIT, PgBlobStore } from './blob-store.js';
import { PgCollectStore } from './collect.js';
import { Db } from './db.js';
import { PgDirectory } from './directory.js';
import { PgEventBus } from './events.js';
import { PgMailStore } from './mail.js';
import { PgQueueStore } from './queue.js';
import { PgLocks } from './locks.js';
import { migrate } from './schema.js';
import { PgSettings } from './settings.js';

export interface PostgresStoreOptions {
  url: string;
  /** Local folder for staging files (and, in folder mode, nothing else). */
  dataDir: string;
  /** "database" (default) or the absolute path of a folder every node shares. */
  blobs?: string;
  /** Work in this schema instead of public (tests). */
  schema?: string;
  poolSize?: number;
}

export interface PostgresStore extends Store {
  readonly db: Db;
  readonly blobs: PgBlobStore;
}

export async function openPostgresStore(options: PostgresStoreOptions): Promise<PostgresStore> {
  const db = await Db.open({ url: options.url, ...(options.schema ? { schema: options.schema } : {}), max: options.poolSize ?? 10 });
  try {
    const client = await db.pool.connect();
    try {
      await migrate(client);
    } finally {
      client.release();
    }
    const mode = !options.blobs || options.blobs === 'database' ? 'database' : 'folder';
    const fileRoot = mode === 'folder' ? options.blobs! : options.dataDir;
    await mkdir(fileRoot, { recursive: true });
    const files = await FileBlobStore.openAt(fileRoot, { inlineLimit: PG_INLINE_LIMIT });
    const blobs = new PgBlobStore(db, files, mode);
    const events = new PgEventBus(db);
    await events.start();
    const directory: DirectoryStore = new PgDirectory(db, blobs, events);
    const mail: MailStore = new PgMailStore(db, blobs, events);
    const queue: QueueStore = new PgQueueStore(db, blobs, events);
    const collect: CollectStore = new PgCollectStore(db);
    let closing: Promise<void> | null = null;
    return {
      db,
      directory,
      mail,
      queue,
      settings: new PgSettings(db),
      collect,
      locks: new PgLocks(db),
      blobs,
      events,
      async sweepOrphans(minAgeMs: number): Promise<number> {
        const before = Date.now() - minAgeMs;
        const gone = await db.query(
          `DELETE FROM blob_objects o WHERE o.created_at <= $1 AND NOT EXISTS (SELECT 1 FROM blob_refs r WHERE r.hash = o.hash) RETURNING 1 AS one`,
          [before],
        );
        let removed = gone.length;
        if (mode === 'folder') {
          for await (const hash of files.listOlderThan(minAgeMs)) {
            if ((await db.one('SELECT 1 AS one FROM blob_refs WHERE hash = $1', [hash])) !== undefined) continue;
            await files.remove(hash);
            removed++;
          }
        }
        return removed;
      },
      close(): Promise<void> {
        closing ??= (async () => {
          await events.close();
          await db.close();
        })();
        return closing;
      },
    };
  } catch (e) {
    await db.close().catch(() => {});
    throw e;
  }
}
