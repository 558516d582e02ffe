/**
 * Two Fulmar nodes on one PostgreSQL database, driven by real clients (Python smtplib, imaplib,
 * poplib): mail accepted on A is readable on B at once, B's IDLE hears of it within a second
 * (LISTEN/NOTIFY), flags and expunges propagate, the POP3 lock holds across nodes, and the
 * outbound queue is worked by both with each message sent once, also when one node is killed.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { FulmarProcess, python } from './harness.js';
import { freshDatabase } from './pg-database.js';
import { SmtpSink, unstuff } from './smtp-sink.js';

const database = freshDatabase('fulmar_nodes');
const DATABASE = database.url;

let a: FulmarProcess;
let b: FulmarProcess;
let sink: SmtpSink;
const PASSWORD = 'node-pass-1234';

before(async () => {
  // 'good' takes everything; 'stall' never greets (a node sending there hangs until killed).
  sink = await SmtpSink.start([
    { address: '127.0.0.1', name: 'good' },
    { address: '127.0.0.2', name: 'stall', stall: 'greeting' },
  ]);
  const settings = { 'auth.allow_plaintext': 'true', 'queue.lease_time': '4s', 'delivery.smarthost_tls': 'none' };
  // Per-node defaults (the config file): A's smarthost hangs, B's works. The store's value, when
  // set, wins over both.
  a = await FulmarProcess.create({ database: DATABASE, settings, hostname: 'node-a.test', configSettings: { 'delivery.smarthost': `127.0.0.2:${sink.port}` } });
  b = await FulmarProcess.create({ database: DATABASE, hostname: 'node-b.test', configSettings: { 'delivery.smarthost': `127.0.0.1:${sink.port}` } });
  a.cli('domain', 'add', 'nodes.test');
  await Promise.all([a.start(), b.start()]);
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  a?.cleanup();
  b?.cleanup();
  await sink?.stop();
  await database.drop();
});

function user(name: string): string {
  const address = `${name}@nodes.test`;
  a.cli('user', 'add', address, '--password', PASSWORD);
  return address;
}

test('SMTP on A, IDLE on B: EXISTS within a second; flags and expunge from A reach B; POP3 on B reads it', async () => {
  const address = user('idle');
  const out = JSON.parse(
    python(
      String.raw`
import imaplib, smtplib, socket, time, json, poplib
A_SMTP, B_IMAP, A_IMAP, B_POP = ${a.ports.smtp}, ${b.ports.imap}, ${a.ports.imap}, ${b.ports.pop3}
U, P = ${JSON.stringify(address)}, ${JSON.stringify(PASSWORD)}
out = {}
b = imaplib.IMAP4('127.0.0.1', B_IMAP)
b.login(U, P)
b.select('INBOX')
tag = b._new_tag().decode()
b.send(('%s IDLE\r\n' % tag).encode())
assert b.readline().startswith(b'+')
b.sock.settimeout(5)
def send(i):
    s = smtplib.SMTP('127.0.0.1', A_SMTP)
    s.sendmail('x@remote.test', [U], ('From: x@remote.test\r\nTo: %s\r\nSubject: node %d\r\n\r\nhello %d\r\n' % (U, i, i)).encode())
    s.quit()
lat = []
for i in range(3):
    send(i)
    t = time.time()
    line = b.readline().decode().strip()
    lat.append(round((time.time() - t) * 1000))
    out.setdefault('idle', []).append(line)
# A marks message 1 seen and expunges message 2
a = imaplib.IMAP4('127.0.0.1', A_IMAP)
a.login(U, P)
a.select('INBOX')
a.store('1', '+FLAGS', '\\Seen')
out['flag'] = b.readline().decode().strip()
a.store('2', '+FLAGS', '\\Deleted')
b.readline()
a.expunge()
out['expunge'] = b.readline().decode().strip()
b.send(b'DONE\r\n')
b.readline()
a.logout()
b.logout()
out['lat'] = lat
p = poplib.POP3('127.0.0.1', B_POP)
p.user(U); p.pass_(P)
out['pop_stat'] = p.stat()[0]
out['pop_top'] = [l.decode() for l in p.retr(1)[1] if l.startswith(b'Subject')]
p.quit()
print(json.dumps(out))
`,
    ),
  ) as { idle: string[]; lat: number[]; flag: string; expunge: string; pop_stat: number; pop_top: string[] };
  assert.deepEqual(out.idle, ['* 1 EXISTS', '* 2 EXISTS', '* 3 EXISTS']);
  for (const ms of out.lat) assert.ok(ms < 1000, `B's IDLE heard of the delivery on A after ${ms} ms`);
  assert.match(out.flag, /^\* 1 FETCH \(.*FLAGS \(\\Seen\)/);
  assert.equal(out.expunge, '* 2 EXPUNGE');
  assert.equal(out.pop_stat, 2);
  assert.deepEqual(out.pop_top, ['Subject: node 0']);
  process.stdout.write(`# cross-node IDLE latency: ${out.lat.join(', ')} ms\n`);
});

test('the POP3 maildrop lock holds across nodes', () => {
  const address = user('lock');
  const out = python(String.raw`
import poplib
U, P = ${JSON.stringify(address)}, ${JSON.stringify(PASSWORD)}
a = poplib.POP3('127.0.0.1', ${a.ports.pop3}); a.user(U); a.pass_(P)
b = poplib.POP3('127.0.0.1', ${b.ports.pop3}); b.user(U)
try:
    b.pass_(P); print('both')
except poplib.error_proto as e:
    print(e.args[0].decode())
a.quit()
b = poplib.POP3('127.0.0.1', ${b.ports.pop3}); b.user(U); b.pass_(P); print('after'); b.quit()
`);
  assert.match(out, /^-ERR \[IN-USE\]/m);
  assert.match(out, /^after$/m);
});

test('UIDs allocated by both nodes at once are distinct and dense', () => {
  const address = user('uids');
  python(String.raw`
import smtplib, threading
U = ${JSON.stringify(address)}
def run(port):
    s = smtplib.SMTP('127.0.0.1', port)
    for i in range(25):
        s.sendmail('x@remote.test', [U], ('Subject: %d-%d\r\n\r\nx\r\n' % (port, i)).encode())
    s.quit()
ts = [threading.Thread(target=run, args=(p,)) for p in (${a.ports.smtp}, ${b.ports.smtp})]
[t.start() for t in ts]; [t.join() for t in ts]
`);
  const out = python(String.raw`
import imaplib
c = imaplib.IMAP4('127.0.0.1', ${b.ports.imap}); c.login(${JSON.stringify(address)}, ${JSON.stringify(PASSWORD)}); c.select('INBOX')
print(c.uid('SEARCH', 'ALL')[1][0].decode())
`);
  assert.deepEqual(out.trim().split(' ').map(Number), Array.from({ length: 50 }, (_, i) => i + 1));
});

function submit(port: number, from: string, tag: string, count: number): void {
  python(String.raw`
import smtplib
s = smtplib.SMTP('127.0.0.1', ${port})
s.login(${JSON.stringify(from)}, ${JSON.stringify(PASSWORD)})
for i in range(${count}):
    s.sendmail(${JSON.stringify(from)}, ['r%d@far.test' % i], ('Subject: ${tag} %d\r\n\r\nx\r\n' % i).encode())
s.quit()
`);
}

/** Subjects starting with `prefix` that the good sink received (waits for `count` of them). */
async function delivered(prefix: string, count: number, timeoutMs: number): Promise<string[]> {
  const subjects = (): string[] =>
    sink
      .messages('good')
      .map((m) => /Subject: ([^\r\n]+)/.exec(unstuff(m.raw).toString())?.[1] ?? '')
      .filter((s) => s.startsWith(prefix));
  const deadline = Date.now() + timeoutMs;
  while (subjects().length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 500)); // a late duplicate would show up now
  return subjects();
}

