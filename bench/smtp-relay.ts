/**
 * Outbound relay throughput and hand-off latency, end to end: a fresh Fulmar (the real `fulmar
 * start`, through the test harness) takes mail on the submission port (AUTH PLAIN; plain text by
 * default, `--tls` for STARTTLS) for remote recipients, queues it durably, and its queue worker
 * delivers it to a receiving sink written here in Node (net, no TLS, no DSN: a load tool, not a
 * test peer) that counts messages and notes when each arrived.
 *
 *   node --import tsx bench/smtp-relay.ts
 *   node --import tsx bench/smtp-relay.ts --connections 10 --messages 300 --size 4KB --solo 100
 *   node --import tsx bench/smtp-relay.ts --route mx --tls --cpu-prof
 *
 * Route: `smarthost` (default: delivery.smarthost = the sink, TLS none, no AUTH) or `mx` (a DNS
 * server on loopback in this process answers MX and A for the recipients' domain; dns.servers
 * and delivery.remote_port point there: one MX and one A lookup per message).
 *
 * Phases
 * - solo (empty queue): one message at a time on one connection, the next only after the sink
 *   got the previous one: the hand-off latency from our 250 to the sink's 250.
 * - load: N connections each send M messages, one after the other (MAIL, RCPT and DATA
 *   pipelined, the body after the 354), as fast as the server answers: messages/s accepted and
 *   delivered (first MAIL to the sink's last 250), and the hand-off latency under load.
 *
 * Hand-off: from the moment our 250 reached the client to the moment the sink wrote its 250.
 * It can be negative: the queue worker may take a message as soon as its commit is visible in
 * the database, while the 250 waits for the WAL fsync, so the sink can have it first.
 *
 * Also prints the server's CPU (process and event-loop thread) and RSS, the machine's load,
 * its log volume and how many distinct queue ids the run used, and checks that the sink got
 * every accepted message exactly once and the queue is empty (exit status 1 otherwise).
 * Options: --concurrency (delivery.concurrency; default: the server's default), --cpu-prof
 * (the server's CPU profile, summarised), --keep (keep the data folder), --node-flags "...".
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { FulmarProcess } from '../test/integration/harness.js';
import { TestDnsServer } from '../test/integration/dns-server.js';
import { allProcessCpu, cpuSeconds, machineBusySeconds, mainThreadCpu, mb, otherLoad, parseSize, percentile, readStatus, summarizeProfile } from './proc-stats.js';

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '10' },
    messages: { type: 'string', default: '300' },
    size: { type: 'string', default: '4KB' },
    solo: { type: 'string', default: '100' },
    route: { type: 'string', default: 'smarthost' },
    tls: { type: 'boolean', default: false },
    concurrency: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
  },
});

const CONNECTIONS = Number(args.connections);
const MESSAGES = Number(args.messages);
const SIZE = parseSize(args.size);
const SOLO = Number(args.solo);
const ROUTE = args.route;
if (ROUTE !== 'smarthost' && ROUTE !== 'mx') throw new Error('--route smarthost|mx');
const DOMAIN = 'bench.test';
const REMOTE = 'sink.example';
const PASSWORD = 'bench-password';

// ---------------------------------------------------------------------------------------------
// The sink: SMTP just enough for our client (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; pipelined
// commands answered together). Each message carries `X-Bench-Seq: N`; its arrival time is noted
// when the sink writes its 250.

class Sink {
  readonly arrivals = new Map<number, number>();
  /** When the session that brought message N connected (our server's connect to the sink). */
  readonly connected = new Map<number, number>();
  duplicates = 0;
  unnumbered = 0;
  sessions = 0;
  private waiters = new Map<number, () => void>();
  private server: Server | null = null;
  port = 0;

  async start(): Promise<void> {
    const server = createServer({ noDelay: true }, (socket) => this.session(socket));
    this.server = server;
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    this.port = (server.address() as { port: number }).port;
  }

  /** Resolves when message `seq` arrived. */
  arrived(seq: number): Promise<void> {
    if (this.arrivals.has(seq)) return Promise.resolve();
    return new Promise((res) => this.waiters.set(seq, res));
  }

  private note(data: Buffer, start: number, end: number, connectedAt: number): void {
    const at = data.indexOf('X-Bench-Seq: ', start, 'latin1');
    if (at < 0 || at > end) {
      this.unnumbered++;
      return;
    }
    let seq = 0;
    for (let i = at + 13; i < end; i++) {
      const c = data[i]!;
      if (c < 48 || c > 57) break;
      seq = seq * 10 + (c - 48);
    }
    if (this.arrivals.has(seq)) {
      this.duplicates++;
      return;
    }
    this.arrivals.set(seq, performance.now());
    this.connected.set(seq, connectedAt);
    const w = this.waiters.get(seq);
    if (w) {
      this.waiters.delete(seq);
      w();
    }
  }

  private session(socket: Socket): void {
    this.sessions++;
    const connectedAt = performance.now();
    socket.on('error', () => {});
    let buf: Buffer = Buffer.alloc(0);
    let inData = false;
    socket.write('220 sink.example ESMTP bench sink\r\n');
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let pos = 0;
      let out = '';
      for (;;) {
        if (inData) {
          // The terminator: CRLF . CRLF (the data starts right after the 354, so a leading
          // ".\r\n" would be an empty message; our messages are never empty).
          const end = buf.indexOf('\r\n.\r\n', pos, 'latin1');
          if (end < 0) break;
          this.note(buf, pos, end, connectedAt);
          out += '250 2.0.0 Ok: queued\r\n';
          pos = end + 5;
          inData = false;
          continue;
        }
        const nl = buf.indexOf(10, pos);
        if (nl < 0) break;
        const verb = buf.toString('latin1', pos, Math.min(pos + 4, nl)).toUpperCase();
        pos = nl + 1;
        if (verb === 'EHLO') out += '250-sink.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n';
        else if (verb === 'HELO') out += '250 sink.example\r\n';
        else if (verb === 'MAIL' || verb === 'RCPT' || verb === 'RSET' || verb === 'NOOP') out += '250 2.0.0 Ok\r\n';
        else if (verb === 'DATA') {
          out += '354 End data with <CR><LF>.<CR><LF>\r\n';
          inData = true;
        } else if (verb === 'QUIT') {
          socket.end('221 2.0.0 Bye\r\n');
          return;
        } else out += '502 5.5.2 Error: command not recognized\r\n';
      }
      buf = pos >= buf.length ? Buffer.alloc(0) : buf.subarray(pos);
      if (out !== '') socket.write(out);
    });
  }

  async stop(): Promise<void> {
    await new Promise<void>((res) => (this.server ? this.server.close(() => res()) : res()));
  }
}

