/**
 * Opens the store the bootstrap config names: the embedded SQLite store (the default), or
 * PostgreSQL (`database = "postgres://..."`).
 */
import { mkdirSync } from 'node:fs';
import { ConfigError, type BootstrapConfig } from '../config/bootstrap.js';
import { metaIndexer } from '../pipeline/message-meta.js';
import { openPostgresStore } from '../store/postgres/pg-store.js';
import { openSqliteStore } from '../store/sqlite/sqlite-store.js';
import type { Store } from '../store/types.js';

export async function openStore(config: Pick<BootstrapConfig, 'database' | 'dataDir'> & { blobs?: string }): Promise<Store> {
  const db = config.database;
  if (db === 'sqlite' || db.startsWith('sqlite:')) {
    try {
      mkdirSync(config.dataDir, { recursive: true, mode: 0o750 });
    } catch (e) {
      throw new ConfigError(`cannot create the data folder ${config.dataDir}: ${(e as Error).message}`);
    }
    // The indexer lets the store index messages stored before the SEARCH index existed.
    return openSqliteStore({ dataDir: config.dataDir, indexer: metaIndexer });
  }
  if (db.startsWith('postgres://') || db.startsWith('postgresql://')) {
    // Staging files stay local; message bytes go to the database or the shared blob folder.
    return openPostgresStore({ url: db, dataDir: config.dataDir, blobs: config.blobs });
  }
  throw new ConfigError(`database "${db}" is not understood; use "sqlite" or a postgres:// URL`);
}
