/**
 * The outbound queue's lease round trip in the embedded store: claimDue of a batch of messages
 * (default 100, 4 KB, two remote recipients each), then recordResults for each of them, on a
 * fresh data folder. Prints median and p90 over rounds for:
 *   - claimDue alone;
 *   - recordResults of the batch all at once (a worker whose deliveries end together: they share
 *     one transaction), all delivered (the messages leave the queue, blobs released) or all
 *     deferred (they stay);
 *   - recordResults one after another, each awaited (one durable commit each);
 *   - recordResults staggered: each message's results come at a random moment within 50 ms, as
 *     deliveries of a batch end apart (calls that arrive during a fsync share the next one);
 *   - claimDue and nextDue with a backlog of waiting messages that are not due yet, and of
 *     messages due but leased to another worker.
 *
 *   node --import tsx bench/store-queue.ts [batch] [rounds] [backlog]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { LeasedMessage, RecipientResult } from '../src/store/types.js';

const batch = Number(process.argv[2] ?? 100);
const rounds = Number(process.argv[3] ?? 15);
const backlog = Number(process.argv[4] ?? 20_000);
const LEASE = 10 * 60_000;
const dataDir = await mkdtemp(join(tmpdir(), 'fulmar-bench-'));
const store = await openSqliteStore({ dataDir });
let serial = 0;

function message(): Buffer {
  const head = `Subject: bench ${serial}\r\nMessage-ID: <${serial++}.${Date.now()}@bench.example>\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), Buffer.alloc(4096 - head.length, 'x')]);
}

async function enqueue(count: number): Promise<void> {
  await Promise.all(
    Array.from({ length: count }, async () => {
      const writer = await store.blobs.createWriter();
      await writer.write(message());
      const blob = await writer.finish();
      await store.mail.commitDelivery({
        blob,
        internalDate: new Date(),
        local: [],
        outbound: {
          mailFrom: 'sender@bench.example',
          recipients: [{ address: `a${serial}@remote.example` }, { address: `b${serial}@remote.example` }],
        },
      });
    }),
  );
}

function results(m: LeasedMessage, outcome: 'delivered' | 'deferred'): RecipientResult[] {
  return m.recipients.map((r) => ({
    recipientId: r.id,
    outcome,
    error: outcome === 'delivered' ? '250 2.0.0 ok' : '451 4.3.0 later',
    remoteMta: 'mx.remote.example',
    ...(outcome === 'deferred' ? { nextAttemptAt: new Date(Date.now() + 3_600_000) } : {}),
  }));
}

const timings = new Map<string, number[]>();
const pct = (list: number[], p: number): number => [...list].sort((a, b) => a - b)[Math.min(list.length - 1, Math.floor(list.length * p))]!;

function note(name: string, ms: number): void {
  const list = timings.get(name) ?? [];
  list.push(ms);
  timings.set(name, list);
}

type Mode = 'delivered' | 'deferred' | 'serial' | 'staggered';
const LABEL: Record<Mode, string> = {
  delivered: 'all at once, delivered',
  deferred: 'all at once, deferred',
  serial: 'one by one, delivered',
  staggered: 'staggered over 50 ms, delivered',
};

async function round(mode: Mode): Promise<void> {
  await enqueue(batch);
  const t0 = performance.now();
  const leased = await store.queue.claimDue('bench', new Date(), batch, LEASE);
  const t1 = performance.now();
  if (leased.length !== batch) throw new Error(`claimed ${leased.length} of ${batch}`);
  if (mode === 'serial') {
    for (const m of leased) await store.queue.recordResults(m.id, 'bench', results(m, 'delivered'));
  } else if (mode === 'staggered') {
    let last = 0;
    const done = await Promise.all(
      leased.map(async (m) => {
        const delay = Math.random() * 50;
        await new Promise((r) => setTimeout(r, delay));
        const at = performance.now();
        await store.queue.recordResults(m.id, 'bench', results(m, 'delivered'));
        return performance.now() - at;
      }),
    );
    note('recordResults staggered: latency of one call', pct(done, 0.5));
  } else {
    const recorded = await Promise.all(leased.map((m) => store.queue.recordResults(m.id, 'bench', results(m, mode))));
    if (!recorded.every(Boolean)) throw new Error('a result was not recorded');
  }
  const t2 = performance.now();
  note('claimDue', t1 - t0);
  note(`recordResults, ${LABEL[mode]}`, t2 - t1);
  note(`claimDue + recordResults, ${LABEL[mode]}`, t2 - t0);
}

for (let i = 0; i < rounds; i++) await round('delivered');
for (let i = 0; i < rounds; i++) await round('serial');
for (let i = 0; i < rounds; i++) await round('staggered');
for (let i = 0; i < rounds; i++) await round('deferred'); // leaves rounds * batch messages deferred an hour

// A backlog: messages waiting (deferred) and messages due but leased to a live worker elsewhere.
await enqueue(backlog);
const elsewhere = await store.queue.claimDue('elsewhere', new Date(), backlog, LEASE);
for (let i = 0; i < rounds; i++) {
  await enqueue(batch);
  const t0 = performance.now();
  const leased = await store.queue.claimDue('bench', new Date(), batch, LEASE);
  const t1 = performance.now();
  await store.queue.nextDue();
  const t2 = performance.now();
  if (leased.length !== batch) throw new Error(`claimed ${leased.length} of ${batch} behind the backlog`);
  await Promise.all(leased.map((m) => store.queue.recordResults(m.id, 'bench', results(m, 'delivered'))));
  note(`claimDue behind ${elsewhere.length} leased elsewhere + ${rounds * batch} deferred`, t1 - t0);
  note(`nextDue with the same backlog`, t2 - t1);
}

console.log(`outbound queue, batches of ${batch} messages (4 KB, 2 recipients each), ${rounds} rounds, data in ${dataDir}`);
for (const [name, list] of timings) {
  console.log(`  ${name.padEnd(64)} median ${pct(list, 0.5).toFixed(1).padStart(7)} ms   p90 ${pct(list, 0.9).toFixed(1).padStart(7)} ms`);
}
await store.close();
await rm(dataDir, { recursive: true, force: true });