test('the outbound queue is worked by both nodes at once: each message sent once', async () => {
  const from = user('sender');
  a.cli('settings', 'set', 'delivery.smarthost', `127.0.0.1:${sink.port}`);
  try {
    submit(a.ports.submission, from, 'both-a', 40);
    submit(b.ports.submission, from, 'both-b', 40);
    const got = await delivered('both-', 80, 30_000);
    assert.equal(new Set(got).size, 80, `every message delivered (${new Set(got).size} of 80)`);
    assert.equal(got.length, 80, `none twice (${got.length} deliveries of 80 messages)`);
    const byA = a.events('queue.delivered').length;
    const byB = b.events('queue.delivered').length;
    assert.equal(byA + byB, 80);
    process.stdout.write(`# queue shared by the nodes: A delivered ${byA}, B ${byB}\n`);
  } finally {
    a.cli('settings', 'unset', 'delivery.smarthost');
  }
});

test('a node killed in the middle of deliveries: the other takes its messages over once their lease ends', async () => {
  const from = user('killed');
  const stalled = sink.connections('stall');
  submit(a.ports.submission, from, 'takeover', 20);
  // A claims at once (its own kick) and hangs at the stalling smarthost's greeting.
  const deadline = Date.now() + 10_000;
  while (sink.connections('stall') === stalled && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(sink.connections('stall') > stalled, 'node A was delivering');
  await a.kill();
  const got = await delivered('takeover ', 20, 30_000);
  assert.equal(new Set(got).size, 20, `every message delivered by B (${new Set(got).size} of 20)`);
  assert.equal(got.length, 20, 'none twice');
  await a.start();
});
