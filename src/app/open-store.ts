/**
 * Opens the store the bootstrap config names: the embedded SQLite store (the default), or
 * PostgreSQL once its adapter exists.
 */
import { mkdirSync } from 'node:fs';
import { ConfigError, type BootstrapConfig } from '../config/bootstrap.js';
import { metaIndexer } from '../pipeline/message-meta.js';
import { openSqliteStore } from '../store/sqlite/sqlite-store.js';
import type { Store } from '../store/types.js';

export async function openStore(config: Pick<BootstrapConfig, 'database' | 'dataDir'>): Promise<Store> {
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
    throw new ConfigError('this build of Fulmar has no PostgreSQL store yet; use the embedded store (database = "sqlite")');
  }
  throw new ConfigError(`database "${db}" is not understood; use "sqlite" or a postgres:// URL`);
}
