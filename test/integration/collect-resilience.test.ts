/**
 * The collectors' exactly-once promise under failure, against a real Dovecot POP3 server
 * (dovecot-pop3.ts) playing the ISP's catch-all: `kill -9` of `fulmar collect run` after its
 * deliveries but before QUIT (so Dovecot never commits the DELEs) and part way through; a
 * connection dropped in the middle of a message; a server without UIDL; a wrong password and an
 * unreachable host next to a good source; two collectors started at once on one source; and the
 * server's own schedule.
 *
 * A small TCP proxy (Pop3Tap, below) sits between Fulmar and Dovecot where a test needs to stop
 * the conversation at a chosen point: it can hold a client command (and everything after it)
 * forever, or cut the reply to the n-th RETR after some bytes, by closing both connections or by
 * forwarding nothing more. Fulmar's POP3 client sends one command at a time, so the bytes that
 * follow a RETR line are that RETR's reply.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { type DovecotPop3, startDovecotPop3 } from './dovecot-pop3.js';
import { FULMAR, FulmarProcess, readMailbox } from './harness.js';
import { startNoUidlProxy } from './pop3-no-uidl-proxy.js';

const DOMAIN = 'example.test';
const ALICE = `alice@${DOMAIN}`;
const PW = 'isp-secret';

let d: DovecotPop3;
let tap: Pop3Tap;
/** One Fulmar for the tests that run their own source by name (each with its own tag); the others make their own. */
let shared: FulmarProcess;
const fulmars: FulmarProcess[] = [];
const children = new Set<ChildProcess>();

before(async () => {
  d = await startDovecotPop3();
  tap = await Pop3Tap.start(d.port);
  shared = await newFulmar();
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const f of fulmars) {
    await f.kill();
    f.cleanup();
  }
  await tap?.close();
  await d?.stop();
});

// ---------------------------------------------------------------------------------------------
// The proxy.

interface TapRules {
  /** Checked for each client command: true holds it, and everything the client sends after, forever. */
  hold?: (command: string) => boolean;
  /** The reply to the `retr`-th RETR of a connection is cut after `bytes` bytes: both connections closed, or nothing more forwarded. */
  cut?: { retr: number; bytes: number; action: 'close' | 'stall' };
  /** Each client command of the n-th connection (1-based, since the last reset) reaches the server this many ms late: a slow link. */
  pace?: (connection: number) => number;
}

class Pop3Tap {
  rules: TapRules = {};
  /** Every command line the clients sent, in order, over all connections. */
  readonly commands: string[] = [];
  private readonly events = new EventEmitter();
  private readonly happened = new Set<string>();
  private readonly sockets = new Set<Socket>();
  private connections = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<Pop3Tap> {
    let tap: Pop3Tap | null = null;
    const server = createServer((client) => tap!.connection(client, targetPort));
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(0, '127.0.0.1', () => res());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('tap has no port');
    tap = new Pop3Tap(server, address.port);
    return tap;
  }

  /** Forgets what happened and drops the rules: everything passes again. */
  reset(): void {
    this.rules = {};
    this.happened.clear();
    this.commands.length = 0;
    this.connections = 0;
  }

