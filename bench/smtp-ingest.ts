/**
 * SMTP ingest throughput, end to end: a fresh Fulmar (the real `fulmar start`, through the test
 * harness) with one domain and some users; N connections each send M messages of S bytes to
 * local users, one after the other as an MTA does (the next MAIL only after the 250 of the
 * previous message; MAIL, RCPT and DATA are pipelined in one write, the body follows the 354).
 *
 *   node --import tsx bench/smtp-ingest.ts --connections 10 --messages 2000 --size 4KB
 *   node --import tsx bench/smtp-ingest.ts --connections 2 --messages 50 --size 5MB
 *
 * Options: --users U (default: one per connection), --cpu-prof (writes the server's CPU profile
 * and prints where its time went), --heap (sample the server's JS heap through diagnostic
 * reports on SIGUSR2; on by default for messages of 1 MB or more), --keep (keep the data folder),
 * --node-flags "..." (more flags for the server's node), --postgres (run on a fresh PostgreSQL
 * database, FULMAR_BENCH_PG or postgres://postgres@127.0.0.1:5432, dropped afterwards),
 * --nodes N (with --postgres: N servers on that database, connections spread over them; CPU is
 * summed over the nodes and PostgreSQL's processes are reported apart).
 *
 * Prints messages/s, MB/s, latency per message (MAIL FROM to the 250 after the dot) at
 * p50/p90/p99/max, the server's peak RSS (VmHWM, and VmRSS polled every 100 ms), its CPU time,
 * and checks that the store holds exactly the messages that got a 250.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FulmarProcess } from '../test/integration/harness.js';
import { freshDatabase } from '../test/integration/pg-database.js';
import { allProcessCpu, cpuSeconds, machineBusySeconds, mainThreadCpu, mb, parseSize, percentile, readStatus, summarizeProfile } from './proc-stats.js';

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '10' },
    messages: { type: 'string', default: '2000' },
    size: { type: 'string', default: '4KB' },
    users: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    heap: { type: 'boolean' },
    keep: { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
    postgres: { type: 'boolean', default: false },
    nodes: { type: 'string', default: '1' },
  },
});


const CONNECTIONS = Number(args.connections);
const MESSAGES = Number(args.messages);
const SIZE = parseSize(args.size);
const USERS = Number(args.users ?? CONNECTIONS);
const HEAP = args.heap ?? SIZE >= 1024 * 1024;
const DOMAIN = 'bench.test';
const MB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// The message: a unique header, then a body of 76-character lines (built once, shared), so the
// whole dot-stuffed transfer is `header + body + ".\r\n"` and costs the client almost nothing.

const LINE = 'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 abcdefghijkl\r\n';
function makeBody(bytes: number): Buffer {
  const lines = Math.max(1, Math.floor(bytes / LINE.length));
  const body = Buffer.alloc(lines * LINE.length + (bytes % LINE.length > 2 ? bytes % LINE.length : 0));
  for (let i = 0; i < lines; i++) body.write(LINE, i * LINE.length, 'latin1');
  const rest = body.length - lines * LINE.length;
  if (rest > 0) body.write(`${'z'.repeat(rest - 2)}\r\n`, lines * LINE.length, 'latin1');
  return body;
}
function header(conn: number, i: number, to: string): string {
  return (
    `From: Bench <bench@load.example>\r\nTo: <${to}>\r\nSubject: bench ${conn}-${i}\r\n` +
    `Message-ID: <${conn}.${i}.${process.pid}@load.example>\r\nDate: ${new Date().toUTCString()}\r\n\r\n`
  );
}
const HEADER_BYTES = header(0, 0, `u0@${DOMAIN}`).length;
const BODY = makeBody(Math.max(100, SIZE - HEADER_BYTES));
const END = Buffer.from('.\r\n');

// ---------------------------------------------------------------------------------------------
// The client: counts reply lines, keeps only the codes.

class Conn {
  private partial = '';
  private codes: number[] = [];
  private want = 0;
  private wake: ((codes: number[]) => void) | null = null;
  private failWith: ((e: Error) => void) | null = null;
  private failure: Error | null = null;

  constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new Conn(s));
      });
    });
  }

  private onData(d: Buffer): void {
    const text = this.partial + d.toString('latin1');
    let start = 0;
    let nl: number;
    while ((nl = text.indexOf('\r\n', start)) >= 0) {
      if (text.charCodeAt(start + 3) !== 45 /* '-' */) this.codes.push(Number(text.slice(start, start + 3)));
      start = nl + 2;
    }
    this.partial = text.slice(start);
    this.check();
  }

  private check(): void {
    if (this.wake && this.codes.length >= this.want) {
      const wake = this.wake;
      this.wake = this.failWith = null;
      wake(this.codes.splice(0, this.want));
    }
  }

  private fail(e: Error): void {
    this.failure ??= e;
    const f = this.failWith;
    this.wake = this.failWith = null;
    f?.(e);
  }

  /** The codes of the next `n` replies. */
  replies(n: number): Promise<number[]> {
    if (this.codes.length >= n) return Promise.resolve(this.codes.splice(0, n));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.want = n;
      this.wake = resolve;
      this.failWith = reject;
    });
  }

  /** Writes, waiting for 'drain' when the socket buffer is full (large messages). */
  async write(data: string | Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.socket.write(data)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          this.socket.off('close', onClose);
          resolve();
        };
        const onClose = (): void => {
          this.socket.off('drain', onDrain);
          reject(this.failure ?? new Error('connection closed'));
        };
        this.socket.once('drain', onDrain);
        this.socket.once('close', onClose);
      });
    }
  }
}

