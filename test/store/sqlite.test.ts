// Runs the store contract on the embedded backend: SQLite + files, in a fresh temporary folder per test.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import assert from 'node:assert/strict';
import { it } from 'node:test';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { DATABASE_FILE, openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
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

it('sqlite: migration 4 turns the subscribed column into subscriptions, keeping each mailbox\'s state', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'fulmar-store-'));
  try {
    // A data folder made by the release before the IMAP schema (version 3).
    const old = new Database(join(dataDir, DATABASE_FILE));
    old.exec('CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    for (let step = 1; step <= 3; step++) {
      old.exec(MIGRATIONS[step - 1]!);
      old.prepare('INSERT INTO schema_version VALUES (?, ?)').run(step, Date.now());
    }
    old.exec(`
      INSERT INTO domains (id, name, created_at) VALUES (1, 'example.org', 0);
      INSERT INTO accounts (id, address, local_part, domain_id, password_hash, created_at) VALUES (1, 'a@example.org', 'a', 1, 'h', 0);
      INSERT INTO mailboxes (account_id, name, uidvalidity, subscribed) VALUES (1, 'INBOX', 10, 1), (1, 'Junk', 11, 0), (1, 'Sent', 12, 1);
    `);
    old.close();
    const store = await openSqliteStore({ dataDir });
    try {
      assert.deepEqual(await store.mail.listSubscriptions(1), ['INBOX', 'Sent']);
      assert.deepEqual(
        (await store.mail.listMailboxes(1)).map((b) => [b.name, b.subscribed, b.uidValidity]),
        [
          ['INBOX', true, 10],
          ['Junk', false, 11],
          ['Sent', true, 12],
        ],
      );
    } finally {
      await store.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
