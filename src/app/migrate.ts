/**
 * `fulmar migrate`: opens the embedded store of a site and a PostgreSQL store, and copies the
 * one into the other (store/postgres/import-sqlite.ts knows both schemas).
 */
import type { BootstrapConfig } from '../config/bootstrap.js';
import { importSqliteSite, type ImportReport } from '../store/postgres/import-sqlite.js';
import { openPostgresStore } from '../store/postgres/pg-store.js';
import { openSqliteStore } from '../store/sqlite/sqlite-store.js';

export async function migrateToPostgres(
  config: Pick<BootstrapConfig, 'dataDir'>,
  target: { url: string; blobs: string },
  progress: (line: string) => void,
): Promise<ImportReport> {
  const source = await openSqliteStore({ dataDir: config.dataDir });
  try {
    const pg = await openPostgresStore({ url: target.url, dataDir: config.dataDir, blobs: target.blobs });
    try {
      return await importSqliteSite(source.databasePath, source, pg, progress);
    } finally {
      await pg.close().catch(() => {});
    }
  } finally {
    await source.close().catch(() => {});
  }
}
