/**
 * POP3 retrieval throughput, end to end: a fresh Fulmar (the real `fulmar start`, through the test
 * harness) with one mailbox per session, each filled with M messages of S bytes; then N
 * concurrent sessions each log in (USER/PASS on the plain port), LIST, UIDL, RETR every message
 * (a few RETRs pipelined, as RFC 2449 PIPELINING allows) and QUIT. Nothing is deleted, so
 * `--rounds R` repeats the sessions on the same mailboxes.
 *
 *   node --import tsx bench/pop3.ts --sessions 10 --messages 1000 --size 4KB
 *   node --import tsx bench/pop3.ts --sessions 2 --messages 20 --size 5MB --pipeline 1
 *
 * Options: --pipeline K (RETRs in flight per session, default 4), --rounds R (default 1),
 * --cpu-prof (writes the server's CPU profile and prints where its time went), --keep (keep the
 * data folder), --node-flags "..." (more flags for the server's node).
 *
 * The mailboxes are filled before the server starts, through the store API in this process
 * (blob writer + commitDelivery, the calls SMTP ingest makes, with the same per-recipient prefix):
 * much faster than SMTP and the stored rows are the same. Settings for the run: plain-text login
 * allowed (the plain port, no TLS cost: Dovecot's figure is measured on plain 110), no failure
 * delay.
 *
 * Prints messages/s and MB/s (whole sessions: connect to the QUIT reply), login latency (connect,
 * greeting, USER, PASS) and RETR latency (command written to the last byte of the reply, so it
 * includes the wait behind the RETRs pipelined before it) at p50/p99, the server's peak RSS
 * (VmRSS polled every 50 ms, and VmHWM) and CPU time; after the rounds, the latency of single logins
 * on the idle server (what the password hash costs alone). Checks that every session saw M messages in
 * LIST and UIDL (UIDLs unique), that every RETR returned exactly its LIST size once un-dot-stuffed,
 * and that the first and last message of each mailbox are byte for byte what was stored.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { localPrefix } from '../src/delivery/local.js';
import type { Store } from '../src/store/types.js';
import { FulmarProcess } from '../test/integration/harness.js';
import { allProcessCpu, cpuSeconds, machineBusySeconds, mainThreadCpu, mb, parseSize, percentile, readStatus, summarizeProfile } from './proc-stats.js';

const { values: args } = parseArgs({
  options: {
    sessions: { type: 'string', default: '10' },
    messages: { type: 'string', default: '1000' },
    size: { type: 'string', default: '4KB' },
    pipeline: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '1' },
    'cpu-prof': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
  },
});


const SESSIONS = Number(args.sessions);
const MESSAGES = Number(args.messages);
const SIZE = parseSize(args.size);
const PIPELINE = Math.max(1, Number(args.pipeline));
const ROUNDS = Math.max(1, Number(args.rounds));
const DOMAIN = 'bench.test';
const PASSWORD = 'bench-password';
const MB = 1024 * 1024;
const user = (s: number): string => `u${s}@${DOMAIN}`;

// ---------------------------------------------------------------------------------------------
// The messages: what SMTP would store (a Received line, a unique header, a body of 76-character
// lines with one line that starts with "." so the server's dot-stuffing is exercised) and the
// per-recipient prefix the ingest pipeline adds. S is the size a client sees (LIST, RETR).

const LINE = 'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 abcdefghijkl\r\n';
const DOT_LINE = '.a line that starts with a dot, sent as ".." on the wire\r\n';

function prefixOf(s: number): Buffer {
  return localPrefix({ returnPath: 'bench@load.example', deliveredTo: user(s), rcptTo: user(s) });
}
function headerOf(s: number, i: number): string {
  return (
    `Received: from load.example (load.example [127.0.0.1])\r\n\tby mx.fulmar.test (Fulmar) with ESMTP id b${s}x${i}\r\n\tfor <${user(s)}>; ${new Date(0).toUTCString()}\r\n` +
    `From: Bench <bench@load.example>\r\nTo: <${user(s)}>\r\nSubject: bench ${s}-${i}\r\n` +
    `Message-ID: <${s}.${i}.bench@load.example>\r\nDate: ${new Date(0).toUTCString()}\r\n\r\n`
  );
}
/** A body of `bytes` bytes (at least one line), CRLF line ends, the dot line in the middle. */
function makeBody(bytes: number): Buffer {
  bytes = Math.max(bytes, DOT_LINE.length + 2);
  const parts: string[] = [];
  let left = bytes - DOT_LINE.length;
  const lines = Math.floor(left / LINE.length);
  for (let i = 0; i < lines; i++) parts.push(LINE);
  left -= lines * LINE.length;
  parts.splice(Math.floor(lines / 2), 0, DOT_LINE);
  if (left >= 2) parts.push(`${'z'.repeat(left - 2)}\r\n`);
  else if (left === 1) parts[parts.length - 1] = `${parts[parts.length - 1]!.slice(0, -2)}z\r\n`;
  return Buffer.from(parts.join(''), 'latin1');
}
const BODY = makeBody(SIZE - prefixOf(0).length - headerOf(0, 0).length);
function blobOf(s: number, i: number): Buffer {
  return Buffer.concat([Buffer.from(headerOf(s, i), 'latin1'), BODY]);
}

