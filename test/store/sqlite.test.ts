// Runs the store contract on the embedded backend: SQLite + files, in a fresh temporary folder per test.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
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
    blobFileCount: () => countFiles(store.blobs.root, ['tmp']),
    stagingFileCount: () => countFiles(store.blobs.tmpDir),
    deliveryTransactions: () => store.commitStats.transactions,
  };
});
