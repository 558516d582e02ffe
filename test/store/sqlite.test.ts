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

it('sqlite: migration 5 keeps queued mail claimable and gives accounts no extra sender addresses', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'fulmar-store-'));
  try {
    // A data folder made by the release before outbound delivery (version 4), with mail queued.
    const old = new Database(join(dataDir, DATABASE_FILE));
    old.exec('CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    for (let step = 1; step <= 4; step++) {
      old.exec(MIGRATIONS[step - 1]!);
      old.prepare('INSERT INTO schema_version VALUES (?, ?)').run(step, Date.now());
    }
    const hash = 'ab'.repeat(32);
    old.exec(`
      INSERT INTO domains (id, name, created_at) VALUES (1, 'example.org', 0);
      INSERT INTO accounts (id, address, local_part, domain_id, password_hash, created_at) VALUES (1, 'a@example.org', 'a', 1, 'h', 0);
      INSERT INTO blob_refs (hash, size, refcount) VALUES ('${hash}', 5, 1);
      INSERT INTO blob_data (hash, data) VALUES ('${hash}', X'6869210D0A');
      INSERT INTO queue_messages (id, blob_hash, size, mail_from, created_at) VALUES (7, '${hash}', 5, 'a@example.org', 1000);
      INSERT INTO queue_recipients (id, queue_id, address, status, attempts, next_attempt_at, last_error)
        VALUES (1, 7, 'x@remote.example', 'deferred', 2, 2000, '451 later'), (2, 7, 'y@remote.example', 'delivered', 1, 1500, NULL);
    `);
    old.close();
    const store = await openSqliteStore({ dataDir });
    try {
      assert.deepEqual((await store.directory.getAccount('a@example.org'))?.sendAs, []);
      assert.equal(await store.directory.getDkimKey('example.org'), null);
      const queued = await store.queue.getQueued(7);
      assert.equal(queued?.held, false);
      assert.deepEqual(
        queued?.recipients.map((r) => [r.status, r.attempts, r.lastError, r.remoteMta, r.delayWarned]),
        [
          ['deferred', 2, '451 later', null, false],
          ['delivered', 1, null, null, false],
        ],
      );
      assert.equal((await store.queue.nextDue())?.getTime(), 2000);
      const [leased] = await store.queue.claimDue('w', new Date(3000), 10, 60_000);
      assert.deepEqual(leased?.recipients.map((r) => r.id), [1]);
      assert.equal(await store.queue.recordResults(7, 'w', [{ recipientId: 1, outcome: 'delivered', error: null }]), true);
      assert.deepEqual(await store.queue.listQueued(), []);
      assert.equal(await store.blobs.exists(hash), false, 'the queue held the only reference');
      assert.equal(inlineBlobCount(store.databasePath), 0);
    } finally {
      await store.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