/** Writes a large buffer in slices so the socket never holds more than one slice. */
async function writeBody(c: Conn, body: Buffer): Promise<void> {
  const SLICE = 256 * 1024;
  for (let off = 0; off < body.length; off += SLICE) await c.write(body.subarray(off, off + SLICE));
}

interface ConnResult {
  acked: number[]; // per user index
  latencies: number[];
  failures: string[];
}

async function runConnection(port: number, index: number, start: Promise<void>): Promise<ConnResult> {
  const result: ConnResult = { acked: new Array<number>(USERS).fill(0), latencies: [], failures: [] };
  const c = await Conn.open(port);
  const [greeting] = await c.replies(1);
  if (greeting !== 220) throw new Error(`greeting ${greeting}`);
  await c.write(`EHLO load${index}.example\r\n`);
  if ((await c.replies(1))[0] !== 250) throw new Error('EHLO refused');
  await start;
  for (let i = 0; i < MESSAGES; i++) {
    const user = (index + i) % USERS;
    const to = `u${user}@${DOMAIN}`;
    const t0 = performance.now();
    await c.write(`MAIL FROM:<bench@load.example> SIZE=${HEADER_BYTES + BODY.length}\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
    const [mail, rcpt, data] = await c.replies(3);
    if (mail !== 250 || rcpt !== 250 || data !== 354) {
      result.failures.push(`MAIL/RCPT/DATA: ${mail} ${rcpt} ${data}`);
      if (data === 354) await c.write('.\r\n');
      continue;
    }
    const head = header(index, i, to);
    if (BODY.length <= 64 * 1024) {
      await c.write(Buffer.concat([Buffer.from(head, 'latin1'), BODY, END]));
    } else {
      await c.write(head);
      await writeBody(c, BODY);
      await c.write(END);
    }
    const [done] = await c.replies(1);
    if (done === 250) {
      result.latencies.push(performance.now() - t0);
      result.acked[user]!++;
    } else {
      result.failures.push(`after the dot: ${done}`);
    }
  }
  await c.write('QUIT\r\n');
  await c.replies(1).catch(() => undefined);
  c.socket.destroy();
  return result;
}

// ---------------------------------------------------------------------------------------------
// The server's memory and CPU, from /proc.

interface ProcSample {
  t: number;
  rss: number;
  hwm: number;
}
/** utime + stime of a process (or of one thread: `/proc/<pid>/task/<tid>`), in seconds. */
/** CPU seconds of the server's main thread (the event loop: tid = pid). */

/** Busy CPU seconds of the whole machine (all cores), from /proc/stat. */


interface HeapSample {
  t: number;
  used: number;
  total: number;
  rss: number;
}
/** Asks the server for a diagnostic report (node --report-on-signal) and reads its heap figures. */
async function heapReport(pid: number, dir: string, t0: number): Promise<HeapSample | null> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 20));
    const fresh = readdirSync(dir).find((n) => !before.has(n) && n.endsWith('.json'));
    if (!fresh) continue;
    try {
      const report = JSON.parse(readFileSync(join(dir, fresh), 'utf8')) as {
        javascriptHeap: { totalMemory: number; usedMemory: number };
        resourceUsage: { rss: number };
      };
      rmSync(join(dir, fresh));
      return {
        t: performance.now() - t0,
        used: report.javascriptHeap.usedMemory,
        total: report.javascriptHeap.totalMemory,
        rss: Number(report.resourceUsage.rss),
      };
    } catch {
      // still being written
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// CPU profile summary: self time per function and per file, from the .cpuprofile.


// ---------------------------------------------------------------------------------------------


async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'fulmar-bench-out-'));
  const nodeFlags = args['node-flags'].split(/\s+/).filter(Boolean);
  if (args['cpu-prof']) nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${scratch}`);
  if (HEAP) nodeFlags.push('--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${scratch}`, '--report-compact');
  const settings: Record<string, string> = {};
  if (SIZE > 20 * MB) settings['smtp.max_message_size'] = String(SIZE * 2);

  console.log(
    `smtp-ingest: ${CONNECTIONS} connections x ${MESSAGES} messages of ${SIZE >= MB ? mb(SIZE) : `${(SIZE / 1024).toFixed(1)} KB`} to ${USERS} users` +
      (nodeFlags.length ? ` (server flags: ${nodeFlags.join(' ')})` : ''),
  );
  const NODES = Number(args.nodes);
  if (NODES > 1 && !args.postgres) throw new Error('--nodes needs --postgres');
  const database = args.postgres ? freshDatabase('fulmar_bench', process.env['FULMAR_BENCH_PG'] ?? 'postgres://postgres@127.0.0.1:5432/postgres') : undefined;
  const f = await FulmarProcess.create({ settings, nodeFlags, ...(database ? { database: database.url } : {}) });
  const others: FulmarProcess[] = [];
  for (let n = 1; n < NODES; n++) others.push(await FulmarProcess.create({ nodeFlags, database: database!.url }));
  const nodes = [f, ...others];
  let ok = false;
  try {
    f.cli('domain', 'add', DOMAIN);
    for (let u = 0; u < USERS; u++) f.cli('user', 'add', `u${u}@${DOMAIN}`, '--password', 'bench-password');
    await Promise.all(nodes.map((n) => n.start()));
    const pid = f.child!.pid!;
    const pids = nodes.map((n) => n.child!.pid!);
    console.log(`  server pid ${pids.join(', ')}, data ${f.dataDir}${database ? `, database ${database.url}` : ''}`);
    await new Promise((r) => setTimeout(r, 300)); // let startup work settle
    const baseline = readStatus(pid)!;
    const sumOver = (read: (p: number) => number): number => pids.reduce((s, p) => s + read(p), 0);
    const cpuBefore = sumOver(cpuSeconds);
    const mainBefore = sumOver(mainThreadCpu);
    const clientCpuBefore = process.cpuUsage();
    const machineBefore = machineBusySeconds();
    const processesBefore = allProcessCpu();

    const samples: ProcSample[] = [];
    const heap: HeapSample[] = [];
    let releaseStart!: () => void;
    const start = new Promise<void>((r) => (releaseStart = r));
    const conns = Array.from({ length: CONNECTIONS }, (_, i) => runConnection(nodes[i % NODES]!.ports.smtp, i, start));
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    const poll = setInterval(() => {
      const s = readStatus(pid);
      if (s) samples.push({ t: performance.now() - t0, ...s });
    }, 100);
    let heapBusy = false;
    const heapPoll = HEAP
      ? setInterval(() => {
          if (heapBusy) return;
          heapBusy = true;
          void heapReport(pid, scratch, t0)
            .then((h) => h && heap.push(h))
            .finally(() => (heapBusy = false));
        }, 500)
      : null;
    if (HEAP) {
      const h = await heapReport(pid, scratch, t0);
      if (h) heap.push(h);
    }
    releaseStart();
    const results = await Promise.all(conns);
    const elapsed = (performance.now() - t0) / 1000;
    clearInterval(poll);
    if (heapPoll) clearInterval(heapPoll);
    while (heapBusy) await new Promise((r) => setTimeout(r, 20));
    const end = readStatus(pid)!;
    const serverCpu = sumOver(cpuSeconds) - cpuBefore;
    const mainCpu = sumOver(mainThreadCpu) - mainBefore;
    const clientCpu = process.cpuUsage(clientCpuBefore);
    const machineBusy = machineBusySeconds() - machineBefore;
    const processesAfter = allProcessCpu();
    const otherLoad = [...processesAfter]
      .filter(([p]) => !pids.includes(p) && p !== process.pid)
      .map(([p, [comm, secs]]) => [`${comm}[${p}]`, secs - (processesBefore.get(p)?.[1] ?? 0)] as const)
      .filter(([, secs]) => secs >= 0.3)
      .sort((a, b) => b[1] - a[1]);
    if (HEAP) {
      const h = await heapReport(pid, scratch, t0);
      if (h) heap.push(h);
    }

    const latencies = Float64Array.from(results.flatMap((r) => r.latencies)).sort();
    const acked = latencies.length;
    const failures = results.flatMap((r) => r.failures);
    const bytes = acked * (HEADER_BYTES + BODY.length);
    const peakPolled = Math.max(baseline.rss, ...samples.map((s) => s.rss));

    console.log(`  accepted:   ${acked} of ${CONNECTIONS * MESSAGES} in ${elapsed.toFixed(2)} s` + (failures.length ? `; ${failures.length} refused, first: ${failures[0]}` : ''));
    console.log(`  throughput: ${(acked / elapsed).toFixed(0)} messages/s, ${(bytes / MB / elapsed).toFixed(1)} MB/s`);
    console.log(
      `  latency:    p50 ${percentile(latencies, 50).toFixed(1)} ms, p90 ${percentile(latencies, 90).toFixed(1)} ms, ` +
        `p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${percentile(latencies, 100).toFixed(1)} ms (MAIL FROM to 250 after the dot)`,
    );
    const serverMs = Float64Array.from(
      nodes
        .flatMap((n) => n.events('smtp.accepted')).map((e) => Number(e.ms)).filter((ms) => Number.isFinite(ms)),
    ).sort();
    if (serverMs.length > 0) {
      console.log(
        `  server:     DATA to durable commit p50 ${percentile(serverMs, 50).toFixed(1)} ms, p99 ${percentile(serverMs, 99).toFixed(1)} ms ` +
          `(the "ms" of ${serverMs.length} smtp.accepted log events)`,
      );
    }
    console.log(
      `  server RSS: ${mb(baseline.rss)} before the load, peak ${mb(Math.max(end.hwm, peakPolled))} (VmHWM ${mb(end.hwm)}, ` +
        `polled ${mb(peakPolled)}), ${mb(end.rss)} after`,
    );
    if (samples.length >= 8) {
      const q = Math.floor(samples.length / 4);
      const quarters = [0, 1, 2, 3].map((k) => samples.slice(k * q, k === 3 ? samples.length : (k + 1) * q));
      console.log(`  RSS by quarter of the run (max): ${quarters.map((s) => mb(Math.max(...s.map((x) => x.rss)))).join(', ')}`);
    }
    if (heap.length > 0) {
      const used = heap.map((h) => h.used);
      console.log(
        `  server JS heap (${heap.length} diagnostic reports): used ${mb(Math.min(...used))} .. ${mb(Math.max(...used))}, ` +
          `first ${mb(used[0]!)}, last ${mb(used[used.length - 1]!)}; heap total max ${mb(Math.max(...heap.map((h) => h.total)))}`,
      );
      console.log(
        `  memory vs message size: peak RSS ${mb(Math.max(end.hwm, peakPolled))} for ${CONNECTIONS} concurrent messages of ${mb(HEADER_BYTES + BODY.length)} ` +
          `(growth over the baseline ${mb(Math.max(end.hwm, peakPolled) - baseline.rss)})`,
      );
    }
    console.log(
      `  CPU:        server ${serverCpu.toFixed(2)} s (${((100 * serverCpu) / elapsed).toFixed(0)}% of one core; ` +
        `event-loop thread ${mainCpu.toFixed(2)} s = ${((100 * mainCpu) / elapsed).toFixed(0)}%, other threads ${(serverCpu - mainCpu).toFixed(2)} s), ` +
        `client ${((clientCpu.user + clientCpu.system) / 1e6).toFixed(2)} s; ` +
        `${((1e6 * serverCpu) / Math.max(1, acked)).toFixed(0)} µs server CPU per message`,
    );
    const clientSeconds = (clientCpu.user + clientCpu.system) / 1e6;
    const others = Math.max(0, machineBusy - serverCpu - clientSeconds);
    console.log(
      `  machine:    ${availableParallelism()} cores, ${((100 * machineBusy) / elapsed / availableParallelism()).toFixed(0)}% busy during the run; ` +
        `${others.toFixed(1)} s of CPU outside server and client` +
        (otherLoad.length ? ` (top: ${otherLoad.slice(0, 4).map(([n, s]) => `${n} ${s.toFixed(1)} s`).join(', ')})` : ''),
    );

    if (database) {
      const pgCpu = otherLoad.filter(([n]) => n.startsWith('postgres')).reduce((s, [, secs]) => s + secs, 0);
      console.log(`  PostgreSQL: ${pgCpu.toFixed(2)} s CPU over its processes (${((1e6 * pgCpu) / Math.max(1, acked)).toFixed(0)} µs per message)`);
    }
    // What got 250 is in the store, no more, no less.
    const stored = new Map<string, number>();
    const store = await f.openStore();
    try {
      for (let u = 0; u < USERS; u++) {
        const account = await store.directory.getAccount(`u${u}@${DOMAIN}`);
        const inbox = account ? await store.mail.getMailbox(account.id, 'INBOX') : null;
        if (inbox) stored.set(account!.address, (await store.mail.mailboxCounts(inbox.id)).messages);
      }
    } finally {
      await store.close();
    }
    let mismatch = 0;
    let storedTotal = 0;
    for (let u = 0; u < USERS; u++) {
      const want = results.reduce((sum, r) => sum + r.acked[u]!, 0);
      const have = stored.get(`u${u}@${DOMAIN}`) ?? 0;
      storedTotal += have;
      if (want !== have) {
        mismatch++;
        console.log(`  MISMATCH u${u}@${DOMAIN}: ${want} acknowledged, ${have} stored`);
      }
    }
    console.log(`  store:      ${storedTotal} messages stored, ${acked} acknowledged: ${mismatch === 0 ? 'match' : 'MISMATCH'}`);

    for (const n of nodes) await n.stop();
    if (args['cpu-prof']) {
      const prof = readdirSync(scratch).find((n) => n.endsWith('.cpuprofile'));
      if (prof) {
        console.log(`  CPU profile: ${join(scratch, prof)}`);
        console.log(summarizeProfile(join(scratch, prof)));
      } else {
        console.log('  no CPU profile was written (did the server exit cleanly?)');
      }
    }
    ok = mismatch === 0 && failures.length === 0;
  } finally {
    for (const n of nodes) await n.kill();
    if (args.keep) console.log(`  data folder kept: ${f.dataDir}`);
    else for (const n of nodes) n.cleanup();
    if (database && !args.keep) await database.drop().catch(() => {});
    if (!args['cpu-prof']) rmSync(scratch, { recursive: true, force: true });
  }
  process.exitCode = ok ? 0 : 1;
}

await main();