// ---------------------------------------------------------------------------------------------
// The submission client: reply codes only (and the 250's arrival time).

const LINE = 'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 abcdefghijkl\r\n';
function header(seq: number, from: string, to: string): string {
  return (
    `From: <${from}>\r\nTo: <${to}>\r\nSubject: relay bench ${seq}\r\nX-Bench-Seq: ${seq}\r\n` +
    `Message-ID: <${seq}.${process.pid}@${DOMAIN}>\r\nDate: ${new Date().toUTCString()}\r\n\r\n`
  );
}
const HEADER_BYTES = header(100000, `u0@${DOMAIN}`, `r0@${REMOTE}`).length;
const BODY = (() => {
  const bytes = Math.max(100, SIZE - HEADER_BYTES);
  const lines = Math.max(1, Math.floor(bytes / LINE.length));
  return Buffer.from(LINE.repeat(lines), 'latin1');
})();
const END = Buffer.from('.\r\n');

class Client {
  private partial = '';
  private replies: Array<{ code: number; text: string }> = [];
  private want = 0;
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  private failWith: ((e: Error) => void) | null = null;

  private constructor(private socket: Socket) {
    this.attach(socket);
  }

  private attach(socket: Socket): void {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static async open(port: number, user: string, tls: boolean): Promise<Client> {
    const socket = await new Promise<Socket>((res, rej) => {
      const s = connect(port, '127.0.0.1', () => res(s));
      s.once('error', rej);
    });
    let c = new Client(socket);
    await c.expect(1, 220);
    c.write('EHLO bench.client\r\n');
    await c.expect(1, 250);
    if (tls) {
      c.write('STARTTLS\r\n');
      await c.expect(1, 220);
      socket.removeAllListeners('data');
      socket.removeAllListeners('close');
      socket.removeAllListeners('error');
      const secure = await new Promise<Socket>((res, rej) => {
        const s = tlsConnect({ socket, rejectUnauthorized: false, servername: 'localhost' }, () => res(s));
        s.once('error', rej);
      });
      c = new Client(secure);
      c.write('EHLO bench.client\r\n');
      await c.expect(1, 250);
    }
    c.write(`AUTH PLAIN ${Buffer.from(`\0${user}\0${PASSWORD}`).toString('base64')}\r\n`);
    await c.expect(1, 235);
    return c;
  }

  private onData(d: Buffer): void {
    const text = this.partial + d.toString('latin1');
    let start = 0;
    let nl: number;
    while ((nl = text.indexOf('\r\n', start)) >= 0) {
      if (text.charCodeAt(start + 3) !== 45 /* '-' */) this.replies.push({ code: Number(text.slice(start, start + 3)), text: text.slice(start, nl) });
      start = nl + 2;
    }
    this.partial = text.slice(start);
    if (this.wake && this.replies.length >= this.want) {
      const w = this.wake;
      this.wake = this.failWith = null;
      w();
    }
  }

  private fail(e: Error): void {
    this.failure ??= e;
    const f = this.failWith;
    this.wake = this.failWith = null;
    f?.(e);
  }

  async next(n: number): Promise<Array<{ code: number; text: string }>> {
    if (this.replies.length < n) {
      if (this.failure) throw this.failure;
      await new Promise<void>((res, rej) => {
        this.want = n;
        this.wake = res;
        this.failWith = rej;
      });
    }
    return this.replies.splice(0, n);
  }

  async expect(n: number, code: number): Promise<void> {
    for (const r of await this.next(n)) if (r.code !== code) throw new Error(`expected ${code}, got ${r.text}`);
  }

  write(data: string | Buffer): void {
    if (this.failure) throw this.failure;
    this.socket.write(data);
  }

  /** One message; resolves with the time our 250 arrived, or throws with the refusal. */
  async send(seq: number, from: string, to: string): Promise<number> {
    this.write(`MAIL FROM:<${from}> SIZE=${HEADER_BYTES + BODY.length}\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
    const [mail, rcpt, data] = await this.next(3);
    if (mail!.code !== 250 || rcpt!.code !== 250 || data!.code !== 354) {
      if (data!.code === 354) this.write(END);
      throw new Error(`MAIL/RCPT/DATA: ${mail!.text} | ${rcpt!.text} | ${data!.text}`);
    }
    this.write(Buffer.concat([Buffer.from(header(seq, from, to), 'latin1'), BODY, END]));
    const [done] = await this.next(1);
    const at = performance.now();
    if (done!.code !== 250) throw new Error(`after the dot: ${done!.text}`);
    return at;
  }

  async quit(): Promise<void> {
    this.write('QUIT\r\n');
    await this.next(1).catch(() => undefined);
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------

function describe(label: string, values: number[]): string {
  const sorted = Float64Array.from(values).sort();
  return (
    `${label} p50 ${percentile(sorted, 50).toFixed(1)} ms, p90 ${percentile(sorted, 90).toFixed(1)} ms, ` +
    `p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${percentile(sorted, 100).toFixed(1)} ms (${sorted.length} messages)`
  );
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'fulmar-relay-bench-'));
  const nodeFlags = args['node-flags'].split(/\s+/).filter(Boolean);
  if (args['cpu-prof']) nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${scratch}`);

  const sink = new Sink();
  await sink.start();
  const dns = ROUTE === 'mx' ? await new TestDnsServer().start() : null;
  if (dns) {
    dns.set(REMOTE, { mx: [{ exchange: `mx.${REMOTE}`, preference: 10 }] });
    dns.set(`mx.${REMOTE}`, { a: ['127.0.0.1'] });
  }
  const settings: Record<string, string> = {
    'auth.allow_plaintext': args.tls ? 'false' : 'true',
    ...(ROUTE === 'smarthost'
      ? { 'delivery.smarthost': `127.0.0.1:${sink.port}`, 'delivery.smarthost_tls': 'none' }
      : { 'dns.servers': dns!.address, 'delivery.remote_port': String(sink.port) }),
    ...(args.concurrency ? { 'delivery.concurrency': args.concurrency } : {}),
  };
  console.log(
    `smtp-relay: ${CONNECTIONS} submission connections x ${MESSAGES} messages of ${(HEADER_BYTES + BODY.length) / 1024 >= 1 ? `${((HEADER_BYTES + BODY.length) / 1024).toFixed(1)} KB` : `${HEADER_BYTES + BODY.length} B`} ` +
      `(AUTH PLAIN ${args.tls ? 'after STARTTLS' : 'in plain text, no TLS'}), ${SOLO} solo messages; route ${ROUTE === 'smarthost' ? 'smarthost (no TLS, no AUTH)' : 'MX via a loopback DNS server'} ` +
      `to a Node sink; delivery.concurrency ${args.concurrency ?? 'default'}` +
      (nodeFlags.length ? ` (server flags: ${nodeFlags.join(' ')})` : ''),
  );
  console.log(`  machine: ${availableParallelism()} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the start`);

  const f = await FulmarProcess.create({ settings, nodeFlags });
  let ok = false;
  try {
    f.cli('domain', 'add', DOMAIN);
    for (let u = 0; u < CONNECTIONS; u++) f.cli('user', 'add', `u${u}@${DOMAIN}`, '--password', PASSWORD);
    await f.start();
    const pid = f.child!.pid!;
    console.log(`  server pid ${pid}, data ${f.dataDir}`);
    let seq = 0;

    // Warm-up (not counted): JIT, the store's statements, the first TLS handshake.
    {
      const c = await Client.open(f.ports.submission, `u0@${DOMAIN}`, args.tls);
      for (let i = 0; i < 20; i++) {
        const s = ++seq;
        await c.send(s, `u0@${DOMAIN}`, `r${i}@${REMOTE}`);
        await sink.arrived(s);
      }
      await c.quit();
    }

    // Solo: an empty queue, one message at a time.
    const soloHandoff: number[] = [];
    const soloSubmit: number[] = [];
    const soloConnect: number[] = [];
    {
      const c = await Client.open(f.ports.submission, `u0@${DOMAIN}`, args.tls);
      for (let i = 0; i < SOLO; i++) {
        const s = ++seq;
        const t0 = performance.now();
        const at = await c.send(s, `u0@${DOMAIN}`, `solo${i}@${REMOTE}`);
        soloSubmit.push(at - t0);
        await sink.arrived(s);
        soloHandoff.push(sink.arrivals.get(s)! - at);
        soloConnect.push(sink.connected.get(s)! - at);
      }
      await c.quit();
    }
    console.log('  solo (empty queue, one message at a time):');
    console.log(`    ${describe('hand-off, our 250 to the sink\'s 250:', soloHandoff)}`);
    console.log(`    ${describe('our 250 to our connect to the sink (negative: we connected before the 250 reached the client):', soloConnect)}`);
    console.log(`    ${describe('submission, MAIL to our 250:', soloSubmit)}`);

    // Load: N connections, M messages each.
    const clients = await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => Client.open(f.ports.submission, `u${i}@${DOMAIN}`, args.tls)));
    const firstLoadSeq = seq + 1;
    const accepted250 = new Map<number, number>();
    const loadSubmit: number[] = [];
    const failures: string[] = [];
    const baseline = readStatus(pid)!;
    const samples: number[] = [];
    const cpuBefore = cpuSeconds(pid);
    const mainBefore = mainThreadCpu(pid);
    const machineBefore = machineBusySeconds();
    const procsBefore = allProcessCpu();
    const benchCpuBefore = process.cpuUsage();
    const poll = setInterval(() => {
      const s = readStatus(pid);
      if (s) samples.push(s.rss);
    }, 100);
    const t0 = performance.now();
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = 0; k < MESSAGES; k++) {
          const s = ++seq;
          try {
            const started = performance.now();
            const at = await c.send(s, `u${i}@${DOMAIN}`, `r${k % 50}@${REMOTE}`);
            accepted250.set(s, at);
            loadSubmit.push(at - started);
          } catch (err) {
            failures.push(String((err as Error).message));
          }
        }
      }),
    );
    const submitted = performance.now();
    const deadline = Date.now() + 120_000;
    while ([...accepted250.keys()].some((s) => !sink.arrivals.has(s)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const lastArrival = Math.max(...[...accepted250.keys()].map((s) => sink.arrivals.get(s) ?? 0));
    clearInterval(poll);
    const elapsedSubmit = (submitted - t0) / 1000;
    const elapsedAll = (lastArrival - t0) / 1000;
    const serverCpu = cpuSeconds(pid) - cpuBefore;
    const mainCpu = mainThreadCpu(pid) - mainBefore;
    const machineBusy = machineBusySeconds() - machineBefore;
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const others = otherLoad(procsBefore, new Set([pid, process.pid]));
    const end = readStatus(pid)!;
    await Promise.all(clients.map((c) => c.quit()));

    const delivered = [...accepted250.keys()].filter((s) => sink.arrivals.has(s));
    const loadHandoff = delivered.map((s) => sink.arrivals.get(s)! - accepted250.get(s)!);
    console.log(`  load (${CONNECTIONS} connections x ${MESSAGES} messages):`);
    console.log(
      `    accepted ${accepted250.size} of ${CONNECTIONS * MESSAGES} in ${elapsedSubmit.toFixed(2)} s = ${(accepted250.size / elapsedSubmit).toFixed(0)} messages/s` +
        (failures.length ? `; ${failures.length} refused, first: ${failures[0]}` : ''),
    );
    console.log(
      `    delivered ${delivered.length} to the sink by ${elapsedAll.toFixed(2)} s = ${(delivered.length / elapsedAll).toFixed(0)} messages/s end to end ` +
        `(first MAIL to the sink's last 250)`,
    );
    console.log(`    ${describe('hand-off, our 250 to the sink\'s 250:', loadHandoff)}`);
    console.log(`    ${describe('submission, MAIL to our 250:', loadSubmit)}`);
    console.log(`    sink: ${sink.sessions} SMTP sessions in all, ${sink.duplicates} duplicate(s), ${sink.unnumbered} unnumbered`);
    const logEvents = new Map<string, number>();
    for (const line of f.logLines) {
      const m = /"event":"([^"]+)"/.exec(line);
      if (m) logEvents.set(m[1]!, (logEvents.get(m[1]!) ?? 0) + 1);
    }
    console.log(
      `    server log: ${f.logLines.length} lines for ${seq} messages (${(f.logLines.length / seq).toFixed(1)} a message, ${(f.logLines.reduce((a, l) => a + l.length + 1, 0) / seq).toFixed(0)} bytes); ` +
        `most: ${[...logEvents].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([e, n]) => `${e} ${n}`).join(', ')}`,
    );
    const queueIds = f.events('smtp.accepted').map((e) => e.queued).filter((q) => typeof q === 'number');
    console.log(`    queue ids: ${queueIds.length} messages queued under ${new Set(queueIds).size} distinct ids (a delivered message's id is given to a later one)`);
    console.log(
      `    server CPU ${serverCpu.toFixed(2)} s over ${elapsedAll.toFixed(2)} s (${((100 * serverCpu) / elapsedAll).toFixed(0)}% of one core; event-loop thread ` +
        `${((100 * mainCpu) / elapsedAll).toFixed(0)}%, other threads ${(serverCpu - mainCpu).toFixed(2)} s); ` +
        `${((1e6 * serverCpu) / Math.max(1, delivered.length)).toFixed(0)} µs per message in and out`,
    );
    console.log(
      `    server RSS ${mb(baseline.rss)} before, peak ${mb(Math.max(end.hwm, ...samples))} (VmHWM), ${mb(end.rss)} after; ` +
        `bench process (clients + sink${dns ? ' + DNS' : ''}) CPU ${((benchCpu.user + benchCpu.system) / 1e6).toFixed(2)} s`,
    );
    console.log(
      `    machine: ${((100 * machineBusy) / elapsedAll / availableParallelism()).toFixed(0)}% busy during the load; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the end` +
        (others.length ? `; other CPU users: ${others.slice(0, 4).map(([n, s]) => `${n} ${s.toFixed(1)} s`).join(', ')}` : ''),
    );

    // Nothing lost, nothing twice, nothing left (the results are recorded after the sink's 250:
    // give them a moment).
    const db = new Database(join(f.dataDir, 'fulmar.db'), { readonly: true, fileMustExist: true });
    const leftNow = (): number => db.prepare<[], { n: number }>('SELECT count(*) AS n FROM queue_messages').get()!.n;
    const checkFrom = Date.now();
    let left = leftNow();
    while (left > 0 && Date.now() - checkFrom < 10_000) {
      await new Promise((r) => setTimeout(r, 100));
      left = leftNow();
    }
    if (left > 0) {
      const rows = db
        .prepare(
          `SELECT m.id, m.blob_hash, m.created_at, m.held, m.lease_owner, m.lease_until, r.id AS rid, r.address, r.status, r.attempts, r.next_attempt_at, r.last_error,
                  (SELECT count(*) FROM blob_data b WHERE b.hash = m.blob_hash) AS inline_blob
           FROM queue_messages m JOIN queue_recipients r ON r.queue_id = m.id ORDER BY m.id LIMIT 10`,
        )
        .all();
      console.log(`  LEFT IN THE QUEUE after 10 s (first 10 recipients, now ${Date.now()}):`);
      for (const row of rows) console.log(`    ${JSON.stringify(row)}`);
    } else if (Date.now() - checkFrom > 200) {
      console.log(`  note: the queue emptied ${Date.now() - checkFrom} ms after the sink's last 250`);
    }
    db.close();
    const missing = accepted250.size - delivered.length;
    console.log(
      `  check: ${missing === 0 ? 'every accepted message reached the sink' : `${missing} accepted message(s) never reached the sink`}, ` +
        `${sink.duplicates} duplicate(s), ${left} message(s) left in the queue; seq ${firstLoadSeq}..${seq}`,
    );

    await f.stop();
    if (args['cpu-prof']) {
      const prof = readdirSync(scratch).find((n) => n.endsWith('.cpuprofile'));
      if (prof) {
        console.log(`  CPU profile (whole server run): ${join(scratch, prof)}`);
        console.log(summarizeProfile(join(scratch, prof)));
      } else console.log('  no CPU profile was written (did the server exit cleanly?)');
    }
    ok = missing === 0 && sink.duplicates === 0 && left === 0 && failures.length === 0;
  } finally {
    await f.kill();
    await sink.stop();
    await dns?.stop();
    if (args.keep) console.log(`  data folder kept: ${f.dataDir}`);
    else f.cleanup();
    if (!args['cpu-prof']) rmSync(scratch, { recursive: true, force: true });
  }
  process.exitCode = ok ? 0 : 1;
}

await main();
