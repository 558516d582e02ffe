// Runs the store contract on the embedded backend: SQLite + files, in a fresh temporary folder per test.
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import assert from 'node:assert/strict';
import { it } from 'node:test';
import Database from 'better-sqlite3';
import { metaIndexer, MessageMetaBuilder } from '../../src/pipeline/message-meta.js';
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

it('sqlite: migration 6 indexes the messages already stored for header SEARCH, from cached meta or from their bytes', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'fulmar-store-'));
  try {
    // A data folder made by the release before the SEARCH index (version 5).
    const old = new Database(join(dataDir, DATABASE_FILE));
    old.exec('CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    for (let step = 1; step <= 5; step++) {
      old.exec(MIGRATIONS[step - 1]!);
      old.prepare('INSERT INTO schema_version VALUES (?, ?)').run(step, Date.now());
    }
    const bytes = {
      // Meta cached (envelope and structure, as schema 5 kept them), no search text.
      cached: 'Subject: =?UTF-8?Q?Caf=C3=A9?= Report\r\nFrom: =?UTF-8?B?w4Fubg==?= <Ann@Example.org>\r\nTo: bob@example.org\r\n\r\nhi\r\n',
      // No meta at all (stored before schema 4): parsed from its bytes.
      bare: 'Subject: Old mail\r\nFrom: Carol <carol@example.org>\r\nCc: dave@example.org, =?ISO-8859-1?Q?J=F6rg?= <j@example.org>\r\n\r\nold\r\n',
      // Its bytes are lost: left unindexed, and the open still succeeds.
      lost: 'Subject: lost\r\n\r\ngone\r\n',
    };
    const hash = (text: string): string => createHash('sha256').update(text).digest('hex');
    const builder = new MessageMetaBuilder();
    builder.write(Buffer.from(bytes.cached));
    const { envelope, structure } = builder.finish();
    old.exec(`
      INSERT INTO domains (id, name, created_at) VALUES (1, 'example.org', 0);
      INSERT INTO accounts (id, address, local_part, domain_id, password_hash, created_at) VALUES (1, 'a@example.org', 'a', 1, 'h', 0);
      INSERT INTO mailboxes (id, account_id, name, uidvalidity, uidnext) VALUES (1, 1, 'INBOX', 10, 1300), (2, 1, 'Archive', 11, 2);
    `);
    const blob = old.prepare<[string, number, number]>('INSERT INTO blob_refs (hash, size, refcount) VALUES (?, ?, ?)');
    const data = old.prepare<[string, Buffer]>('INSERT INTO blob_data (hash, data) VALUES (?, ?)');
    const insertMessage = old.prepare<[number, number, string, number, number]>(
      `INSERT INTO messages (mailbox_id, uid, modseq, blob_hash, blob_size, prefix, size, internal_date, flags)
       VALUES (?, ?, 1, ?, ?, X'', ?, 0, '[]')`,
    );
    const message = (mailbox: number, uid: number, blobHash: string, size: number) => insertMessage.run(mailbox, uid, blobHash, size, size);
    // More messages than one backfill batch: 1,200 of the cached one (UIDs 1..1200), then the others.
    blob.run(hash(bytes.cached), bytes.cached.length, 1200);
    data.run(hash(bytes.cached), Buffer.from(bytes.cached));
    old.prepare('INSERT INTO blob_meta (hash, envelope, structure) VALUES (?, ?, ?)').run(hash(bytes.cached), envelope, structure);
    for (let uid = 1; uid <= 1200; uid++) message(1, uid, hash(bytes.cached), bytes.cached.length);
    blob.run(hash(bytes.bare), bytes.bare.length, 2);
    data.run(hash(bytes.bare), Buffer.from(bytes.bare));
    message(1, 1201, hash(bytes.bare), bytes.bare.length);
    message(2, 1, hash(bytes.bare), bytes.bare.length);
    blob.run(hash(bytes.lost), bytes.lost.length, 1);
    message(1, 1202, hash(bytes.lost), bytes.lost.length);
    old.close();

    const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    // Opened without an indexer (what a store that cannot parse messages gets): nothing indexed yet.
    const plain = await openSqliteStore({ dataDir });
    try {
      assert.deepEqual(await plain.mail.searchHeaderField(1, 'subject', ''), []);
    } finally {
      await plain.close();
    }
    const store = await openSqliteStore({ dataDir, indexer: metaIndexer });
    try {
      const search = store.mail.searchHeaderField.bind(store.mail);
      assert.deepEqual(await search(1, 'subject', ''), range(1, 1201), 'all but the message whose bytes are lost');
      assert.deepEqual(await search(1, 'subject', 'café report'), range(1, 1200), 'encoded words decoded, lower-cased');
      assert.deepEqual(await search(1, 'from', 'ánn <ann@example.org>'), range(1, 1200));
      assert.deepEqual(await search(1, 'to', 'bob@'), range(1, 1200));
      assert.deepEqual(await search(1, 'cc', 'jörg <j@example.org>'), [1201]);
      assert.deepEqual(await search(2, 'from', 'carol <carol@'), [1]);
      assert.deepEqual(await search(2, 'bcc', ''), [], 'no Bcc field');

      const cached = await store.mail.getBlobMeta(hash(bytes.cached));
      assert.equal(cached?.envelope, envelope, 'the cached meta is kept');
      assert.equal(JSON.parse(cached!.search!).subject, 'café report');
      const bare = await store.mail.getBlobMeta(hash(bytes.bare));
      assert.ok(bare?.search && bare.envelope.includes('Old mail'), 'meta computed from the bytes is cached too');
      assert.equal(await store.mail.getBlobMeta(hash(bytes.lost)), null);
    } finally {
      await store.close();
    }
    // Opening again finds nothing new to do and keeps the rows.
    const again = await openSqliteStore({ dataDir, indexer: metaIndexer });
    try {
      assert.deepEqual(await again.mail.searchHeaderField(1, 'cc', 'dave'), [1201]);
      await again.mail.expungeMessages(1, [1202]);
      assert.equal((await again.mail.searchHeaderField(1, 'subject', '')).length, 1201);
    } finally {
      await again.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
