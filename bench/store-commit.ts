/**
 * Group-commit throughput of the embedded store: N concurrent 4 KB deliveries (default 2,000),
 * each to one local mailbox, on a fresh data folder. Prints deliveries per second for staging
 * the blobs (write + fsync), for commitDelivery alone, and end to end.
 *
 *   node --import tsx bench/store-commit.ts [count] [dataDir]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { StagedBlob } from '../src/store/types.js';

const count = Number(process.argv[2] ?? 2000);
const dataDir = process.argv[3] ?? (await mkdtemp(join(tmpdir(), 'fulmar-bench-')));
const store = await openSqliteStore({ dataDir });
await store.directory.addDomain('bench.example');
const accounts: number[] = [];
for (let i = 0; i < 20; i++) {
  accounts.push((await store.directory.createAccount({ address: `u${i}@bench.example`, passwordHash: 'x', quotaBytes: null }, [])).id);
}

function message(i: number): Buffer {
  const head = `Subject: bench ${i}\r\nMessage-ID: <${i}.${Date.now()}@bench.example>\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), Buffer.alloc(4096 - head.length, 'x')]);
}

const t0 = performance.now();
const blobs: StagedBlob[] = await Promise.all(
  Array.from({ length: count }, async (_, i) => {
    const writer = await store.blobs.createWriter();
    await writer.write(message(i));
    return writer.finish();
  }),
);
const t1 = performance.now();
const before = store.commitStats.transactions;
await Promise.all(
  blobs.map((blob, i) =>
    store.mail.commitDelivery({
      blob,
      internalDate: new Date(),
      local: [{ accountId: accounts[i % accounts.length]!, mailbox: 'INBOX', prefix: Buffer.from(`Delivered-To: u${i % 20}@bench.example\r\n`), flags: [] }],
      outbound: null,
    }),
  ),
);
const t2 = performance.now();
const transactions = store.commitStats.transactions - before;

// End to end: each delivery stages and commits on its own, all concurrently (as SMTP sessions do).
const t3 = performance.now();
await Promise.all(
  Array.from({ length: count }, async (_, i) => {
    const writer = await store.blobs.createWriter();
    await writer.write(message(count + i));
    const blob = await writer.finish();
    await store.mail.commitDelivery({
      blob,
      internalDate: new Date(),
      local: [{ accountId: accounts[i % accounts.length]!, mailbox: 'INBOX', prefix: Buffer.alloc(0), flags: [] }],
      outbound: null,
    });
  }),
);
const t4 = performance.now();
const e2eTransactions = store.commitStats.transactions - before - transactions;

const rate = (ms: number): string => `${Math.round((count / ms) * 1000).toLocaleString('en-US')}/s`;
console.log(`${count} concurrent 4 KB deliveries, data in ${dataDir}`);
console.log(`  stage blobs (write+fsync): ${(t1 - t0).toFixed(0)} ms  ${rate(t1 - t0)}`);
console.log(`  commitDelivery only:       ${(t2 - t1).toFixed(0)} ms  ${rate(t2 - t1)}  in ${transactions} transaction(s)`);
console.log(`  end to end (stage+commit): ${(t4 - t3).toFixed(0)} ms  ${rate(t4 - t3)}  in ${e2eTransactions} transaction(s)`);
console.log(`  largest batch: ${store.commitStats.largestBatch}`);
await store.close();
if (process.argv[3] === undefined) await rm(dataDir, { recursive: true, force: true });