/** Fills every mailbox through the store, many commits in flight (they group-commit), at most ~256 MB of bodies. */
async function fill(store: Store): Promise<Array<Map<number, number>>> {
  const uidToIndex: Array<Map<number, number>> = [];
  const jobs: Array<[number, number, number]> = [];
  for (let s = 0; s < SESSIONS; s++) {
    const account = await store.directory.getAccount(user(s));
    if (!account) throw new Error(`no account ${user(s)}`);
    uidToIndex.push(new Map());
    for (let i = 0; i < MESSAGES; i++) jobs.push([s, i, account.id]);
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const [s, i, accountId] = jobs[next++]!;
      const writer = await store.blobs.createWriter();
      await writer.write(blobOf(s, i));
      const blob = await writer.finish();
      const outcome = await store.mail.commitDelivery({
        blob,
        internalDate: new Date(),
        local: [{ accountId, mailbox: 'INBOX', prefix: prefixOf(s), flags: [] }],
        outbound: null,
      });
      uidToIndex[s]!.set(outcome.delivered[0]!.uid, i);
    }
  };
  const concurrency = Math.max(1, Math.min(256, Math.floor((256 * MB) / Math.max(1, SIZE))));
  await Promise.all(Array.from({ length: concurrency }, worker));
  return uidToIndex;
}

// ---------------------------------------------------------------------------------------------
// The client: raw sockets, replies parsed as they stream in. A multi-line reply is scanned for
// its terminator "\r\n.\r\n" and for dot-stuffed line starts "\r\n.." (each one byte the message
// does not have), with a 4-byte tail carried between chunks so neither is missed on a boundary.
// RETR bodies are only counted, not kept, unless asked for.

const CRLF = Buffer.from('\r\n');
const TERMINATOR = Buffer.from('\r\n.\r\n');
const STUFFED = Buffer.from('\r\n..');

interface Reply {
  status: string;
  ok: boolean;
  /** Message bytes in a multi-line reply, dot-stuffing undone (the size the server announced in LIST). */
  size: number;
  /** The un-stuffed body, for replies read with `keep`. */
  body: Buffer | null;
  /** performance.now() at the last byte. */
  at: number;
}

interface Expect {
  multi: boolean;
  keep: boolean;
  done: (r: Reply) => void;
}

class Pop3Client {
  private readonly queue: Expect[] = [];
  private head = 0;
  private statusPartial: Buffer | null = null;
  // The multi-line reply being read (body mode when `status` is not null).
  private status: string | null = null;
  private consumed = 0;
  private tail: Buffer = CRLF;
  private stuffed = 0;
  private kept: Buffer[] | null = null;
  private failure: Error | null = null;
  /** Commands to write once the current chunk has been parsed (one write for all of them). */
  private outgoing = '';
  private inData = false;

  constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static open(port: number): Promise<Pop3Client> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new Pop3Client(s));
      });
    });
  }

  /** Sends a command (nothing for the greeting) and calls `done` with its reply. */
  command(line: string | null, multi: boolean, done: (r: Reply) => void, keep = false): void {
    if (this.failure) throw this.failure;
    this.queue.push({ multi, keep, done });
    if (line === null) return;
    if (this.inData) this.outgoing += `${line}\r\n`;
    else this.socket.write(`${line}\r\n`);
  }

  /** One command at a time: its reply (rejects when the connection fails first). */
  reply(line: string | null, multi = false, keep = false): Promise<Reply> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.onFailure = reject;
      this.command(line, multi, (r) => {
        this.onFailure = null;
        resolve(r);
      }, keep);
    });
  }

  /** Called once if the connection fails or the server sends what cannot be parsed. */
  onFailure: ((e: Error) => void) | null = null;

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    this.onFailure?.(e);
  }

  private complete(status: string, size: number, body: Buffer | null): void {
    const e = this.queue[this.head]!;
    this.queue[this.head++] = undefined as unknown as Expect;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    e.done({ status, ok: status.startsWith('+OK'), size, body, at: performance.now() });
  }

  private onData(chunk: Buffer): void {
    this.inData = true;
    try {
      this.parse(chunk);
    } catch (e) {
      this.socket.destroy();
      this.fail(e as Error);
    }
    this.inData = false;
    if (this.outgoing !== '') {
      this.socket.write(this.outgoing);
      this.outgoing = '';
    }
  }

  private parse(c: Buffer): void {
    while (c.length > 0) {
      const e = this.queue[this.head];
      if (!e) throw new Error(`unexpected data from the server: ${JSON.stringify(c.toString('latin1', 0, 80))}`);
      if (this.status === null) {
        if (this.statusPartial) {
          c = Buffer.concat([this.statusPartial, c]);
          this.statusPartial = null;
        }
        const nl = c.indexOf(CRLF);
        if (nl < 0) {
          if (c.length > 4096) throw new Error('status line too long');
          this.statusPartial = c;
          return;
        }
        const status = c.toString('latin1', 0, nl);
        c = c.subarray(nl + 2);
        if (e.multi && status.startsWith('+OK')) {
          this.status = status;
          this.consumed = 0;
          this.tail = CRLF;
          this.stuffed = 0;
          this.kept = e.keep ? [] : null;
        } else {
          this.complete(status, 0, null);
        }
        continue;
      }
      c = this.body(c);
    }
  }

  /** Reads body bytes of the current multi-line reply; returns what follows its end, if it ended. */
  private body(c: Buffer): Buffer {
    // A terminator or stuffed dot that starts in the tail (the last bytes before this chunk) and
    // ends in this chunk; one that lies in the tail entirely was counted before.
    const tl = this.tail.length;
    const window = Buffer.concat([this.tail, c.subarray(0, 4)]);
    let end = window.indexOf(TERMINATOR);
    if (end >= tl) end = -1;
    for (
      let at = window.indexOf(STUFFED, Math.max(0, tl - STUFFED.length + 1));
      at >= 0 && at < tl && (end < 0 || at < end);
      at = window.indexOf(STUFFED, at + 1)
    ) {
      this.stuffed++;
    }
    if (end >= 0) {
      // The body ends at stream position consumed - tl + end (its last CRLF included).
      return this.finishBody(this.consumed - tl + end + 2, c, end + 5 - tl);
    }
    const t = c.indexOf(TERMINATOR);
    const scan = t < 0 ? c : c.subarray(0, t);
    for (let at = scan.indexOf(STUFFED); at >= 0; at = scan.indexOf(STUFFED, at + 1)) this.stuffed++;
    if (t >= 0) return this.finishBody(this.consumed + t + 2, c, t + 5);
    this.kept?.push(c);
    this.consumed += c.length;
    this.tail = c.length >= 4 ? c.subarray(c.length - 4) : Buffer.concat([this.tail, c]).subarray(-4);
    return c.subarray(c.length);
  }

  /** `bodyBytes`: raw body length (its last CRLF included); `next`: where the reply ends in `c`. */
  private finishBody(bodyBytes: number, c: Buffer, next: number): Buffer {
    const status = this.status!;
    let body: Buffer | null = null;
    if (this.kept) {
      this.kept.push(c.subarray(0, Math.max(0, bodyBytes - this.consumed)));
      // Raw body = the kept bytes, cut to bodyBytes (the terminator may have begun in the tail).
      const raw = Buffer.concat(this.kept).subarray(0, Math.max(0, bodyBytes));
      body = unstuff(raw);
    }
    this.status = null;
    this.kept = null;
    this.complete(status, Math.max(0, bodyBytes) - this.stuffed, body);
    return c.subarray(next);
  }
}

