/**
 * IMAP under a realistic load, end to end: a fresh Fulmar (the real `fulmar start`, through the
 * test harness), or any IMAP server given with --target (Dovecot, see bench/imap-dovecot.ts),
 * with the same messages (bench/imap-corpus.ts) in every mailbox. The phases, in this order:
 *
 *  select  SELECT of a mailbox of --big messages (default 100,000): the first one, then --select-runs more.
 *  idle    --idle connections (default 5,000) log in, SELECT a mailbox of --idle-messages and IDLE;
 *          the server's memory before and after, per connection (RSS, and PSS: Dovecot's processes
 *          share pages); then one message is delivered (SMTP for Fulmar, APPEND from another
 *          connection with --target) and the time until every session got its `* n EXISTS`.
 *          Fulmar is then restarted on the same data, so the mix starts from a fresh heap.
 *  mix     --clients C (default 20), one account each with --messages M (default 10,000) in INBOX,
 *          each doing one command at a time for --duration seconds (after --warmup), picked at
 *          random by the weights of --mix from: SELECT INBOX; UID FETCH 1:* (FLAGS); UID FETCH of
 *          one of the 100 newest messages (UID RFC822.SIZE FLAGS BODY.PEEK[]); UID STORE +/-FLAGS
 *          (\Seen or \Flagged) of a random message; UID SEARCH SUBJECT of a word found in 1-3% of
 *          subjects (some with CHARSET UTF-8 and an accented word); IDLE then DONE at once; APPEND
 *          of a new message to INBOX. Prints operations per second, latency per command (p50,
 *          p99, max), the server's peak RSS and CPU, and how busy the machine was.
 *  solo    each command of the mix alone, one client, --solo-duration seconds each: its latency
 *          without queueing behind others and the server CPU it costs.
 *
 *   node --import tsx bench/imap.ts                          # all phases, the defaults above
 *   node --import tsx bench/imap.ts --phases mix --messages 1000 --duration 20
 *   node --import tsx bench/imap.ts --phases solo --mix search=1 --cpu-prof   # where SEARCH spends
 *   node --import tsx bench/imap.ts --target 127.0.0.1:14350 --server-pid 1234   # an already filled server
 *
 * Options: --phases select,idle,mix,solo; --clients, --messages, --duration, --warmup, --mix
 * "select=1,flags=1,body=1,store=1,search=1,idle=1,append=1" (default: equal weights);
 * --big, --select-runs; --idle, --idle-messages, --idle-sources K (spread the idle connections
 * over source addresses 127.0.0.2..K+1), --notify-timeout seconds; --solo-duration; --distinct
 * (every account its own copy of each message instead of one stored message delivered to all);
 * --postgres (Fulmar on a fresh PostgreSQL database, FULMAR_BENCH_PG or
 * postgres://postgres@127.0.0.1:5432, dropped afterwards), --nodes N (with --postgres: N servers
 * on it, the mix clients spread over them, CPU summed; PostgreSQL's own CPU reported apart);
 * --cpu-prof (Fulmar's CPU profile, summarised at the end), --node-flags "..." (more flags for
 * the server's node), --keep.
 * With --target host:port: --user (printf-style, %d is the client number; default u%d@bench.test),
 * --pass, --idle-user, --big-user, --server-pid (the server's root process: memory and CPU are
 * summed over its process tree). Run `ulimit -n 20000` first for 5,000 idle connections.
 *
 * Fulmar's mailboxes are filled before it starts, through the store API in this process (blob
 * writer, the envelope and MIME structure as SMTP ingest caches them, commitDelivery with one
 * local delivery per account, like one SMTP message with many RCPT TO): the rows are those SMTP
 * would store. Settings: plain-text login allowed (plain port, no TLS, as Dovecot is measured),
 * no failure delay, connection limits above --idle.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { localPrefix } from '../src/delivery/local.js';
import { MessageMetaBuilder } from '../src/pipeline/message-meta.js';
import type { LocalDelivery, Store } from '../src/store/types.js';
import { FulmarProcess } from '../test/integration/harness.js';
import { freshDatabase } from '../test/integration/pg-database.js';
import { ImapClient, type Reply } from './imap-client.js';
import { dateOf, expectedSubjectMatches, flagsOf, messageOf, rng, SEARCH_TERMS } from './imap-corpus.js';
import { allProcessCpu, machineBusySeconds, mb, otherLoad, percentile, processTree, summarizeProfile, treeCpu, treeMemory, type TreeMemory } from './proc-stats.js';

const { values: args } = parseArgs({
  options: {
    phases: { type: 'string', default: 'select,idle,mix,solo' },
    'solo-duration': { type: 'string', default: '5' },
    clients: { type: 'string', default: '20' },
    messages: { type: 'string', default: '10000' },
    duration: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '5' },
    mix: { type: 'string', default: 'select=1,flags=1,body=1,store=1,search=1,idle=1,append=1' },
    big: { type: 'string', default: '100000' },
    'select-runs': { type: 'string', default: '20' },
    idle: { type: 'string', default: '5000' },
    'idle-messages': { type: 'string' },
    'idle-sources': { type: 'string', default: '4' },
    'notify-timeout': { type: 'string', default: '10' },
    target: { type: 'string' },
    user: { type: 'string', default: 'u%d@bench.test' },
    pass: { type: 'string', default: 'bench-password' },
    'idle-user': { type: 'string', default: 'idle@bench.test' },
    'big-user': { type: 'string', default: 'big@bench.test' },
    'server-pid': { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
    keep: { type: 'boolean', default: false },
    distinct: { type: 'boolean', default: false },
    postgres: { type: 'boolean', default: false },
    nodes: { type: 'string', default: '1' },
  },
});

const PHASES = new Set(args.phases.split(',').map((s) => s.trim()));
const CLIENTS = Number(args.clients);
const MESSAGES = Number(args.messages);
const DURATION = Number(args.duration) * 1000;
const WARMUP = Number(args.warmup) * 1000;
const BIG = PHASES.has('select') ? Number(args.big) : 0;
const SELECT_RUNS = Number(args['select-runs']);
const SOLO = Number(args['solo-duration']) * 1000;
const IDLE = PHASES.has('idle') ? Number(args.idle) : 0;
const IDLE_MESSAGES = Number(args['idle-messages'] ?? MESSAGES);
const IDLE_SOURCES = Math.max(1, Number(args['idle-sources']));
const NOTIFY_TIMEOUT = Number(args['notify-timeout']) * 1000;
const PASSWORD = args.pass;
const DISTINCT = args.distinct;
const DOMAIN = 'bench.test';
const userOf = (k: number): string => args.user.replace('%d', String(k));

const KINDS = ['select', 'flags', 'body', 'store', 'search', 'idle', 'append'] as const;
type Kind = (typeof KINDS)[number];
const LABELS: Record<Kind, string> = {
  select: 'SELECT INBOX',
  flags: 'UID FETCH 1:* (FLAGS)',
  body: 'UID FETCH (BODY.PEEK[]) recent',
  store: 'UID STORE +/-FLAGS',
  search: 'UID SEARCH SUBJECT',
  idle: 'IDLE + DONE',
  append: 'APPEND (~10 KB)',
};
const WEIGHTS: Record<Kind, number> = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;
for (const part of args.mix.split(',')) {
  const [k, w] = part.split('=');
  if (!KINDS.includes(k as Kind)) throw new Error(`--mix: unknown command ${k}; known: ${KINDS.join(', ')}`);
  WEIGHTS[k as Kind] = Number(w);
}
const WEIGHT_SUM = KINDS.reduce((a, k) => a + WEIGHTS[k], 0);

const ms = (x: number): string => (Number.isFinite(x) ? (x >= 100 ? `${x.toFixed(0)} ms` : `${x.toFixed(1)} ms`) : '-');
const kb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KB`;
const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));

/** Where the bench connects and what it measures. */
interface Server {
  host: string;
  port: number;
  /** More nodes of the same site (the mix clients are spread over `port` and these). */
  morePorts?: number[];
  morePids?: number[];
  /** Root of the server's process tree (memory and CPU are summed over it), if known. */
  pid: number | null;
  /** Delivers one message to the idle account; resolves when the server acknowledged it. */
  deliver(index: number): Promise<{ handedOver: number; acked: number }>;
  /**
   * Restarts the server on the same data (Fulmar: after the idle phase, so the mix starts from
   * a fresh heap rather than one 5,000 sessions grew); updates `pid`.
   */
  restart?(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Filling Fulmar: one commit per message, a local delivery to every account that holds it.

async function fill(store: Store, accounts: { users: number[]; idle: number | null; big: number | null }, addresses: Map<number, string>): Promise<void> {
  const holders: Array<[accountId: number, count: number, variant: number]> = [
    ...accounts.users.map((id, k) => [id, MESSAGES, k + 1] as [number, number, number]),
    ...(accounts.idle !== null ? [[accounts.idle, IDLE_MESSAGES, accounts.users.length + 1] as [number, number, number]] : []),
    ...(accounts.big !== null ? [[accounts.big, BIG, accounts.users.length + 2] as [number, number, number]] : []),
  ];
  const total = Math.max(0, ...holders.map(([, n]) => n));
  // Shared: one commit per message with a delivery to every account holding it (one SMTP message,
  // many RCPT TO). --distinct: one commit per account and message, each its own bytes.
  const jobs: Array<[i: number, holders: Array<[number, number, number]>]> = [];
  for (let i = 0; i < total; i++) {
    const mine = holders.filter(([, n]) => i < n);
    if (DISTINCT) for (const h of mine) jobs.push([i, [h]]);
    else jobs.push([i, mine]);
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const [i, to] = jobs[next++]!;
      const blob = DISTINCT ? messageOf(i, addresses.get(to[0]![0])!, to[0]![2]) : messageOf(i);
      const meta = new MessageMetaBuilder();
      meta.write(blob);
      const writer = await store.blobs.createWriter();
      await writer.write(blob);
      const staged = await writer.finish();
      const local: LocalDelivery[] = to.map(([accountId, count]) => {
        const address = addresses.get(accountId)!;
        return {
          accountId,
          mailbox: 'INBOX',
          prefix: localPrefix({ returnPath: 'sender@example.com', deliveredTo: address, rcptTo: address }),
          flags: flagsOf(i, count),
        };
      });
      await store.mail.commitDelivery({ blob: staged, meta: meta.finish(), internalDate: dateOf(i), local, outbound: null });
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
}

/** One message by SMTP (EHLO, MAIL, RCPT, DATA pipelined as far as allowed). */
function smtpDeliver(port: number, to: string, message: Buffer): Promise<{ handedOver: number; acked: number }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let buffered = '';
    let step = 0;
    let handedOver = 0;
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      buffered += d.toString('latin1');
      let nl: number;
      while ((nl = buffered.indexOf('\r\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 2);
        if (line[3] === '-') continue;
        const code = Number(line.slice(0, 3));
        const expect = [220, 250, 250, 250, 354, 250][step];
        if (code !== expect) {
          s.destroy();
          reject(new Error(`SMTP: ${line} (expected ${expect})`));
          return;
        }
        step++;
        if (step === 1) s.write('EHLO bench.example\r\n');
        else if (step === 2) s.write(`MAIL FROM:<sender@example.com>\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
        else if (step === 5) {
          s.write(Buffer.concat([message, Buffer.from('.\r\n')]));
          handedOver = performance.now();
        } else if (step === 6) {
          const acked = performance.now();
          s.end('QUIT\r\n');
          resolve({ handedOver, acked });
        }
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Phase: SELECT of a large mailbox.

async function selectPhase(server: Server, bigUser: string): Promise<boolean> {
  const c = await ImapClient.login(server.host, server.port, bigUser, PASSWORD);
  const times: number[] = [];
  const problems: string[] = [];
  for (let r = 0; r <= SELECT_RUNS; r++) {
    const t0 = performance.now();
    const reply = await c.command('SELECT INBOX');
    times.push(reply.at - t0);
    if (reply.status !== 'OK') problems.push(`SELECT: ${reply.status} ${reply.text}`);
    else if (c.exists !== BIG) problems.push(`SELECT: ${c.exists} EXISTS, ${BIG} expected`);
  }
  await c.command('LOGOUT').catch(() => null);
  c.close();
  const rest = Float64Array.from(times.slice(1)).sort();
  console.log(`\nSELECT of a ${BIG.toLocaleString('en')}-message mailbox (one client, idle server):`);
  console.log(
    `  first ${ms(times[0]!)}; then ${SELECT_RUNS} more: median ${ms(percentile(rest, 50))}, p99 ${ms(percentile(rest, 99))}, max ${ms(percentile(rest, 100))}` +
      `  [target: under 50 ms]`,
  );
  if (problems.length) console.log(`  PROBLEMS: ${problems.slice(0, 3).join('; ')}`);
  return problems.length === 0;
}

// ---------------------------------------------------------------------------------------------
// Phase: many idle IDLE sessions, then one new message.

function memoryText(m: TreeMemory): string {
  return `RSS ${mb(m.rss)}${m.pss !== null ? `, PSS ${mb(m.pss)}` : ''}${m.processes > 1 ? ` over ${m.processes} processes` : ''}`;
}

async function idlePhase(server: Server, idleUser: string): Promise<boolean> {
  console.log(`\n${IDLE.toLocaleString('en')} IDLE sessions on one ${IDLE_MESSAGES.toLocaleString('en')}-message INBOX (${idleUser}), from ${IDLE_SOURCES} source address(es):`);
  await sleep(1000);
  const before = server.pid !== null ? treeMemory(server.pid, true) : null;
  const clients: ImapClient[] = new Array(IDLE);
  const idleReplies: Array<Promise<Reply>> = new Array(IDLE);
  const failures: string[] = [];
  let next = 0;
  const t0 = performance.now();
  const opener = async (): Promise<void> => {
    while (next < IDLE) {
      const j = next++;
      const source = `127.0.0.${2 + (j % IDLE_SOURCES)}`;
      try {
        const c = await ImapClient.login(server.host, server.port, idleUser, PASSWORD, source);
        const r = await c.command('SELECT INBOX');
        if (r.status !== 'OK') throw new Error(`SELECT: ${r.status} ${r.text}`);
        idleReplies[j] = (await c.idle()).reply;
        clients[j] = c;
      } catch (e) {
        failures.push(`session ${j}: ${(e as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 50 }, opener));
  const openSeconds = (performance.now() - t0) / 1000;
  const open = clients.filter(Boolean);
  console.log(`  opened ${open.length} sessions (login, SELECT, IDLE) in ${openSeconds.toFixed(1)} s (${(open.length / openSeconds).toFixed(0)}/s), 50 at a time`);
  if (failures.length) console.log(`  ${failures.length} FAILED, first: ${failures.slice(0, 3).join('; ')}`);
  await sleep(3000);
  if (before && server.pid !== null) {
    const after = treeMemory(server.pid, true);
    const per = (x: number, y: number): string => kb((y - x) / Math.max(1, open.length));
    console.log(`  server memory before: ${memoryText(before)}`);
    console.log(`  server memory with the sessions: ${memoryText(after)}`);
    console.log(
      `  per idle session: ${per(before.rss, after.rss)} RSS${after.pss !== null ? `, ${per(before.pss!, after.pss)} PSS` : ''}  [target: 16 KB or less]`,
    );
  }

  // One new message; every session must see it.
  const base = open.map((c) => c.exists);
  const notifiedAt = new Float64Array(IDLE).fill(NaN);
  let notified = 0;
  let allNotified: () => void = () => {};
  const everyone = new Promise<void>((r) => (allNotified = r));
  clients.forEach((c, j) => {
    const start = c.exists;
    c.onExists = (n, at) => {
      if (n > start && Number.isNaN(notifiedAt[j]!)) {
        notifiedAt[j] = at;
        if (++notified === open.length) allNotified();
      }
    };
  });
  const { handedOver, acked } = await server.deliver(2_000_000);
  await Promise.race([everyone, sleep(NOTIFY_TIMEOUT + Math.max(0, handedOver - performance.now()))]);
  const delays = Float64Array.from([...notifiedAt].filter((x) => !Number.isNaN(x)).map((x) => x - handedOver)).sort();
  const within1s = delays.filter((d) => d <= 1000).length;
  console.log(
    `  one new message: ${server.pid !== null && args.target === undefined ? 'SMTP' : 'APPEND from another session'}, acknowledged ${ms(acked - handedOver)} after the hand-over; ` +
      `${delays.length} of ${open.length} sessions told (* n EXISTS) within ${NOTIFY_TIMEOUT / 1000} s, ${within1s} within 1 s  [target: all within 1 s]`,
  );
  console.log(
    `  time from hand-over to EXISTS: first ${ms(delays[0] ?? NaN)}, median ${ms(percentile(delays, 50))}, p99 ${ms(percentile(delays, 99))}, last ${ms(percentile(delays, 100))}` +
      ` (mailbox sizes before: ${Math.min(...base)}..${Math.max(...base)})`,
  );

  // End IDLE on a sample (each must answer DONE), then drop them all.
  const sample = open.slice(0, 20);
  for (const c of sample) c.done();
  let badDone = 0;
  for (let j = 0; j < sample.length; j++) {
    const r = await Promise.race([idleReplies[clients.indexOf(sample[j]!)]!, sleep(5000).then(() => null)]);
    if (!r || r.status !== 'OK') badDone++;
  }
  if (badDone) console.log(`  ${badDone} of ${sample.length} sessions did not answer DONE with OK`);
  for (const c of open) c.close();
  // Until the server let go of the sessions (Dovecot's 5,000 processes take a while to exit).
  await sleep(2000);
  for (let t = 0; before && server.pid !== null && t < 120 && treeMemory(server.pid).processes > before.processes + 2; t++) await sleep(500);
  return failures.length === 0 && delays.length === open.length && within1s === open.length && badDone === 0;
}

// ---------------------------------------------------------------------------------------------
// Phase: the mix.

interface MixResult {
  latencies: Record<Kind, number[]>;
  problems: string[];
}

function pickKind(r: () => number, weights: Record<Kind, number>): Kind {
  let x = r() * KINDS.reduce((a, k) => a + weights[k], 0);
  for (const k of KINDS) {
    x -= weights[k];
    if (x < 0) return k;
  }
  return KINDS[KINDS.length - 1]!;
}

async function mixClient(
  server: Server,
  k: number,
  recordFrom: number,
  until: number,
  expected: Map<string, number>,
  result: MixResult,
  weights: Record<Kind, number> = WEIGHTS,
): Promise<void> {
  const problem = (p: string): void => {
    if (result.problems.length < 200) result.problems.push(`client ${k}: ${p}`);
  };
  const ports = [server.port, ...(server.morePorts ?? [])];
  const c = await ImapClient.login(server.host, ports[k % ports.length]!, userOf(k), PASSWORD);
  let r = await c.command('SELECT INBOX');
  if (r.status !== 'OK') throw new Error(`SELECT: ${r.status} ${r.text}`);
  r = await c.command('UID SEARCH ALL', { collectSearch: true });
  const uids = r.search!.sort((a, b) => a - b);
  // More when earlier phases or runs appended (the solo phase reuses an account of the mix; a
  // reused Dovecot keeps its maildirs): those count as appended below.
  if (uids.length < MESSAGES) problem(`UID SEARCH ALL found ${uids.length} messages, at least ${MESSAGES} expected`);
  const rand = rng(1000 + k * 7 + uids.length);
  let appended = uids.length - MESSAGES;
  while (performance.now() < until) {
    const kind = pickKind(rand, weights);
    const t0 = performance.now();
    let reply: Reply;
    switch (kind) {
      case 'select':
        reply = await c.command('SELECT INBOX');
        if (reply.status === 'OK' && c.exists !== uids.length) problem(`SELECT: ${c.exists} EXISTS, ${uids.length} known`);
        break;
      case 'flags':
        reply = await c.command('UID FETCH 1:* (FLAGS)');
        if (reply.status === 'OK' && reply.fetches !== uids.length) problem(`FETCH FLAGS: ${reply.fetches} responses, ${uids.length} expected`);
        break;
      case 'body': {
        const uid = uids[uids.length - 1 - Math.floor(rand() * Math.min(100, uids.length))]!;
        reply = await c.command(`UID FETCH ${uid} (UID RFC822.SIZE FLAGS BODY.PEEK[])`);
        if (reply.status === 'OK' && (reply.fetches !== 1 || reply.literalBytes < 200)) problem(`FETCH BODY[] of ${uid}: ${reply.fetches} responses, ${reply.literalBytes} literal bytes`);
        break;
      }
      case 'store': {
        const uid = uids[Math.floor(rand() * uids.length)]!;
        const flag = rand() < 0.5 ? '\\Seen' : '\\Flagged';
        reply = await c.command(`UID STORE ${uid} ${rand() < 0.5 ? '+' : '-'}FLAGS (${flag})`);
        break;
      }
      case 'search': {
        const term = SEARCH_TERMS[Math.floor(rand() * SEARCH_TERMS.length)]!;
        const bytes = Buffer.from(term, 'utf8');
        reply = /^[\x20-\x7e]*$/.test(term)
          ? await c.command(`UID SEARCH SUBJECT "${term}"`, { collectSearch: true })
          : await c.command(`UID SEARCH CHARSET UTF-8 SUBJECT {${bytes.length}+}\r\n`, { collectSearch: true, literal: bytes });
        const found = reply.search?.length ?? 0;
        const want = expected.get(term)!;
        if (reply.status === 'OK' && (found < want || found > want + appended)) problem(`SEARCH SUBJECT ${term}: ${found} found, ${want} expected`);
        break;
      }
      case 'idle': {
        const { reply: done } = await c.idle();
        c.done();
        reply = await done;
        break;
      }
      case 'append': {
        const message = messageOf(1_000_000 + k * 100_000 + appended, userOf(k));
        reply = await c.command(`APPEND INBOX (\\Seen) {${message.length}+}\r\n`, { literal: message });
        const m = /\[APPENDUID \d+ (\d+)\]/i.exec(reply.text);
        if (reply.status === 'OK') {
          appended++;
          if (m) uids.push(Number(m[1]));
          else problem('APPEND without APPENDUID');
          if (c.exists !== uids.length) problem(`after APPEND: ${c.exists} EXISTS, ${uids.length} known`);
        }
        break;
      }
    }
    if (reply.status !== 'OK') problem(`${kind}: ${reply.status} ${reply.text}`);
    if (t0 >= recordFrom) result.latencies[kind].push(reply.at - t0);
  }
  await c.command('LOGOUT').catch(() => null);
  c.close();
}

async function mixPhase(server: Server): Promise<boolean> {
  const mixText = KINDS.filter((k) => WEIGHTS[k] > 0).map((k) => `${k} ${((100 * WEIGHTS[k]) / WEIGHT_SUM).toFixed(0)}%`).join(', ');
  console.log(`\nmix: ${CLIENTS} clients, one ${MESSAGES.toLocaleString('en')}-message INBOX each, ${DURATION / 1000} s measured after ${WARMUP / 1000} s of warm-up; ${mixText}`);
  const expected = expectedSubjectMatches(MESSAGES);
  const result: MixResult = { latencies: Object.fromEntries(KINDS.map((k) => [k, []])) as unknown as Record<Kind, number[]>, problems: [] };
  const start = performance.now();
  const recordFrom = start + WARMUP;
  const until = recordFrom + DURATION;
  let baseline: TreeMemory | null = null;
  let peak = 0;
  let cpuBefore = 0;
  let machineBefore = 0;
  let processesBefore = new Map<number, [string, number]>();
  const clientBefore = { v: process.cpuUsage() };
  const poll = setInterval(() => {
    if (server.pid === null) return;
    const m = treeMemory(server.pid);
    if (m.rss > peak) peak = m.rss;
  }, 200);
  const startMeasure = setTimeout(() => {
    if (server.pid !== null) {
      baseline = treeMemory(server.pid);
      cpuBefore = treeCpu(server.pid) + (server.morePids ?? []).reduce((s, p) => s + treeCpu(p), 0);
    }
    machineBefore = machineBusySeconds();
    processesBefore = allProcessCpu();
    clientBefore.v = process.cpuUsage();
  }, WARMUP);
  const settled = await Promise.allSettled(Array.from({ length: CLIENTS }, (_, k) => mixClient(server, k, recordFrom, until, expected, result)));
  clearTimeout(startMeasure);
  clearInterval(poll);
  // The measured window ends when the last command started before `until` finished.
  const elapsed = (performance.now() - recordFrom) / 1000;
  const serverCpu = server.pid !== null ? treeCpu(server.pid) + (server.morePids ?? []).reduce((s, p) => s + treeCpu(p), 0) - cpuBefore : NaN;
  const clientCpu = process.cpuUsage(clientBefore.v);
  const clientSeconds = (clientCpu.user + clientCpu.system) / 1e6;
  const machineBusy = machineBusySeconds() - machineBefore;
  const exclude = new Set<number>([process.pid]);
  if (server.pid !== null) for (const p of processTree(server.pid)) exclude.add(p);
  for (const more of server.morePids ?? []) for (const p of processTree(more)) exclude.add(p);
  const others = otherLoad(processesBefore, exclude);
  const end = server.pid !== null ? treeMemory(server.pid) : null;
  for (const s of settled) if (s.status === 'rejected') result.problems.push(`client failed: ${(s.reason as Error).message}`);

  const total = KINDS.reduce((a, k) => a + result.latencies[k].length, 0);
  console.log(`  ${total} operations in ${elapsed.toFixed(1)} s: ${(total / elapsed).toFixed(0)} operations/s  [target: twice Dovecot's on this mix]`);
  console.log(`  ${'command'.padEnd(32)} ${'count'.padStart(7)} ${'ops/s'.padStart(7)} ${'p50'.padStart(9)} ${'p99'.padStart(9)} ${'max'.padStart(9)}`);
  for (const k of KINDS) {
    const l = Float64Array.from(result.latencies[k]).sort();
    if (l.length === 0) continue;
    const note = k === 'search' ? '  [target: p99 under 100 ms]' : '';
    console.log(
      `  ${LABELS[k].padEnd(32)} ${String(l.length).padStart(7)} ${(l.length / elapsed).toFixed(1).padStart(7)} ${ms(percentile(l, 50)).padStart(9)} ${ms(percentile(l, 99)).padStart(9)} ${ms(percentile(l, 100)).padStart(9)}${note}`,
    );
  }
  if (server.pid !== null && baseline && end) {
    const b = baseline as TreeMemory;
    console.log(`  server memory: ${mb(b.rss)} RSS when measuring began, peak ${mb(Math.max(peak, end.rss))} (polled every 200 ms), ${mb(end.rss)} at the end${b.processes > 1 ? ` (summed over ${b.processes}-${end.processes} processes)` : ''}`);
    console.log(`  server CPU: ${serverCpu.toFixed(1)} s = ${((100 * serverCpu) / elapsed).toFixed(0)}% of one core, ${((1e3 * serverCpu) / Math.max(1, total)).toFixed(2)} ms per operation`);
  }
  console.log(
    `  machine: ${availableParallelism()} cores ${((100 * machineBusy) / elapsed / availableParallelism()).toFixed(0)}% busy; bench client ${clientSeconds.toFixed(1)} s CPU; ` +
      `${Math.max(0, machineBusy - clientSeconds - (Number.isNaN(serverCpu) ? 0 : serverCpu)).toFixed(1)} s CPU used by others` +
      (others.length ? ` (top: ${others.slice(0, 4).map(([n, s]) => `${n} ${s.toFixed(1)} s`).join(', ')})` : ''),
  );
  console.log(`  checks: ${result.problems.length === 0 ? 'every command OK; EXISTS, FETCH counts and SEARCH results as expected' : `${result.problems.length} PROBLEMS, first: ${result.problems.slice(0, 5).join('; ')}`}`);
  return result.problems.length === 0;
}

// ---------------------------------------------------------------------------------------------
// Phase: each command of the mix alone, one client, so its own latency and server CPU show.

async function soloPhase(server: Server): Promise<boolean> {
  console.log(`\neach command alone: one client (${userOf(0)}, ${MESSAGES.toLocaleString('en')} messages), ${SOLO / 1000} s each after 1 s of warm-up:`);
  console.log(`  ${'command'.padEnd(32)} ${'count'.padStart(7)} ${'ops/s'.padStart(7)} ${'p50'.padStart(9)} ${'p99'.padStart(9)} ${'max'.padStart(9)} ${'server CPU/op'.padStart(14)}`);
  const expected = expectedSubjectMatches(MESSAGES);
  let ok = true;
  for (const kind of KINDS) {
    if (WEIGHTS[kind] === 0) continue;
    const weights = Object.fromEntries(KINDS.map((k) => [k, k === kind ? 1 : 0])) as Record<Kind, number>;
    const result: MixResult = { latencies: Object.fromEntries(KINDS.map((k) => [k, []])) as unknown as Record<Kind, number[]>, problems: [] };
    const recordFrom = performance.now() + 1000;
    let cpuBefore = NaN;
    const startMeasure = setTimeout(() => (cpuBefore = server.pid !== null ? treeCpu(server.pid) : NaN), recordFrom - performance.now());
    await mixClient(server, 0, recordFrom, recordFrom + SOLO, expected, result, weights).catch((e: Error) => result.problems.push(`client failed: ${e.message}`));
    clearTimeout(startMeasure);
    const elapsed = (performance.now() - recordFrom) / 1000;
    const cpu = server.pid !== null ? treeCpu(server.pid) - cpuBefore : NaN;
    const l = Float64Array.from(result.latencies[kind]).sort();
    console.log(
      `  ${LABELS[kind].padEnd(32)} ${String(l.length).padStart(7)} ${(l.length / elapsed).toFixed(1).padStart(7)} ${ms(percentile(l, 50)).padStart(9)} ${ms(percentile(l, 99)).padStart(9)} ${ms(percentile(l, 100)).padStart(9)} ${ms((1000 * cpu) / Math.max(1, l.length)).padStart(14)}`,
    );
    if (result.problems.length) {
      console.log(`    ${result.problems.length} PROBLEMS, first: ${result.problems.slice(0, 3).join('; ')}`);
      ok = false;
    }
  }
  return ok;
}

// ---------------------------------------------------------------------------------------------

async function runPhases(server: Server): Promise<boolean> {
  let ok = true;
  if (PHASES.has('select') && BIG > 0) ok = (await selectPhase(server, args['big-user'])) && ok;
  if (PHASES.has('idle') && IDLE > 0) {
    ok = (await idlePhase(server, args['idle-user'])) && ok;
    if (server.restart && (PHASES.has('mix') || PHASES.has('solo'))) {
      await server.restart();
      console.log(`\n(server restarted on the same data after the idle phase: pid ${server.pid})`);
    }
  }
  if (PHASES.has('mix') && CLIENTS > 0) ok = (await mixPhase(server)) && ok;
  if (PHASES.has('solo')) ok = (await soloPhase(server)) && ok;
  return ok;
}

async function againstTarget(): Promise<boolean> {
  const [host, port] = args.target!.split(':');
  const server: Server = {
    host: host!,
    port: Number(port),
    pid: args['server-pid'] ? Number(args['server-pid']) : null,
    async deliver(index) {
      const c = await ImapClient.login(host!, Number(port), args['idle-user'], PASSWORD);
      const message = messageOf(index, args['idle-user']);
      const t = performance.now();
      const r = await c.command(`APPEND INBOX {${message.length}+}\r\n`, { literal: message });
      if (r.status !== 'OK') throw new Error(`APPEND: ${r.status} ${r.text}`);
      c.close();
      return { handedOver: t, acked: r.at };
    },
  };
  console.log(`imap bench against ${args.target}${server.pid !== null ? ` (server process tree from pid ${server.pid})` : ' (no --server-pid: no memory or CPU figures)'}`);
  return runPhases(server);
}

async function againstFulmar(): Promise<boolean> {
  const scratch = mkdtempSync(join(tmpdir(), 'fulmar-bench-out-'));
  const nodeFlags = args['node-flags'].split(/\s+/).filter(Boolean);
  if (args['cpu-prof']) nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${scratch}`);
  const limit = String(IDLE + CLIENTS + 100);
  const settings: Record<string, string> = {
    'auth.allow_plaintext': 'true',
    'auth.failure_delay': '0',
    'imap.max_connections': limit,
    'imap.max_connections_per_ip': limit,
  };
  const NODES = Number(args.nodes);
  if (NODES > 1 && !args.postgres) throw new Error('--nodes needs --postgres');
  const database = args.postgres ? freshDatabase('fulmar_bench', process.env['FULMAR_BENCH_PG'] ?? 'postgres://postgres@127.0.0.1:5432/postgres') : undefined;
  console.log(`imap bench against Fulmar${database ? ` on PostgreSQL (${NODES} node(s))` : ''}${nodeFlags.length ? ` (server flags: ${nodeFlags.join(' ')})` : ''}`);
  const f = await FulmarProcess.create({ settings, nodeFlags, ...(database ? { database: database.url } : {}) });
  const moreNodes: FulmarProcess[] = [];
  for (let n = 1; n < NODES; n++) moreNodes.push(await FulmarProcess.create({ nodeFlags, database: database!.url }));
  let ok = true;
  try {
    const tc = performance.now();
    f.cli('domain', 'add', DOMAIN);
    const users = PHASES.has('mix') || PHASES.has('solo') ? Array.from({ length: Math.max(1, CLIENTS) }, (_, k) => userOf(k)) : [];
    const addresses = [...users, ...(IDLE > 0 ? [args['idle-user']] : []), ...(BIG > 0 ? [args['big-user']] : [])];
    for (const a of addresses) f.cli('user', 'add', a, '--password', PASSWORD);
    const store = await f.openStore();
    const ids = new Map<string, number>();
    for (const a of addresses) ids.set(a, (await store.directory.getAccount(a))!.id);
    const byId = new Map([...ids].map(([a, id]) => [id, a]));
    const tf = performance.now();
    try {
      await fill(store, { users: users.map((u) => ids.get(u)!), idle: IDLE > 0 ? ids.get(args['idle-user'])! : null, big: BIG > 0 ? ids.get(args['big-user'])! : null }, byId);
    } finally {
      await store.close();
    }
    // What autovacuum would do in the minutes after such a bulk load: statistics and the
    // visibility map (index-only scans), so the mix does not measure a freshly loaded table.
    if (database) await database.vacuum();
    const rows = users.length * MESSAGES + (IDLE > 0 ? IDLE_MESSAGES : 0) + BIG;
    const distinct = DISTINCT ? rows : Math.max(users.length ? MESSAGES : 0, IDLE > 0 ? IDLE_MESSAGES : 0, BIG);
    console.log(
      `  ${addresses.length} accounts in ${((tf - tc) / 1000).toFixed(1)} s; filled ${rows.toLocaleString('en')} messages (${distinct.toLocaleString('en')} distinct) in ${((performance.now() - tf) / 1000).toFixed(1)} s (store API, group commit)`,
    );
    await f.start();
    for (const n of moreNodes) await n.start();
    const pid = f.child!.pid!;
    console.log(`  server pid ${[pid, ...moreNodes.map((n) => n.child!.pid!)].join(', ')}, data ${f.dataDir}`);
    await sleep(500);
    const server: Server = {
      host: '127.0.0.1',
      port: f.ports.imap,
      morePorts: moreNodes.map((n) => n.ports.imap),
      morePids: moreNodes.map((n) => n.child!.pid!),
      pid,
      deliver: (index) => smtpDeliver(f.ports.smtp, args['idle-user'], messageOf(index, args['idle-user'])),
      async restart() {
        await f.stop();
        await f.start();
        this.pid = f.child!.pid!;
        await sleep(500);
      },
    };
    ok = await runPhases(server);
    await f.stop();
    if (args['cpu-prof']) {
      // One profile per server life (two when the server restarted after the idle phase).
      const profiles = readdirSync(scratch).filter((n) => n.endsWith('.cpuprofile')).sort();
      for (const prof of profiles) {
        console.log(`\nCPU profile (one server life, startup included): ${join(scratch, prof)}`);
        console.log(summarizeProfile(join(scratch, prof)));
      }
      if (profiles.length === 0) console.log('  no CPU profile was written (did the server exit cleanly?)');
    }
  } finally {
    for (const n of moreNodes) {
      await n.kill();
      n.cleanup();
    }
    if (database && !args.keep) await database.drop().catch(() => {});
    await f.kill();
    if (args.keep) console.log(`  data folder kept: ${f.dataDir}`);
    else f.cleanup();
    if (!args['cpu-prof']) rmSync(scratch, { recursive: true, force: true });
  }
  return ok;
}

const ok = args.target ? await againstTarget() : await againstFulmar();
process.exitCode = ok ? 0 : 1;