  /** Resolves once `what` ('held' or 'cut') has happened since the last reset. */
  waitFor(what: 'held' | 'cut', ms: number): Promise<void> {
    if (this.happened.has(what)) return Promise.resolve();
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        this.events.off(what, done);
        rej(new Error(`the tap saw no "${what}" in ${ms} ms; commands: ${this.commands.join(' | ')}`));
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        res();
      };
      this.events.once(what, done);
    });
  }

  private emit(what: 'held' | 'cut'): void {
    this.happened.add(what);
    this.events.emit(what);
  }

  private connection(client: Socket, targetPort: number): void {
    const upstream = connect(targetPort, '127.0.0.1');
    const connection = ++this.connections;
    this.sockets.add(client);
    this.sockets.add(upstream);
    let held = false;
    let stalled = false;
    let retrs = 0;
    let cutLeft: { bytes: number; action: 'close' | 'stall' } | null = null;
    let pending = Buffer.alloc(0);
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
    client.on('close', () => {
      this.sockets.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => {
      this.sockets.delete(upstream);
      client.end();
    });

    client.on('data', (d: Buffer) => {
      if (held) return;
      pending = Buffer.concat([pending, d]);
      let nl: number;
      while (!held && (nl = pending.indexOf(0x0a)) >= 0) {
        const line = pending.subarray(0, nl + 1);
        pending = pending.subarray(nl + 1);
        const command = line.toString('latin1').replace(/\r?\n$/, '');
        this.commands.push(command.replace(/^(PASS|AUTH PLAIN) .*/i, '$1 ***'));
        if (this.rules.hold?.(command)) {
          held = true;
          this.emit('held');
          return;
        }
        if (/^RETR /i.test(command)) {
          retrs++;
          const cut = this.rules.cut;
          if (cut && cut.retr === retrs) cutLeft = { bytes: cut.bytes, action: cut.action };
        }
        const pace = this.rules.pace?.(connection) ?? 0;
        if (pace > 0) setTimeout(() => upstream.write(line), pace);
        else upstream.write(line);
      }
    });

    upstream.on('data', (d: Buffer) => {
      if (stalled) return;
      if (cutLeft === null) {
        client.write(d);
        return;
      }
      if (d.length < cutLeft.bytes) {
        cutLeft.bytes -= d.length;
        client.write(d);
        return;
      }
      const { bytes, action } = cutLeft;
      cutLeft = null;
      if (action === 'stall') {
        stalled = true;
        client.write(d.subarray(0, bytes), () => this.emit('cut'));
      } else {
        // The partial reply goes out, then both connections close (no QUIT reaches Dovecot).
        client.write(d.subarray(0, bytes), () => {
          closeBoth();
          this.emit('cut');
        });
      }
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((res) => this.server.close(() => res()));
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/** A ~4 KB message for alice with a unique Subject, Message-ID and last line; one body line starts with a dot. */
function message(tag: string, i: number, to = ALICE): string {
  const line = `${tag} ${i} `.padEnd(76, 'abcdefghijklmnopqrstuvwxyz0123456789');
  const body: string[] = [];
  for (let k = 0; k < 48; k++) body.push(k === 20 ? `.${line}` : line);
  return (
    `From: Sender <sender@remote.test>\r\nTo: <${to}>\r\nX-Rcpt-To: ${to}\r\n` +
    `Subject: ${tag} ${i}\r\nMessage-ID: <${tag}.${i}@remote.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\n` +
    `${body.join('\r\n')}\r\nEND ${tag} ${i}\r\n`
  );
}

/** Fills a fresh remote mailbox with `n` messages; returns the messages by Subject. */
function fill(user: string, tag: string, n: number, from = 0): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = from; i < from + n; i++) {
    const m = message(tag, i);
    d.deliver(user, m);
    out.set(`${tag} ${i}`, m);
  }
  return out;
}

async function newFulmar(settings: Record<string, string> = {}): Promise<FulmarProcess> {
  const f = await FulmarProcess.create({ settings });
  fulmars.push(f);
  f.cli('domain', 'add', DOMAIN);
  f.cli('user', 'add', ALICE, '--password', 'alice-password');
  f.cli('user', 'add', `postmaster@${DOMAIN}`, '--password', 'postmaster-password');
  return f;
}

function addSource(f: FulmarProcess, name: string, port: number, user: string, extra: string[] = [], password = PW): void {
  f.cli(
    'collect', 'domainpop', 'add', name, '--domain', DOMAIN, '--host', '127.0.0.1', '--port', String(port),
    '--user', user, '--password', password, '--mode', 'envelope', '--envelope-header', 'X-Rcpt-To', ...extra,
  );
}

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `fulmar ...` as a child process of its own (cliResult waits for it; these tests kill it or race two). */
function spawnCli(f: FulmarProcess, ...args: string[]): { child: ChildProcess; done: Promise<Finished> } {
  return spawnCliEnv(f, {}, ...args);
}

function spawnCliEnv(f: FulmarProcess, env: Record<string, string>, ...args: string[]): { child: ChildProcess; done: Promise<Finished> } {
  const child = spawn(process.execPath, [FULMAR, ...args, '--data', f.dataDir, '--config', f.configFile], {
    cwd: f.dataDir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<Finished>((res) =>
    child.once('close', (code, signal) => {
      children.delete(child);
      res({ code, signal, stdout, stderr });
    }),
  );
  return { child, done };
}

/** alice's INBOX, the messages of one tag (Subject "<tag> <i>"): how many copies of each Subject, and their texts. */
async function inbox(f: FulmarProcess, tag: string): Promise<{ counts: Map<string, number>; texts: string[] }> {
  const store = await f.openStore();
  try {
    const texts: string[] = [];
    const counts = new Map<string, number>();
    for (const t of await readMailbox(store, ALICE)) {
      const subject = /^Subject: (.*)$/m.exec(t)?.[1]?.trim() ?? '(none)';
      if (subject.split(' ')[0] !== tag) continue;
      texts.push(t);
      counts.set(subject, (counts.get(subject) ?? 0) + 1);
    }
    return { counts, texts };
  } finally {
    await store.close();
  }
}

/**
 * Every expected message is in the INBOX exactly once, whole (the original bytes end the stored
 * text, after our Received line), and nothing else is there.
 */
async function assertEachOnce(f: FulmarProcess, expected: Map<string, string>, context = ''): Promise<void> {
  const tags = new Set([...expected.keys()].map((subject) => subject.split(' ')[0]!));
  assert.equal(tags.size, 1, 'one tag at a time');
  const { counts, texts } = await inbox(f, [...tags][0]!);
  const twice = [...counts].filter(([, n]) => n > 1).map(([s, n]) => `${s} x${n}`);
  assert.deepEqual(twice, [], `delivered more than once ${context}`);
  const missing = [...expected.keys()].filter((s) => !counts.has(s));
  assert.deepEqual(missing, [], `never delivered ${context}`);
  const extra = [...counts.keys()].filter((s) => !expected.has(s));
  assert.deepEqual(extra, [], `delivered but not expected ${context}`);
  for (const t of texts) {
    const subject = /^Subject: (.*)$/m.exec(t)![1]!.trim();
    assert.ok(t.endsWith(expected.get(subject)!), `${subject} is not stored whole ${context}:\n${t.slice(-300)}`);
    assert.match(t, /^Received: from 127\.0\.0\.1 .*\r\n\tby .* \(Fulmar DomainPOP /m);
  }
}

/** `collect run` output lines of one source: "<kind> <name>: collected N, deleted N, left N on the server". */
function summary(stdout: string, name: string): { collected: number; deleted: number; left: number } | null {
  const m = new RegExp(`^domainpop ${name}: collected (\\d+), deleted (\\d+), left (\\d+) on the server`, 'm').exec(stdout);
  return m ? { collected: Number(m[1]), deleted: Number(m[2]), left: Number(m[3]) } : null;
}

/**
 * `fulmar collect run ...`, waited for without blocking this process: the proxies in front of
 * Dovecot live here and must keep forwarding (cliResult's spawnSync would stall them).
 */
async function collectRun(f: FulmarProcess, ...args: string[]): Promise<Finished> {
  return spawnCli(f, 'collect', 'run', ...args).done;
}

/** A collect run that must succeed, and must not find the source held by an earlier (killed or finished) collector. */
async function runOk(f: FulmarProcess, ...args: string[]): Promise<string> {
  const r = await collectRun(f, ...args);
  assert.equal(r.code, 0, `collect run ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  assert.doesNotMatch(r.stdout, /skipped, another collector is running it/, 'the source is still claimed by a collector that is gone');
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------
// The tests.

test('kill -9 after every delivery but before QUIT: nothing lost, nothing twice, and the next run deletes', { timeout: 60_000 }, async () => {
  const user = 'kill-at-quit@isp.test';
  d.addUser(user, PW);
  const expected = fill(user, 'kq', 12);
  const f = shared;
  addSource(f, 'kq', tap.port, user);

  tap.reset();
  tap.rules = { hold: (c) => c.toUpperCase() === 'QUIT' };
  const run = spawnCli(f, 'collect', 'run', 'kq');
  await tap.waitFor('held', 30_000);
  run.child.kill('SIGKILL');
  const killed = await run.done;
  assert.equal(killed.signal, 'SIGKILL', `the collector ended before the kill:\n${killed.stdout}\n${killed.stderr}`);
  // Every RETR was followed by its DELE before QUIT: all delivered, none deleted yet.
  assert.equal(tap.commands.filter((c) => /^RETR /i.test(c)).length, 12);
  assert.equal(tap.commands.filter((c) => /^DELE /i.test(c)).length, 12);
  await assertEachOnce(f, expected, 'after the kill');
  assert.equal(d.count(user), 12, 'Dovecot committed DELEs without a QUIT');

  tap.reset();
  const out = await runOk(f, 'kq');
  assert.deepEqual(summary(out, 'kq'), { collected: 0, deleted: 12, left: 0 }, out);
  assert.doesNotMatch(out, /: delivered/);
  await assertEachOnce(f, expected, 'after the second run');
  assert.equal(d.count(user), 0, 'the second run did not delete what was collected');
});

test('kill -9 part way (among the DELEs; and in the middle of a RETR): each message once in the end', { timeout: 60_000 }, async () => {
  let deles = 0;
  // DELEs go out once every download's delivery has settled, so a kill among them finds all 10
  // delivered; a kill in the middle of the 7th RETR finds at most the 6 before it delivered (the
  // last ones may still have been committing).
  const scenarios: Array<{ tag: string; rules: TapRules; wait: 'held' | 'cut'; before: [number, number] }> = [
    // DELEs 1-4 sent (never committed: no QUIT), the 5th held.
    { tag: 'kd', rules: { hold: (c) => /^DELE /i.test(c) && ++deles === 5 }, wait: 'held', before: [10, 10] },
    // Half of the 7th message has arrived: up to 6 delivered, the 7th only spooled.
    { tag: 'kr', rules: { cut: { retr: 7, bytes: 1500, action: 'stall' } }, wait: 'cut', before: [1, 6] },
  ];
  for (const { tag, rules, wait, before } of scenarios) {
    const user = `kill-${tag}@isp.test`;
    d.addUser(user, PW);
    const expected = fill(user, tag, 10);
    const f = shared;
    addSource(f, tag, tap.port, user);

    tap.reset();
    tap.rules = rules;
    const run = spawnCli(f, 'collect', 'run', tag);
    await tap.waitFor(wait, 30_000);
    run.child.kill('SIGKILL');
    const killed = await run.done;
    assert.equal(killed.signal, 'SIGKILL', `${tag}: the collector ended before the kill:\n${killed.stdout}\n${killed.stderr}`);
    const { counts } = await inbox(f, tag);
    const deliveredBefore = [...counts.values()].reduce((a, b) => a + b, 0);
    assert.ok(deliveredBefore >= before[0] && deliveredBefore <= before[1], `${tag}: delivered before the kill: ${[...counts.keys()].join(', ')}`);
    assert.ok([...counts.values()].every((n) => n === 1), `${tag}: a message delivered twice before the kill`);
    assert.equal(d.count(user), 10, `${tag}: Dovecot deleted without a QUIT`);

    tap.reset();
    const out = await runOk(f, tag);
    assert.deepEqual(summary(out, tag), { collected: 10 - deliveredBefore, deleted: 10, left: 0 }, `${tag}:\n${out}`);
    await assertEachOnce(f, expected, `(${tag}, after the rerun)`);
    assert.equal(d.count(user), 0, `${tag}: the rerun left mail on the server`);
  }
});

test('a connection dropped in the middle of a message: the run fails, nothing partial is delivered, the next run delivers each once', { timeout: 60_000 }, async () => {
  const user = 'dropped@isp.test';
  d.addUser(user, PW);
  const expected = fill(user, 'dr', 8);
  const f = shared;
  addSource(f, 'dr', tap.port, user);

  tap.reset();
  tap.rules = { cut: { retr: 4, bytes: 2000, action: 'close' } };
  const r = await collectRun(f, 'dr');
  assert.equal(r.code, 1, `expected exit 1:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /^domainpop dr: FAILED: .*clos/m);
  const partial = await inbox(f, 'dr');
  assert.deepEqual([...partial.counts.keys()].sort(), ['dr 0', 'dr 1', 'dr 2'], 'only the three whole messages before the cut are delivered');
  await assertEachOnce(f, new Map([...expected].filter(([s]) => partial.counts.has(s))), 'after the cut');
  assert.equal(d.count(user), 8);
  const statusRow = (): string => f.cli('collect', 'status').split('\n').find((l) => l.split(/\s+/)[1] === 'dr') ?? assert.fail('no status row for dr');
  assert.match(statusRow(), /clos/);

  tap.reset();
  const out = await runOk(f, 'dr');
  assert.deepEqual(summary(out, 'dr'), { collected: 5, deleted: 8, left: 0 }, out);
  await assertEachOnce(f, expected, 'after the rerun');
  assert.equal(d.count(user), 0);
  // The good run clears the error.
  const row = statusRow();
  assert.match(row, /\s8\s*$/, `LAST ERROR should be empty after a good run: ${row}`);
});

test('a server without UIDL, mail left on the server: every message once over several runs', { timeout: 60_000 }, async () => {
  const user = 'no-uidl@isp.test';
  d.addUser(user, PW);
  const expected = fill(user, 'nu', 5);
  const proxy = await startNoUidlProxy(d.port);
  try {
    const f = shared;
    addSource(f, 'nu', proxy.port, user, ['--leave-on-server']);

    const first = await runOk(f, 'nu');
    assert.deepEqual(summary(first, 'nu'), { collected: 5, deleted: 0, left: 5 }, first);
    // The stand-in for a UIDL is a hash of the header (TOP n 0).
    assert.equal(first.match(/^ {2}hdr-[0-9a-f]+ \d+ bytes: delivered/gm)?.length, 5, first);
    await assertEachOnce(f, expected, 'after the first run');

    const second = await runOk(f, 'nu');
    assert.deepEqual(summary(second, 'nu'), { collected: 0, deleted: 0, left: 5 }, second);
    await assertEachOnce(f, expected, 'after the second run');

    for (const [s, m] of fill(user, 'nu', 2, 5)) expected.set(s, m);
    const third = await runOk(f, 'nu');
    assert.deepEqual(summary(third, 'nu'), { collected: 2, deleted: 0, left: 7 }, third);
    await assertEachOnce(f, expected, 'after the third run');
    assert.equal(d.count(user), 7);
  } finally {
    await proxy.close();
  }
});

test('a wrong password and an unreachable host fail on their own; the good source is collected; collect status shows both errors', { timeout: 60_000 }, async () => {
  const user = 'mixed@isp.test';
  d.addUser(user, PW);
  const expected = fill(user, 'mx', 3);
  // A port nobody listens on: taken from the kernel, then let go.
  const closedPort = await new Promise<number>((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
  const f = await newFulmar();
  addSource(f, 'a-badpass', d.port, user, [], 'not-the-password');
  addSource(f, 'b-nohost', closedPort, user);
  addSource(f, 'c-good', d.port, user);

  const r = await collectRun(f);
  assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /^domainpop a-badpass: FAILED: .*refused the login/m, r.stdout);
  assert.doesNotMatch(r.stdout, /not-the-password/, 'the password is printed');
  assert.match(r.stdout, /^domainpop b-nohost: FAILED: .*ECONNREFUSED/m, r.stdout);
  assert.doesNotMatch(r.stdout, /^domainpop c-good: FAILED/m, r.stdout);
  assert.deepEqual(summary(r.stdout, 'c-good'), { collected: 3, deleted: 3, left: 0 }, r.stdout);
  await assertEachOnce(f, expected);
  assert.equal(d.count(user), 0);

  const status = f.cli('collect', 'status');
  const lines = status.trimEnd().split('\n');
  assert.match(lines[0]!, /^KIND\s+NAME\s+ENABLED\s+LAST RUN\s+LAST OK\s+LAST\s+TOTAL\s+LAST ERROR$/);
  const errorColumn = lines[0]!.indexOf('LAST ERROR');
  const rowOf = (name: string): string => lines.find((l) => l.split(/\s+/)[1] === name) ?? assert.fail(`no status row for ${name}:\n${status}`);
  assert.match(rowOf('a-badpass').slice(errorColumn), /refused the login/, status);
  assert.match(rowOf('a-badpass'), /^domainpop\s+a-badpass\s+yes\s+\S+Z\s+never\s+0\s+0\s/, status);
  assert.doesNotMatch(status, /not-the-password/);
  assert.match(rowOf('b-nohost').slice(errorColumn), /ECONNREFUSED/, status);
  assert.match(rowOf('c-good'), /^domainpop\s+c-good\s+yes\s+\S+Z\s+\S+Z\s+3\s+3\s*$/, status);
  assert.equal(rowOf('c-good').slice(errorColumn).trim(), '', 'the good source shows an error');
});

test('two collectors started at once on one source of 200 messages: each message delivered once', { timeout: 60_000 }, async () => {
  const user = 'race@isp.test';
  d.addUser(user, PW);
  const expected = fill(user, 'rc', 200);
  const f = shared;
  addSource(f, 'rc', d.port, user);

  const runs = [spawnCli(f, 'collect', 'run', 'rc'), spawnCli(f, 'collect', 'run', 'rc')];
  const results = await Promise.all(runs.map((r) => r.done));
  for (const r of results) assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const collected = results.map((r) => summary(r.stdout, 'rc')?.collected ?? 0);
  const skipped = results.filter((r) => /^domainpop rc: skipped, another collector is running it$/m.test(r.stdout)).length;
  assert.equal(collected[0]! + collected[1]!, 200, results.map((r) => r.stdout.split('\n')[0]).join(' / '));
  assert.ok(skipped <= 1);
  await assertEachOnce(f, expected);
  assert.equal(d.count(user), 0);
  const again = await runOk(f, 'rc');
  assert.deepEqual(summary(again, 'rc'), { collected: 0, deleted: 0, left: 0 }, again);
});

test('two collectors working one source at once (the second one\'s clock is past the first one\'s claim): each message delivered once', { timeout: 60_000 }, async () => {
  // The run claim normally keeps a second collector out; here it is overtaken on purpose, so the
  // last guard is tested: the UIDL recorded in the delivery's own transaction.
  const user = 'overtaken@isp.test';
  d.addUser(user, PW);
  const expected = fill(user, 'ov', 200);
  const f = shared;

  addSource(f, 'ov', tap.port, user);

  // The first collector claims the source and downloads over a slow link; the second starts once
  // the first is downloading, finds the claim expired by its clock, works the same messages over a
  // fast link and overtakes the first: each delivers some, and finds the other's as duplicates.
  tap.reset();
  tap.rules = { pace: (connection) => (connection === 1 ? 15 : 0) };
  const runs = [spawnCli(f, 'collect', 'run', 'ov')];
  const deadline = Date.now() + 20_000;
  while (!tap.commands.some((c) => /^RETR /i.test(c)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  runs.push(spawnCliEnv(f, { FULMAR_COLLECT_CLOCK_OFFSET: '2h' }, 'collect', 'run', 'ov'));
  const results = await Promise.all(runs.map((r) => r.done));
  const heads = results.map((r) => `${r.code}: ${r.stdout.split('\n').slice(0, 2).join(' ')} ${r.stderr}`).join(' / ');
  for (const r of results) {
    // A session still open when the other's QUIT expunged its messages: Dovecot says so, the run fails.
    if (r.code !== 0) assert.match(r.stdout, /FAILED: .*expunged/, heads);
  }
  const collected = results.map((r) => summary(r.stdout, 'ov')?.collected ?? 0);
  assert.equal(collected[0]! + collected[1]!, 200, heads);
  assert.ok(collected[0]! > 0 && collected[1]! > 0, `the two collectors did not both deliver: ${heads}`);
  assert.ok(results.some((r) => /: duplicate$/m.test(r.stdout)), `neither collector met the other's deliveries: ${heads}`);
  await assertEachOnce(f, expected);
  // Whatever the two sessions' DELEs and QUITs did, a last run leaves the server empty.
  tap.reset();
  const last = await collectRun(f, 'ov');
  assert.equal(last.code, 0, `${last.stdout}\n${last.stderr}`);
  await assertEachOnce(f, expected, 'after a last run');
  assert.equal(d.count(user), 0, last.stdout);
});

test('the server collects on its own every collect.interval minutes', { timeout: 60_000 }, async () => {
  const user = 'scheduled@isp.test';
  d.addUser(user, PW);
  const expected = fill(user, 'sc', 3);
  const f = await newFulmar({ 'collect.interval': '1' });
  addSource(f, 'isp', d.port, user);
  await f.start();
  try {
    // The timer looks 5 s after the start, then every 15 s.
    const deadline = Date.now() + 25_000;
    while (d.count(user) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    assert.equal(d.count(user), 0, 'the server did not collect within 25 s');
    // Deleted at QUIT, which comes after the commits.
    await assertEachOnce(f, expected);
    const runs = f.events('collect.run');
    assert.equal(runs.length, 1, JSON.stringify(runs));
    assert.equal(runs[0]!['collected'], 3);
  } finally {
    await f.stop();
  }
});