/** Undoes dot-stuffing of a raw multi-line body (which ends in CRLF, without the terminator). */
function unstuff(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  if (raw[0] === 0x2e && raw[1] === 0x2e) from = 1;
  for (let at = raw.indexOf(STUFFED, from); at >= 0; at = raw.indexOf(STUFFED, at + 3)) {
    parts.push(raw.subarray(from, at + 3));
    from = at + 4;
  }
  parts.push(raw.subarray(from));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// One session.

interface SessionResult {
  login: number;
  retrLatencies: number[];
  retrieved: number;
  bytes: number;
  problems: string[];
  start: number;
  retrStart: number;
  end: number;
}

async function runSession(port: number, s: number, uidToIndex: Map<number, number>): Promise<SessionResult> {
  const problems: string[] = [];
  const start = performance.now();
  const c = await Pop3Client.open(port);
  const greeting = await c.reply(null);
  if (!greeting.ok) throw new Error(`greeting: ${greeting.status}`);
  const u = await c.reply(`USER ${user(s)}`);
  if (!u.ok) throw new Error(`USER: ${u.status}`);
  const p = await c.reply(`PASS ${PASSWORD}`);
  if (!p.ok) throw new Error(`PASS: ${p.status}`);
  const login = performance.now() - start;

  const list = await c.reply('LIST', true, true);
  if (!list.ok) throw new Error(`LIST: ${list.status}`);
  const sizes = list.body!.toString('latin1').split('\r\n').filter(Boolean).map((l) => Number(l.split(' ')[1]));
  if (sizes.length !== MESSAGES) problems.push(`LIST shows ${sizes.length} messages, ${MESSAGES} expected`);
  const uidl = await c.reply('UIDL', true, true);
  if (!uidl.ok) throw new Error(`UIDL: ${uidl.status}`);
  const uidls = uidl.body!.toString('latin1').split('\r\n').filter(Boolean).map((l) => l.split(' ')[1]!);
  if (uidls.length !== MESSAGES) problems.push(`UIDL shows ${uidls.length} messages, ${MESSAGES} expected`);
  if (new Set(uidls).size !== uidls.length) problems.push('UIDL values are not unique');
  if (!uidls.every((x) => /^[\x21-\x7e]{1,70}$/.test(x))) problems.push('UIDL value with characters outside 0x21..0x7E or too long');
  // The stored UIDs in order: message n is the n-th smallest (the UIDL encodes the UID, see session.ts).
  const uids = [...uidToIndex.keys()].sort((a, b) => a - b);

  const retrStart = performance.now();
  const retrLatencies: number[] = new Array<number>(sizes.length);
  let retrieved = 0;
  let bytes = 0;
  await new Promise<void>((resolve, reject) => {
    c.onFailure = reject;
    let sent = 0;
    let received = 0;
    const send = (): void => {
      const n = ++sent;
      const t0 = performance.now();
      const keep = n === 1 || n === sizes.length;
      c.command(
        `RETR ${n}`,
        true,
        (r) => {
          received++;
          if (!r.ok) {
            problems.push(`RETR ${n}: ${r.status}`);
          } else {
            retrieved++;
            bytes += r.size;
            retrLatencies[n - 1] = r.at - t0;
            if (r.size !== sizes[n - 1]) problems.push(`RETR ${n}: ${r.size} bytes, LIST said ${sizes[n - 1]}`);
            if (!r.status.startsWith(`+OK ${sizes[n - 1]} `)) problems.push(`RETR ${n}: status "${r.status}"`);
            if (r.body) {
              const i = uidToIndex.get(uids[n - 1]!);
              const want = i === undefined ? null : Buffer.concat([prefixOf(s), blobOf(s, i)]);
              if (!want || !r.body.equals(want)) problems.push(`RETR ${n}: the bytes differ from the stored message`);
            }
          }
          if (sent < sizes.length) send();
          if (received === sizes.length) resolve();
        },
        keep,
      );
    };
    if (sizes.length === 0) resolve();
    for (let k = 0; k < PIPELINE && sent < sizes.length; k++) send();
  });
  c.onFailure = null;
  const bye = await c.reply('QUIT');
  if (!bye.ok) problems.push(`QUIT: ${bye.status}`);
  const end = performance.now();
  c.socket.destroy();
  return { login, retrLatencies: retrLatencies.filter((x) => x !== undefined), retrieved, bytes, problems, start, retrStart, end };
}

// ---------------------------------------------------------------------------------------------
// The server's memory and CPU, from /proc (as in smtp-ingest.ts).


// ---------------------------------------------------------------------------------------------
// CPU profile summary: self time per file and per function, and total (inclusive) time of the
// functions that take the most, from the .cpuprofile.


// ---------------------------------------------------------------------------------------------

const ms = (x: number): string => `${x.toFixed(1)} ms`;

async function round(f: FulmarProcess, pid: number, uidToIndex: Array<Map<number, number>>, n: number): Promise<boolean> {
  const baseline = readStatus(pid)!;
  const cpuBefore = cpuSeconds(pid);
  const mainBefore = mainThreadCpu(pid);
  const clientCpuBefore = process.cpuUsage();
  const machineBefore = machineBusySeconds();
  const processesBefore = allProcessCpu();
  let peakRss = baseline.rss;
  const poll = setInterval(() => {
    const st = readStatus(pid);
    if (st && st.rss > peakRss) peakRss = st.rss;
  }, 50);

  const t0 = performance.now();
  const settled = await Promise.allSettled(Array.from({ length: SESSIONS }, (_, s) => runSession(f.ports.pop3, s, uidToIndex[s]!)));
  const elapsed = (performance.now() - t0) / 1000;
  clearInterval(poll);
  const end = readStatus(pid)!;
  peakRss = Math.max(peakRss, end.rss);
  const serverCpu = cpuSeconds(pid) - cpuBefore;
  const mainCpu = mainThreadCpu(pid) - mainBefore;
  const clientCpu = process.cpuUsage(clientCpuBefore);
  const clientSeconds = (clientCpu.user + clientCpu.system) / 1e6;
  const machineBusy = machineBusySeconds() - machineBefore;
  const otherLoad = [...allProcessCpu()]
    .filter(([p]) => p !== pid && p !== process.pid)
    .map(([p, [comm, secs]]) => [`${comm}[${p}]`, secs - (processesBefore.get(p)?.[1] ?? 0)] as const)
    .filter(([, secs]) => secs >= 0.3)
    .sort((a, b) => b[1] - a[1]);

  const results = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = settled.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message ?? r.reason)] : []));
  const problems = [...failed.map((m) => `session failed: ${m}`), ...results.flatMap((r) => r.problems)];
  const retrieved = results.reduce((a, r) => a + r.retrieved, 0);
  const bytes = results.reduce((a, r) => a + r.bytes, 0);
  const logins = Float64Array.from(results.map((r) => r.login)).sort();
  const retr = Float64Array.from(results.flatMap((r) => r.retrLatencies)).sort();
  const retrPhase = results.length ? (Math.max(...results.map((r) => r.end)) - Math.min(...results.map((r) => r.retrStart))) / 1000 : NaN;

  console.log(`  round ${n}: ${SESSIONS} sessions, ${retrieved} of ${SESSIONS * MESSAGES} messages retrieved in ${elapsed.toFixed(2)} s`);
  console.log(
    `  throughput: ${(retrieved / elapsed).toFixed(0)} messages/s, ${(bytes / MB / elapsed).toFixed(1)} MB/s ` +
      `(connect to QUIT; from the first RETR: ${(retrieved / retrPhase).toFixed(0)} messages/s)`,
  );
  console.log(`  login:      p50 ${ms(percentile(logins, 50))}, p99 ${ms(percentile(logins, 99))}, max ${ms(percentile(logins, 100))} (connect, greeting, USER, PASS)`);
  console.log(
    `  RETR:       p50 ${ms(percentile(retr, 50))}, p99 ${ms(percentile(retr, 99))}, max ${ms(percentile(retr, 100))} ` +
      `(command written to last byte, ${PIPELINE} in flight per session)`,
  );
  console.log(`  server RSS: ${mb(baseline.rss)} before, peak ${mb(peakRss)} (polled every 50 ms; VmHWM ${mb(end.hwm)}), ${mb(end.rss)} after`);
  console.log(
    `  CPU:        server ${serverCpu.toFixed(2)} s (${((100 * serverCpu) / elapsed).toFixed(0)}% of one core; ` +
      `event-loop thread ${mainCpu.toFixed(2)} s = ${((1e6 * mainCpu) / Math.max(1, retrieved)).toFixed(0)} µs per message, ` +
      `other threads ${(serverCpu - mainCpu).toFixed(2)} s), client ${clientSeconds.toFixed(2)} s; ` +
      `${((1e6 * serverCpu) / Math.max(1, retrieved)).toFixed(0)} µs server CPU per message`,
  );
  const others = Math.max(0, machineBusy - serverCpu - clientSeconds);
  console.log(
    `  machine:    ${availableParallelism()} cores, ${((100 * machineBusy) / elapsed / availableParallelism()).toFixed(0)}% busy during the run; ` +
      `${others.toFixed(1)} s of CPU outside server and client` +
      (otherLoad.length ? ` (top: ${otherLoad.slice(0, 4).map(([name, secs]) => `${name} ${secs.toFixed(1)} s`).join(', ')})` : ''),
  );
  console.log(
    `  checks:     ${problems.length === 0 ? 'LIST and UIDL counts, every RETR size and the sampled bytes match' : `${problems.length} PROBLEMS, first: ${problems.slice(0, 5).join('; ')}`}`,
  );
  return problems.length === 0 && retrieved === SESSIONS * MESSAGES;
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'fulmar-bench-out-'));
  const nodeFlags = args['node-flags'].split(/\s+/).filter(Boolean);
  if (args['cpu-prof']) nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${scratch}`);
  const settings: Record<string, string> = {
    'auth.allow_plaintext': 'true',
    'auth.failure_delay': '0',
    'pop3.max_connections_per_ip': String(Math.max(20, SESSIONS)),
    'pop3.max_connections': String(Math.max(500, SESSIONS)),
  };
  const sizeText = SIZE >= MB ? mb(SIZE) : `${(SIZE / 1024).toFixed(1)} KB`;
  console.log(
    `pop3: ${SESSIONS} sessions x ${MESSAGES} messages of ${sizeText}, ${PIPELINE} RETR in flight, ${ROUNDS} round(s)` +
      (nodeFlags.length ? ` (server flags: ${nodeFlags.join(' ')})` : ''),
  );
  const f = await FulmarProcess.create({ settings, nodeFlags });
  let ok = true;
  try {
    f.cli('domain', 'add', DOMAIN);
    for (let s = 0; s < SESSIONS; s++) f.cli('user', 'add', user(s), '--password', PASSWORD);
    const tf = performance.now();
    const store = await f.openStore();
    let uidToIndex: Array<Map<number, number>>;
    try {
      uidToIndex = await fill(store);
    } finally {
      await store.close();
    }
    const fillSeconds = (performance.now() - tf) / 1000;
    console.log(`  filled:     ${SESSIONS * MESSAGES} messages of ${SIZE} bytes in ${fillSeconds.toFixed(1)} s (store API, group commit)`);
    await f.start();
    const pid = f.child!.pid!;
    console.log(`  server pid ${pid}, data ${f.dataDir}`);
    await new Promise((r) => setTimeout(r, 500)); // let startup work settle
    for (let n = 1; n <= ROUNDS; n++) ok = (await round(f, pid, uidToIndex, n)) && ok;
    // One login at a time on the idle server: what a single client waits (the password hash, the
    // maildrop listing), without the other sessions' load.
    const solo: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      const c = await Pop3Client.open(f.ports.pop3);
      await c.reply(null);
      await c.reply(`USER ${user(0)}`);
      const r = await c.reply(`PASS ${PASSWORD}`);
      if (!r.ok) throw new Error(`PASS: ${r.status}`);
      solo.push(performance.now() - t);
      await c.reply('QUIT');
      c.socket.destroy();
    }
    const soloSorted = Float64Array.from(solo).sort();
    console.log(`  login alone: median ${ms(percentile(soloSorted, 50))}, min ${ms(soloSorted[0]!)} (5 logins one after the other, idle server, after the rounds)`);
    await f.stop();
    if (args['cpu-prof']) {
      const prof = readdirSync(scratch).find((n) => n.endsWith('.cpuprofile'));
      if (prof) {
        console.log(`  CPU profile (the whole server life, startup included): ${join(scratch, prof)}`);
        console.log(summarizeProfile(join(scratch, prof)));
      } else {
        console.log('  no CPU profile was written (did the server exit cleanly?)');
      }
    }
  } finally {
    await f.kill();
    if (args.keep) console.log(`  data folder kept: ${f.dataDir}`);
    else f.cleanup();
    if (!args['cpu-prof']) rmSync(scratch, { recursive: true, force: true });
  }
  process.exitCode = ok ? 0 : 1;
}

await main();
