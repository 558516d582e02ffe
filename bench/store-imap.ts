/**
 * What an IMAP session asks of the embedded store on a large mailbox: a 100,000-message INBOX
 * (default), its rows interleaved with another account's as real deliveries leave them. Prints
 * the median and the slowest of several runs for the reads SELECT, STATUS, FETCH FLAGS and
 * CONDSTORE make, header SEARCH (searchHeaderField), and the time of the big writes (STORE 1:*,
 * COPY, MOVE, EXPUNGE). Messages carry the meta SMTP ingest caches (envelope, structure, search text).
 *
 *   node --import tsx bench/store-imap.ts [messages] [dataDir]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageMetaBuilder } from '../src/pipeline/message-meta.js';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { LocalDelivery } from '../src/store/types.js';

const count = Number(process.argv[2] ?? 100_000);
const given = process.argv[3];
const dataDir = given ?? (await mkdtemp(join(tmpdir(), 'fulmar-bench-imap-')));
const store = await openSqliteStore({ dataDir });
await store.directory.addDomain('bench.example');
const make = (address: string) =>
  store.directory.createAccount({ address, passwordHash: 'x', quotaBytes: null }, [{ name: 'Archive', specialUse: '\\Archive' }]);
const user = await make('big@bench.example');
const neighbour = await make('neighbour@bench.example');

function flagsOf(i: number): string[] {
  const flags: string[] = [];
  if (i % 3 !== 0) flags.push('\\Seen');
  if (i % 50 === 0) flags.push('\\Deleted');
  if (i % 10 === 0) flags.push('$Label1');
  return flags;
}

// Fill: batches of distinct small messages, each delivered to the user and to a neighbour.
const fillStart = performance.now();
const BATCH = 1000;
for (let done = 0; done < count; done += BATCH) {
  const commits = [];
  for (let i = done; i < Math.min(done + BATCH, count); i++) {
    const writer = await store.blobs.createWriter();
    const bytes = Buffer.from(`Subject: message ${i}\r\nFrom: Sender ${i % 100} <s${i % 100}@bench.example>\r\nMessage-ID: <${i}@bench.example>\r\n\r\n${'x'.repeat(2000)}\r\n`);
    await writer.write(bytes);
    const blob = await writer.finish();
    const meta = new MessageMetaBuilder();
    meta.write(bytes);
    const local: LocalDelivery[] = [
      { accountId: user.id, mailbox: 'INBOX', prefix: Buffer.from(`Delivered-To: big@bench.example\r\n`), flags: flagsOf(i) },
      { accountId: neighbour.id, mailbox: 'INBOX', prefix: Buffer.alloc(0), flags: [] },
    ];
    commits.push(store.mail.commitDelivery({ blob, meta: meta.finish(), internalDate: new Date(), local, outbound: null }));
  }
  await Promise.all(commits);
}
const fillMs = performance.now() - fillStart;
const inbox = (await store.mail.getMailbox(user.id, 'INBOX'))!;
const archive = (await store.mail.getMailbox(user.id, 'Archive'))!;

async function time<T>(label: string, runs: number, work: () => Promise<T>, note: (r: T) => string = () => ''): Promise<T> {
  let result = await work(); // warm the page cache and the statement cache
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    result = await work();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  const median = ms[Math.floor(ms.length / 2)]!;
  console.log(`${label.padEnd(44)} median ${median.toFixed(2).padStart(8)} ms   max ${ms[ms.length - 1]!.toFixed(2).padStart(8)} ms  ${note(result)}`);
  return result;
}

async function once<T>(label: string, work: () => Promise<T>, note: (r: T) => string = () => ''): Promise<T> {
  const t = performance.now();
  const result = await work();
  console.log(`${label.padEnd(44)} once   ${(performance.now() - t).toFixed(2).padStart(8)} ms  ${note(result)}`);
  return result;
}

console.log(`${count} messages in INBOX (+${count} in a neighbour's), filled in ${(fillMs / 1000).toFixed(1)} s; data in ${dataDir}`);
const uids = await time('listUids', 20, () => store.mail.listUids(inbox.id), (r) => `${r.length} uids`);
await time('mailboxCounts', 20, () => store.mail.mailboxCounts(inbox.id), (r) => JSON.stringify(r));
await time('getMailbox (with message count)', 20, () => store.mail.getMailbox(user.id, 'INBOX'), (r) => `${r?.messageCount}`);
await time('listMailboxes', 20, () => store.mail.listMailboxes(user.id), (r) => `${r.length} mailboxes`);
await time('listFlags 1:* (100k UIDs)', 10, () => store.mail.listFlags(inbox.id, uids), (r) => `${r.length} rows`);
const everyOther = uids.filter((_, i) => i % 2 === 0);
await time('listFlags every other UID', 10, () => store.mail.listFlags(inbox.id, everyOther), (r) => `${r.length} rows`);
await time('listFlags last 100', 20, () => store.mail.listFlags(inbox.id, uids.slice(-100)), (r) => `${r.length} rows`);
await time('listMessagesByUid last 1000 (no meta)', 10, () => store.mail.listMessagesByUid(inbox.id, uids.slice(-1000)), (r) => `${r.length} rows`);
await time('searchHeaderField SUBJECT (few matches)', 20, () => store.mail.searchHeaderField(inbox.id, 'subject', `message ${Math.floor(count / 3)}`), (r) => `${r.length} uids`);
await time('searchHeaderField SUBJECT (1 in 10)', 20, () => store.mail.searchHeaderField(inbox.id, 'subject', '7'), (r) => `${r.length} uids`);
await time('searchHeaderField SUBJECT "" (all)', 10, () => store.mail.searchHeaderField(inbox.id, 'subject', ''), (r) => `${r.length} uids`);
await time('searchHeaderField FROM (1 in 100)', 20, () => store.mail.searchHeaderField(inbox.id, 'from', 's42@'), (r) => `${r.length} uids`);
await time('searchHeaderField TO (no such field)', 20, () => store.mail.searchHeaderField(inbox.id, 'to', 'x'), (r) => `${r.length} uids`);
await time('listMessagesByUid 1:* (100k)', 3, () => store.mail.listMessagesByUid(inbox.id, uids), (r) => `${r.length} rows`);

const stored = await once('storeFlags 1:* +FLAGS \\Flagged', () => store.mail.storeFlags(inbox.id, { uids, mode: 'add', flags: ['\\Flagged'] }), (r) => `${r.updated.length} changed`);
const sinceAll = stored.updated[0]!.modSeq;
await once('storeFlags 100 UIDs -FLAGS \\Flagged', () => store.mail.storeFlags(inbox.id, { uids: uids.slice(500, 600), mode: 'remove', flags: ['\\Flagged'] }), (r) => `${r.updated.length} changed`);
await time('listFlags 1:* CHANGEDSINCE (100 changed)', 20, () => store.mail.listFlags(inbox.id, uids, sinceAll), (r) => `${r.length} rows`);
await time('listFlags 1:* CHANGEDSINCE 0 (all)', 5, () => store.mail.listFlags(inbox.id, uids, 0), (r) => `${r.length} rows`);
await time('listFlags 10 UIDs CHANGEDSINCE', 20, () => store.mail.listFlags(inbox.id, uids.slice(495, 505), sinceAll), (r) => `${r.length} rows`);

await once('copyMessages 10,000 to Archive', () => store.mail.copyMessages(inbox.id, uids.slice(0, 10_000), archive.id), (r) => `${r.mapping.length} copied`);
await once('moveMessages 10,000 to Archive', () => store.mail.moveMessages(inbox.id, uids.slice(10_000, 20_000), archive.id), (r) => `${r.mapping.length} moved`);
const deleted = (await store.mail.listFlags(inbox.id, uids)).filter((f) => f.flags.includes('\\Deleted')).map((f) => f.uid);
await once('expungeMessages (\\Deleted ones)', () => store.mail.expungeMessages(inbox.id, deleted), (r) => `${r.length} expunged`);
await time('listVanished since before the move', 10, () => store.mail.listVanished(inbox.id, sinceAll), (r) => `${r.length} uids`);
await time('mailboxCounts after', 10, () => store.mail.mailboxCounts(inbox.id), (r) => `${r.messages} messages, ${r.unseen} unseen`);

await store.close();
if (!given) await rm(dataDir, { recursive: true, force: true });
