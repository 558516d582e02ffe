// Runs the store contract on the embedded backend: SQLite + files, in a fresh temporary folder per test.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { runStoreContract } from './contract.js';

const MODULE = pathToFileURL(new URL('../../src/store/sqlite/sqlite-store.ts', import.meta.url).pathname).href;

async function countFiles(dir: string, skip: string[] = []): Promise<number> {
  let count = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (skip.includes(entry.name)) continue;
    count += entry.isDirectory() ? await countFiles(join(dir, entry.name)) : 1;
  }
  return count;
}

function inlineBlobCount(databasePath: string): number {
  const db = new Database(databasePath, { readonly: true });
  try {
    return db.prepare<[], { n: number }>('SELECT count(*) AS n FROM blob_data').get()!.n;
  } finally {
    db.close();
  }
}

runStoreContract('sqlite', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'fulmar-store-'));
  const store = await openSqliteStore({ dataDir });
  return {
    store,
    async cleanup() {
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
    childStoreExpression: `import(${JSON.stringify(MODULE)}).then((m) => m.openSqliteStore({ dataDir: ${JSON.stringify(dataDir)} }))`,
    storedBlobCount: async () => (await countFiles(store.blobs.files.root, ['tmp'])) + inlineBlobCount(store.databasePath),
    stagingFileCount: () => countFiles(store.blobs.files.tmpDir),
    deliveryTransactions: () => store.commitStats.transactions,
  };
});
