/**
 * The SMTP client (src/smtp/client/deliver.ts) against receiving servers we did not write: a
 * Python asyncio SMTP sink (test/integration/smtp-sink.ts) told per test what to offer and
 * answer, found through a real DNS server on loopback (dns2), and Fulmar's own SMTP server for
 * one happy path. MX hosts are told apart by loopback address (127.0.0.2, ...) on one port.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { deliverMessage, type DeliveryOptions, type DeliveryRequest, type RecipientOutcome } from '../../src/smtp/client/deliver.js';
import { TestDnsServer, type ZoneEntry } from './dns-server.js';
import { readMailbox } from './harness.js';
import { startServer, stopServer } from './smtp-wire.js';
import { makeCertificate, SmtpSink, unstuff, type SinkServer } from './smtp-sink.js';

const dns = new TestDnsServer();
let cert: Awaited<ReturnType<typeof makeCertificate>>;
let sinks: SmtpSink[] = [];

before(async () => {
  await dns.start();
  cert = await makeCertificate(['mx1.tls.test', 'smarthost.test']);
});

after(async () => {
  for (const s of sinks) await s.stop();
  await dns.stop();
  cert.cleanup();
});

let domainCounter = 0;
/** A fresh destination domain per test, so DNS entries never clash. */
function freshDomain(label: string): string {
  domainCounter++;
  return `${label}${domainCounter}.test`;
}

/** MX records for `domain`, each host name with one address (or several). */
function zone(domain: string, mx: Array<{ host: string; preference: number; a?: string[]; aaaa?: string[] }>): void {
  dns.set(domain, { mx: mx.map((m) => ({ exchange: m.host, preference: m.preference })) });
  for (const m of mx) {
    const entry: ZoneEntry = {};
    if (m.a) entry.a = m.a;
    if (m.aaaa) entry.aaaa = m.aaaa;
    if (m.a || m.aaaa) dns.set(m.host, entry);
  }
}

async function sink(servers: SinkServer[], tls = true): Promise<SmtpSink> {
  const s = await SmtpSink.start(servers, tls ? { tls: { cert: cert.cert, key: cert.key } } : {});
  sinks.push(s);
  return s;
}

async function stopSink(s: SmtpSink): Promise<void> {
  await s.stop();
  sinks = sinks.filter((x) => x !== s);
}

const BODY = 'From: a@sender.test\r\nTo: b@dest.test\r\nSubject: hello\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n';

function request(domain: string, locals: string[], body: string | Buffer = BODY, extra: Partial<DeliveryRequest> = {}): DeliveryRequest {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  return {
    domain,
    mailFrom: 'sender@origin.test',
    recipients: locals.map((l, i) => ({ id: i + 1, address: l.includes('@') ? l : `${l}@${domain}`, orcpt: null, notify: null })),
    envId: null,
    ret: null,
    size: bytes.length,
    open: () => Readable.from(chunks(bytes, 7000)),
    needs8BitMime: false,
    needsSmtpUtf8: false,
    ...extra,
  };
}

/** Splits bytes into pieces, so dot-stuffing sees line starts across chunk boundaries. */
function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

function options(s: SmtpSink | null, extra: Partial<DeliveryOptions> = {}): DeliveryOptions {
  return {
    hostname: 'client.fulmar.test',
    resolver: dns.resolver(),
    port: s?.port ?? 1,
    smarthost: null,
    tlsPolicy: 'opportunistic',
    timeouts: { connectMs: 2000, greetingMs: 5000, commandMs: 5000, dataBlockMs: 5000, dataEndMs: 5000 },
    ...extra,
  };
}

function byId(outcomes: RecipientOutcome[]): Map<number, RecipientOutcome> {
  return new Map(outcomes.map((o) => [o.recipientId, o]));
}

function assertAll(outcomes: RecipientOutcome[], outcome: RecipientOutcome['outcome'], reply: RegExp): void {
  assert.ok(outcomes.length > 0);
  for (const o of outcomes) {
    assert.equal(o.outcome, outcome, `${o.recipientId}: ${o.reply}`);
    assert.match(o.reply, reply);
  }
}

// --- The happy path, dot-stuffing, pipelining ------------------------------------------------

test('delivers to the MX: exact bytes, dot-stuffed on the wire, SIZE, QUIT', async () => {
  const domain = freshDomain('happy');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const s = await sink([{ address: '127.0.0.2', name: 'mx' }]);
  const outcomes = await deliverMessage(request(domain, ['one', 'two']), options(s));
  assertAll(outcomes, 'delivered', /^250 2\.0\.0 Ok: queued as SINK\d+$/);
  assert.deepEqual(
    outcomes.map((o) => [o.recipientId, o.remoteMta, o.dsnRelayed]),
    [
      // The sink announces DSN by default: the request went on.
      [1, `mx.${domain}`, true],
      [2, `mx.${domain}`, true],
    ],
  );
  const [m] = s.messages();
  assert.ok(m);
  assert.equal(m.mail, `MAIL FROM:<sender@origin.test> SIZE=${Buffer.byteLength(BODY)}`);
  assert.deepEqual(m.rcpts, [`RCPT TO:<one@${domain}>`, `RCPT TO:<two@${domain}>`]);
  assert.equal(m.tls, false);
  assert.equal(unstuff(m.raw).toString('utf8'), BODY);
  assert.ok(m.raw.includes('\r\n..leading dot\r\n...two dots\r\n..\r\nend\r\n'), m.raw.toString());
  await s.waitFor((e) => e.event === 'command' && e.line === 'QUIT');
  const ehlo = s.commands().find((c) => c.line.startsWith('EHLO'));
  assert.equal(ehlo?.line, 'EHLO client.fulmar.test');
  await stopSink(s);
});

test('PIPELINING: MAIL, every RCPT and DATA in one write; without it, lock-step', async () => {
  const domain = freshDomain('pipe');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const withPipe = await sink([{ address: '127.0.0.2', name: 'mx', rcpt: { [`bad@${domain}`]: '550 5.1.1 no such user' } }]);
  const outcomes = await deliverMessage(request(domain, ['a', 'bad', 'c']), options(withPipe));
  assert.deepEqual(
    outcomes.map((o) => o.outcome),
    ['delivered', 'failed', 'delivered'],
  );
  const cmds = withPipe.commands().filter((c) => /^(MAIL|RCPT|DATA)/.test(c.line));
  assert.deepEqual(
    cmds.map((c) => c.line.split(' ')[0]),
    ['MAIL', 'RCPT', 'RCPT', 'RCPT', 'DATA'],
  );
  assert.equal(new Set(cmds.map((c) => c.chunk)).size, 1, `pipelined group came in reads ${cmds.map((c) => c.chunk).join(',')}`);
  await stopSink(withPipe);

  const lockStep = await sink([{ address: '127.0.0.2', name: 'mx', extensions: ['SIZE 100000', '8BITMIME'] }]);
  assertAll(await deliverMessage(request(domain, ['a', 'b']), options(lockStep)), 'delivered', /^250 /);
  const steps = lockStep.commands().filter((c) => /^(MAIL|RCPT|DATA)/.test(c.line));
  assert.equal(steps.length, 4);
  assert.equal(new Set(steps.map((c) => c.chunk)).size, 4, 'one command per read in lock-step');
  await stopSink(lockStep);
});

test('a message without a final line end gets CRLF before the dot; an empty body works', async () => {
  const domain = freshDomain('noeol');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const s = await sink([{ address: '127.0.0.2', name: 'mx' }]);
  const body = 'Subject: x\r\n\r\nno final line end';
  assertAll(await deliverMessage(request(domain, ['a'], body), options(s)), 'delivered', /^250 /);
  assert.equal(s.messages()[0]!.raw.toString(), `${body}\r\n`);
  assertAll(await deliverMessage(request(domain, ['a'], ''), options(s)), 'delivered', /^250 /);
  assert.equal(s.messages()[1]!.raw.length, 0);
  await stopSink(s);
});

test('a large message streams through with the exact bytes', async () => {
  const domain = freshDomain('large');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const s = await sink([{ address: '127.0.0.2', name: 'mx' }]);
  const line = 'x'.repeat(70) + '\r\n' + '.' + 'y'.repeat(40) + '\r\n';
  const body = Buffer.from('Subject: big\r\n\r\n' + line.repeat(40_000));
  let opened = 0;
  const req = request(domain, ['a'], body, {
    open: () => {
      opened++;
      return Readable.from(chunks(body, 65536));
    },
  });
  assertAll(await deliverMessage(req, options(s)), 'delivered', /^250 /);
  assert.equal(opened, 1);
  const m = s.messages()[0]!;
  assert.equal(m.raw.length, body.length + 40_000);
  assert.ok(unstuff(m.raw).equals(body));
  await stopSink(s);
});

// --- MX order and fallback ---------------------------------------------------------------------

test('MX order and fallback: refused connection, 421 greeting, 4xx EHLO, 421 at MAIL, then delivered', async () => {
  const domain = freshDomain('fallback');
  zone(domain, [
    { host: `mx5.${domain}`, preference: 50, a: ['127.0.0.6'] },
    { host: `mx1.${domain}`, preference: 10, a: ['127.0.0.250'] }, // nothing listens there
    { host: `mx3.${domain}`, preference: 30, a: ['127.0.0.4'] },
    { host: `mx2.${domain}`, preference: 20, a: ['127.0.0.3'] },
    { host: `mx4.${domain}`, preference: 40, a: ['127.0.0.5'] },
    { host: `mx9.${domain}`, preference: 90, a: ['127.0.0.7'] },
  ]);
  const s = await sink([
    { address: '127.0.0.3', name: 'mx2', greeting: '421 4.3.2 too busy, try later' },
    { address: '127.0.0.4', name: 'mx3', ehlo: '451 4.3.0 local trouble' },
    { address: '127.0.0.5', name: 'mx4', mail: '421 4.7.0 too many connections from you' },
    { address: '127.0.0.6', name: 'mx5' },
    { address: '127.0.0.7', name: 'mx9' },
  ]);
  const outcomes = await deliverMessage(request(domain, ['a', 'b']), options(s));
  assertAll(outcomes, 'delivered', /^250 2\.0\.0/);
  assert.equal(outcomes[0]!.remoteMta, `mx5.${domain}`);
  const order = s.events.filter((e) => e.event === 'connect').map((e) => e.server);
  assert.deepEqual(order, ['mx2', 'mx3', 'mx4', 'mx5']);
  assert.equal(s.messages().length, 1);
  assert.equal(s.messages()[0]!.server, 'mx5');
  await stopSink(s);
});

test('every host fails temporarily: all deferred with the last reason', async () => {
  const domain = freshDomain('alldown');
  zone(domain, [
    { host: `mx1.${domain}`, preference: 10, a: ['127.0.0.250'] },
    { host: `mx2.${domain}`, preference: 20, a: ['127.0.0.3'] },
  ]);
  const s = await sink([{ address: '127.0.0.3', name: 'mx2', greeting: '450 4.3.2 not now' }]);
  const outcomes = await deliverMessage(request(domain, ['a', 'b']), options(s));
  assertAll(outcomes, 'deferred', /^450 4\.3\.2 not now$/);
  assert.equal(outcomes[0]!.remoteMta, `mx2.${domain}`);
  await stopSink(s);

  // Nothing listening anywhere: the connect failure is the reason.
  const refused = await deliverMessage(request(domain, ['a']), options(null, { port: s.port }));
  assertAll(refused, 'deferred', /^451 4\.4\.1 connect to mx2\.alldown\d+\.test\[127\.0\.0\.3\]:\d+: Connection refused$/);
  assert.equal(refused[0]!.remoteMta, null);
});

test('a host with several addresses: the next address after a refused one', async () => {
  const domain = freshDomain('addrs');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.250', '127.0.0.2'] }]);
  const s = await sink([{ address: '127.0.0.2', name: 'mx' }]);
  assertAll(await deliverMessage(request(domain, ['a']), options(s)), 'delivered', /^250 /);
  await stopSink(s);
});

test('IPv6: an MX with only an AAAA record is reached over ::1', async () => {
  const domain = freshDomain('six');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, aaaa: ['::1'] }]);
  const s = await sink([{ address: '::1', name: 'mx6' }]);
  assertAll(await deliverMessage(request(domain, ['a']), options(s)), 'delivered', /^250 /);
  assert.equal(s.messages()[0]!.server, 'mx6');
  await stopSink(s);
});

test('a 5xx greeting at the last server fails; at an earlier one, the next server is tried', async () => {
  const domain = freshDomain('greet5');
  zone(domain, [
    { host: `mx1.${domain}`, preference: 10, a: ['127.0.0.2'] },
    { host: `mx2.${domain}`, preference: 20, a: ['127.0.0.3'] },
  ]);
  const s = await sink([
    { address: '127.0.0.2', name: 'mx1', greeting: '554 5.7.1 go away' },
    { address: '127.0.0.3', name: 'mx2', greeting: '554 5.7.1 you too' },
  ]);
  const outcomes = await deliverMessage(request(domain, ['a']), options(s));
  assertAll(outcomes, 'failed', /^554 5\.7\.1 you too$/);
  assert.equal(s.connections('mx1'), 1);
  assert.equal(s.connections('mx2'), 1);
  await stopSink(s);
});

// --- Per-recipient results ---------------------------------------------------------------------

for (const pipelining of [true, false]) {
  test(`mixed 250/450/550 per recipient (${pipelining ? 'pipelined' : 'lock-step'}); no other MX is tried`, async () => {
    const domain = freshDomain('mixed');
    zone(domain, [
      { host: `mx1.${domain}`, preference: 10, a: ['127.0.0.2'] },
      { host: `mx2.${domain}`, preference: 20, a: ['127.0.0.3'] },
    ]);
    const extensions = pipelining ? undefined : ['SIZE 1000000', '8BITMIME', 'ENHANCEDSTATUSCODES'];
    const s = await sink([
      {
        address: '127.0.0.2',
        name: 'mx1',
        ...(extensions ? { extensions } : {}),
        rcpt: { [`later@${domain}`]: '450 4.2.1 mailbox busy', [`gone@${domain}`]: '550-5.1.1 no such user\n550 5.1.1 really' },
      },
      { address: '127.0.0.3', name: 'mx2' },
    ]);
    const outcomes = byId(await deliverMessage(request(domain, ['ok', 'later', 'gone']), options(s)));
    assert.equal(outcomes.get(1)!.outcome, 'delivered');
    assert.equal(outcomes.get(2)!.outcome, 'deferred');
    assert.equal(outcomes.get(2)!.reply, '450 4.2.1 mailbox busy');
    assert.equal(outcomes.get(3)!.outcome, 'failed');
    assert.equal(outcomes.get(3)!.reply, '550 5.1.1 no such user really');
    for (const o of outcomes.values()) assert.equal(o.remoteMta, `mx1.${domain}`);
    assert.deepEqual(s.messages()[0]!.rcpts, [`RCPT TO:<ok@${domain}>`]);
    assert.equal(s.connections('mx2'), 0);
    await stopSink(s);
  });
}

test('no recipient accepted: no message is sent; a pipelined DATA 354 gets a lone dot', async () => {
  const domain = freshDomain('none');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  // This server answers 354 to DATA whatever happened before (rfc2920 3.1 says send a dot).
  const s = await sink([{ address: '127.0.0.2', name: 'mx', rcpt: { [`x@${domain}`]: '550 5.1.1 no' }, data: '354 go on anyway' }]);
  const outcomes = await deliverMessage(request(domain, ['x']), options(s));
  assertAll(outcomes, 'failed', /^550 5\.1\.1 no$/);
  await s.waitFor((e) => e.event === 'command' && e.line === 'QUIT');
  assert.ok(s.commands().some((c) => c.line === '.'), 'the lone dot');
  await stopSink(s);
});

test('MAIL refused: 5xx fails everyone, 4xx defers (next host tried first)', async () => {
  const domain = freshDomain('mail');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const s = await sink([{ address: '127.0.0.2', name: 'mx', mail: '553 5.7.1 sender rejected' }]);
  assertAll(await deliverMessage(request(domain, ['a', 'b']), options(s)), 'failed', /^553 5\.7\.1 sender rejected$/);
  await stopSink(s);
  const t = await sink([{ address: '127.0.0.2', name: 'mx', mail: '451 4.7.1 greylisted' }]);
  assertAll(await deliverMessage(request(domain, ['a', 'b']), options(t)), 'deferred', /^451 4\.7\.1 greylisted$/);
  await stopSink(t);
});

test('DATA refused: 4xx defers and 5xx fails the accepted recipients; end-of-data replies count', async () => {
  const domain = freshDomain('data');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const cases: Array<{ server: Partial<SinkServer>; outcome: RecipientOutcome['outcome']; reply: RegExp }> = [
    { server: { data: '451 4.3.0 try again' }, outcome: 'deferred', reply: /^451 4\.3\.0 try again$/ },
    { server: { data: '554 5.5.0 no' }, outcome: 'failed', reply: /^554 5\.5\.0 no$/ },
    { server: { dataEnd: '452 4.3.1 insufficient storage' }, outcome: 'deferred', reply: /^452 4\.3\.1/ },
    { server: { dataEnd: '550 5.7.1 spam' }, outcome: 'failed', reply: /^550 5\.7\.1 spam$/ },
  ];
  for (const c of cases) {
    const s = await sink([{ address: '127.0.0.2', name: 'mx', rcpt: { [`bad@${domain}`]: '550 5.1.1 unknown' }, ...c.server }]);
    const outcomes = byId(await deliverMessage(request(domain, ['a', 'bad']), options(s)));
    assert.equal(outcomes.get(1)!.outcome, c.outcome, JSON.stringify(c.server));
    assert.match(outcomes.get(1)!.reply, c.reply);
    assert.equal(outcomes.get(2)!.outcome, 'failed');
    await stopSink(s);
  }
});

// --- What the message needs ---------------------------------------------------------------------

test('SIZE: a message larger than the remote limit fails before MAIL', async () => {
  const domain = freshDomain('size');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const s = await sink([{ address: '127.0.0.2', name: 'mx', extensions: ['PIPELINING', 'SIZE 50'] }]);
  const outcomes = await deliverMessage(request(domain, ['a', 'b']), options(s));
  assertAll(outcomes, 'failed', /^552 5\.3\.4 message size \d+ exceeds size limit 50 of server mx\.size\d+\.test\[127\.0\.0\.2\]:\d+$/);
  await s.waitFor((e) => e.event === 'close');
  assert.ok(!s.commands().some((c) => c.line.startsWith('MAIL')));
  await stopSink(s);
});

test('8BITMIME: required and missing fails (554 5.6.3); offered, BODY=8BITMIME and the bytes as they are', async () => {
  const domain = freshDomain('eight');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const body = Buffer.from('Subject: caf\u00e9\r\n\r\n\u00e9t\u00e9 \u20ac\r\n', 'utf8');
  const s = await sink([{ address: '127.0.0.2', name: 'mx', extensions: ['PIPELINING', 'SIZE 100000'] }]);
  assertAll(await deliverMessage(request(domain, ['a'], body, { needs8BitMime: true }), options(s)), 'failed', /^554 5\.6\.3 /);
  assert.ok(!s.commands().some((c) => c.line.startsWith('MAIL')));
  await stopSink(s);
  const t = await sink([{ address: '127.0.0.2', name: 'mx' }]);
  assertAll(await deliverMessage(request(domain, ['a'], body, { needs8BitMime: true }), options(t)), 'delivered', /^250 /);
  const m = t.messages()[0]!;
  assert.equal(m.mail, `MAIL FROM:<sender@origin.test> SIZE=${body.length} BODY=8BITMIME`);
  assert.ok(m.raw.equals(body));
  await stopSink(t);
});

test('SMTPUTF8: required and missing fails (553 5.6.7); offered, the parameter and UTF-8 addresses', async () => {
  const domain = freshDomain('utf');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const s = await sink([{ address: '127.0.0.2', name: 'mx', extensions: ['PIPELINING', '8BITMIME'] }]);
  const req = request(domain, ['j\u00f6rg'], BODY, { mailFrom: 'gr\u00fc\u00dfe@origin.test' });
  assertAll(await deliverMessage(req, options(s)), 'failed', /^553 5\.6\.7 SMTPUTF8 is required/);
  await stopSink(s);
  const t = await sink([{ address: '127.0.0.2', name: 'mx' }]);
  assertAll(await deliverMessage(req, options(t)), 'delivered', /^250 /);
  const m = t.messages()[0]!;
  assert.equal(m.mail, `MAIL FROM:<gr\u00fc\u00dfe@origin.test> SIZE=${Buffer.byteLength(BODY)} SMTPUTF8`);
  assert.deepEqual(m.rcpts, [`RCPT TO:<j\u00f6rg@${domain}>`]);
  await stopSink(t);
});

test('DSN: RET, ENVID, NOTIFY and ORCPT passed on when offered (dsnRelayed); dropped when not', async () => {
  const domain = freshDomain('dsn');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const req = request(domain, ['a', 'b', 'c'], BODY, { mailFrom: '', envId: 'QQ314159+x', ret: 'HDRS' });
  req.recipients[0]!.notify = 'SUCCESS,FAILURE';
  req.recipients[0]!.orcpt = 'rfc822;Original+Name=x@elsewhere.test';
  req.recipients[1]!.notify = 'NEVER';
  // rfc6533 3: utf-8 addresses as utf-8-addr-xtext; a malformed NOTIFY is not passed on.
  req.recipients[2]!.orcpt = 'utf-8;j\u00f6rg+1@elsewhere.test';
  req.recipients[2]!.notify = 'SOMETIMES';
  const s = await sink([{ address: '127.0.0.2', name: 'mx' }]);
  const outcomes = await deliverMessage(req, options(s));
  assertAll(outcomes, 'delivered', /^250 /);
  assert.ok(outcomes.every((o) => o.dsnRelayed));
  const m = s.messages()[0]!;
  assert.equal(m.mail, `MAIL FROM:<> SIZE=${Buffer.byteLength(BODY)} RET=HDRS ENVID=QQ314159+2Bx`);
  assert.deepEqual(m.rcpts, [
    `RCPT TO:<a@${domain}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Original+2BName+3Dx@elsewhere.test`,
    `RCPT TO:<b@${domain}> NOTIFY=NEVER`,
    `RCPT TO:<c@${domain}> ORCPT=utf-8;j\\x{F6}rg\\x{2B}1@elsewhere.test`,
  ]);
  await stopSink(s);
  const t = await sink([{ address: '127.0.0.2', name: 'mx', extensions: ['PIPELINING', 'SIZE 100000'] }]);
  const plain = await deliverMessage(req, options(t));
  assert.ok(plain.every((o) => o.outcome === 'delivered' && !o.dsnRelayed));
  assert.equal(t.messages()[0]!.mail, `MAIL FROM:<> SIZE=${Buffer.byteLength(BODY)}`);
  assert.deepEqual(t.messages()[0]!.rcpts, [`RCPT TO:<a@${domain}>`, `RCPT TO:<b@${domain}>`, `RCPT TO:<c@${domain}>`]);
  await stopSink(t);
});

test('EHLO refused with 5xx: HELO, and no extensions used', async () => {
  const domain = freshDomain('helo');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const s = await sink([{ address: '127.0.0.2', name: 'mx', ehlo: '502 5.5.2 Error: command not recognized' }]);
  assertAll(await deliverMessage(request(domain, ['a']), options(s)), 'delivered', /^250 /);
  assert.ok(s.commands().some((c) => c.line === 'HELO client.fulmar.test'));
  assert.equal(s.messages()[0]!.mail, 'MAIL FROM:<sender@origin.test>');
  await stopSink(s);
});

test('bad envelope addresses fail without a connection', async () => {
  const domain = freshDomain('bad');
  const req = request(domain, ['ok', 'a>b', 'c\r\nRSET']);
  const outcomes = byId(await deliverMessage(req, options(null)));
  assert.match(outcomes.get(2)!.reply, /^553 5\.1\.3 /);
  assert.match(outcomes.get(3)!.reply, /^553 5\.1\.3 /);
  // The good one: no DNS entry for this domain.
  assert.match(outcomes.get(1)!.reply, /^550 5\.1\.2 /);
  const bad = await deliverMessage(request(domain, ['a'], BODY, { mailFrom: 'x\ny@z' }), options(null));
  assertAll(bad, 'failed', /^553 5\.1\.7 /);
});

// --- TLS ---------------------------------------------------------------------------------------

test('STARTTLS is used whenever offered, then EHLO again', async () => {
  const domain = freshDomain('tls');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const s = await sink([{ address: '127.0.0.2', name: 'mx', extensions: ['PIPELINING', 'STARTTLS', '8BITMIME'] }]);
  assertAll(await deliverMessage(request(domain, ['a']), options(s)), 'delivered', /^250 /);
  const m = s.messages()[0]!;
  assert.equal(m.tls, true);
  assert.match(m.tlsVersion ?? '', /^TLSv1\.[23]$/);
  const lines = s.commands().map((c) => `${c.tls ? 'tls ' : ''}${c.line.split(' ')[0]}`);
  assert.deepEqual(lines.slice(0, 4), ['EHLO', 'STARTTLS', 'tls EHLO', 'tls MAIL']);
  await stopSink(s);
});

test('an opportunistic TLS handshake that fails is retried at once without TLS', async () => {
  for (const tlsBreak of ['garbage', 'close'] as const) {
    const domain = freshDomain('tlsbreak');
    zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
    const s = await sink([{ address: '127.0.0.2', name: 'mx', extensions: ['PIPELINING', 'STARTTLS'], tlsBreak }]);
    assertAll(await deliverMessage(request(domain, ['a']), options(s)), 'delivered', /^250 /);
    assert.equal(s.connections('mx'), 2);
    const m = s.messages()[0]!;
    assert.equal(m.tls, false);
    assert.ok(!s.commands().some((c) => c.conn === m.conn && c.line === 'STARTTLS'), 'no STARTTLS on the second connection');
    await stopSink(s);
  }
});

test('TLS required: missing STARTTLS, an untrusted or wrong-name certificate defer; a valid one delivers', async () => {
  const domain = freshDomain('req');
  zone(domain, [{ host: `mx1.tls.test`, preference: 10, a: ['127.0.0.2'] }]);
  const req = request(domain, ['a']);
  const none = await sink([{ address: '127.0.0.2', name: 'mx', extensions: ['PIPELINING'] }]);
  assertAll(await deliverMessage(req, options(none, { tlsPolicy: 'required' })), 'deferred', /^451 4\.7\.4 TLS is required, but was not offered by host mx1\.tls\.test/);
  assert.equal(none.messages().length, 0);
  await stopSink(none);

  const s = await sink([{ address: '127.0.0.2', name: 'mx', extensions: ['PIPELINING', 'STARTTLS'] }]);
  // Self-signed and not trusted.
  const untrusted = await deliverMessage(req, options(s, { tlsPolicy: 'required' }));
  assertAll(untrusted, 'deferred', /^451 4\.7\.5 TLS handshake with mx1\.tls\.test\[127\.0\.0\.2\]:\d+ failed: .*self[- ]signed/i);
  assert.equal(s.messages().length, 0);
  // Trusted, and the certificate names mx1.tls.test.
  assertAll(await deliverMessage(req, options(s, { tlsPolicy: 'required', tlsCa: [cert.certPem] })), 'delivered', /^250 /);
  assert.equal(s.messages()[0]!.tls, true);
  // Trusted, but the MX has another name than the certificate.
  const other = freshDomain('req');
  zone(other, [{ host: `mx.${other}`, preference: 10, a: ['127.0.0.2'] }]);
  const wrongName = await deliverMessage(request(other, ['a']), options(s, { tlsPolicy: 'required', tlsCa: [cert.certPem] }));
  assertAll(wrongName, 'deferred', /^451 4\.7\.5 .*(altnames|does not match)/i);
  assert.equal(s.messages().length, 1);
  await stopSink(s);
});

// --- Smarthost ---------------------------------------------------------------------------------

test('smarthost: AUTH PLAIN over STARTTLS, no MX lookup', async () => {
  const s = await sink([
    { address: '127.0.0.2', name: 'relay', extensions: ['PIPELINING', 'STARTTLS', 'AUTH PLAIN LOGIN', '8BITMIME'], auth: { user: 'relay-user', password: 'p\u00e4ss word' } },
  ]);
  const smarthost = { host: '127.0.0.2', port: s.port, tls: 'starttls' as const, username: 'relay-user', password: 'p\u00e4ss word' };
  // The domain is not in the DNS at all: a smarthost needs no lookup.
  const outcomes = await deliverMessage(request('nowhere.invalid', ['a', 'b']), options(null, { smarthost }));
  assertAll(outcomes, 'delivered', /^250 /);
  assert.equal(outcomes[0]!.remoteMta, '127.0.0.2');
  const auth = await s.waitFor((e) => e.event === 'auth');
  assert.equal(auth.tls, true);
  assert.equal(s.messages()[0]!.auth, 'relay-user');
  assert.ok(!dns.queries.some((q) => q.name === 'nowhere.invalid'));

  // A wrong password defers everything with the server's answer; nothing is sent.
  const bad = await deliverMessage(request('nowhere.invalid', ['a']), options(null, { smarthost: { ...smarthost, password: 'wrong' } }));
  assertAll(bad, 'deferred', /^451 4\.7\.0 SASL authentication failed; server 127\.0\.0\.2\[127\.0\.0\.2\]:\d+ said: 535 5\.7\.8/);
  assert.equal(s.messages().length, 1);
  await stopSink(s);
});

test('smarthost: AUTH LOGIN when only LOGIN is offered; implicit TLS', async () => {
  const s = await sink([
    { address: '127.0.0.2', name: 'login', extensions: ['STARTTLS', 'AUTH LOGIN'], auth: { user: 'u', password: 'pw' } },
    { address: '127.0.0.3', name: 'implicit', implicitTls: true, extensions: ['AUTH PLAIN'], auth: { user: 'u', password: 'pw' } },
  ]);
  const login = await deliverMessage(request('x.test', ['a']), options(null, { smarthost: { host: '127.0.0.2', port: s.port, tls: 'starttls', username: 'u', password: 'pw' } }));
  assertAll(login, 'delivered', /^250 /);
  assert.ok(s.commands('login').some((c) => c.line === 'AUTH LOGIN' && c.tls));
  const implicit = await deliverMessage(request('x.test', ['a']), options(null, { smarthost: { host: '127.0.0.3', port: s.port, tls: 'implicit', username: 'u', password: 'pw' } }));
  assertAll(implicit, 'delivered', /^250 /);
  assert.equal(s.messages('implicit')[0]!.tls, true);
  assert.equal(s.messages('implicit')[0]!.auth, 'u');
  await stopSink(s);
});

test('smarthost: no credentials without TLS; tls none sends them in plain text when told to', async () => {
  const s = await sink([{ address: '127.0.0.2', name: 'plain', extensions: ['AUTH PLAIN'], auth: { user: 'u', password: 'pw' } }]);
  const starttls = await deliverMessage(request('x.test', ['a']), options(null, { smarthost: { host: '127.0.0.2', port: s.port, tls: 'starttls', username: 'u', password: 'pw' } }));
  assertAll(starttls, 'deferred', /^451 4\.7\.4 TLS is required, but was not offered/);
  assert.ok(!s.commands().some((c) => c.line.startsWith('AUTH')));
  const none = await deliverMessage(request('x.test', ['a']), options(null, { smarthost: { host: '127.0.0.2', port: s.port, tls: 'none', username: 'u', password: 'pw' } }));
  assertAll(none, 'delivered', /^250 /);
  await stopSink(s);
});

// --- DNS outcomes ------------------------------------------------------------------------------

test('null MX fails at once (556 5.1.10); NXDOMAIN fails (550 5.1.2); SERVFAIL defers (451 4.4.3)', async () => {
  const nullMx = freshDomain('nullmx');
  dns.set(nullMx, { mx: [{ exchange: '', preference: 0 }], a: ['127.0.0.2'] });
  assertAll(await deliverMessage(request(nullMx, ['a', 'b']), options(null)), 'failed', /^556 5\.1\.10 /);
  assertAll(await deliverMessage(request(freshDomain('nx'), ['a']), options(null)), 'failed', /^550 5\.1\.2 Host or domain name not found/);
  const broken = freshDomain('servfail');
  dns.servfail.add(broken);
  assertAll(await deliverMessage(request(broken, ['a']), options(null)), 'deferred', /^451 4\.4\.3 /);
  // MX hosts that do not exist: the domain is broken (550 5.4.4), as Postfix bounces it.
  const dangling = freshDomain('dangling');
  dns.set(dangling, { mx: [{ exchange: `nope.${dangling}`, preference: 10 }] });
  assertAll(await deliverMessage(request(dangling, ['a']), options(null)), 'failed', /^550 5\.4\.4 no MX host/);
  // ... but an MX host whose lookup fails defers.
  const flaky = freshDomain('flaky');
  dns.set(flaky, { mx: [{ exchange: `mx.${flaky}`, preference: 10 }] });
  dns.servfail.add(`mx.${flaky}`);
  assertAll(await deliverMessage(request(flaky, ['a']), options(null)), 'deferred', /^451 4\.4\.3 /);
});

test('implicit MX: no MX record, the domain address is used', async () => {
  const domain = freshDomain('implicit');
  dns.set(domain, { a: ['127.0.0.2'] });
  const s = await sink([{ address: '127.0.0.2', name: 'direct' }]);
  assertAll(await deliverMessage(request(domain, ['a']), options(s)), 'delivered', /^250 /);
  await stopSink(s);
});

test('mail loops back to myself: our own name as the best MX fails; as a backup, only better MX hosts are tried', async () => {
  const domain = freshDomain('loop');
  zone(domain, [{ host: 'client.fulmar.test', preference: 10, a: ['127.0.0.2'] }]);
  assertAll(await deliverMessage(request(domain, ['a']), options(null)), 'failed', /^554 5\.4\.6 mail for loop\d+\.test loops back to myself$/);
  const backup = freshDomain('loop');
  zone(backup, [
    { host: `primary.${backup}`, preference: 10, a: ['127.0.0.250'] },
    { host: 'CLIENT.fulmar.test.', preference: 20, a: ['127.0.0.2'] },
    { host: `worse.${backup}`, preference: 30, a: ['127.0.0.3'] },
  ]);
  const s = await sink([{ address: '127.0.0.3', name: 'worse' }]);
  assertAll(await deliverMessage(request(backup, ['a']), options(s)), 'deferred', /^451 4\.4\.1 connect to primary\./);
  assert.equal(s.connections('worse'), 0);
  await stopSink(s);
});

// --- Time limits and local failures ------------------------------------------------------------

test('a server that never answers: deferred within the configured time limit', async () => {
  const domain = freshDomain('silent');
  zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.2'] }]);
  const s = await sink([{ address: '127.0.0.2', name: 'mx', stall: 'greeting' }]);
  const started = Date.now();
  const outcomes = await deliverMessage(request(domain, ['a']), options(s, { timeouts: { greetingMs: 400 } }));
  const elapsed = Date.now() - started;
  assertAll(outcomes, 'deferred', /^451 4\.4\.2 conversation with mx\.silent\d+\.test\[127\.0\.0\.2\]:\d+ timed out while receiving the initial server greeting$/);
  assert.ok(elapsed >= 350 && elapsed < 3000, `took ${elapsed} ms`);
  await stopSink(s);

  const rcpt = await sink([{ address: '127.0.0.2', name: 'mx', stall: 'RCPT' }]);
  const t0 = Date.now();
  assertAll(await deliverMessage(request(domain, ['a']), options(rcpt, { timeouts: { commandMs: 300 } })), 'deferred', /timed out while sending RCPT TO$/);
  assert.ok(Date.now() - t0 < 3000);
  await stopSink(rcpt);
});

test('no reply after the end of data: deferred ("may be sent more than once"), no other MX tried', async () => {
  const domain = freshDomain('dotstall');
  zone(domain, [
    { host: `mx1.${domain}`, preference: 10, a: ['127.0.0.2'] },
    { host: `mx2.${domain}`, preference: 20, a: ['127.0.0.3'] },
  ]);
  const s = await sink([
    { address: '127.0.0.2', name: 'mx1', stall: 'dataEnd' },
    { address: '127.0.0.3', name: 'mx2' },
  ]);
  const outcomes = await deliverMessage(request(domain, ['a']), options(s, { timeouts: { dataEndMs: 300 } }));
  assertAll(outcomes, 'deferred', /timed out while sending end of data -- message may be sent more than once$/);
  assert.equal(s.connections('mx2'), 0);
  await stopSink(s);
});

test('a message that cannot be read: the connection is dropped without the final dot', async () => {
  const domain = freshDomain('readerr');
  zone(domain, [
    { host: `mx1.${domain}`, preference: 10, a: ['127.0.0.2'] },
    { host: `mx2.${domain}`, preference: 20, a: ['127.0.0.3'] },
  ]);
  const s = await sink([
    { address: '127.0.0.2', name: 'mx1' },
    { address: '127.0.0.3', name: 'mx2' },
  ]);
  const req = request(domain, ['a'], BODY, {
    open: () =>
      new Readable({
        read() {
          this.push(Buffer.from('Subject: x\r\n\r\npartial\r\n'));
          this.destroy(new Error('disk on fire'));
        },
      }),
  });
  const outcomes = await deliverMessage(req, options(s));
  assertAll(outcomes, 'deferred', /^451 4\.3\.0 local error while sending message body: could not read the message: disk on fire$/);
  await s.waitFor((e) => e.event === 'close');
  assert.equal(s.messages().length, 0);
  assert.equal(s.connections('mx2'), 0);
  await stopSink(s);
});

test('a server that sends garbage or endless lines is dropped (next address), not believed', async () => {
  const domain = freshDomain('garbage');
  zone(domain, [
    { host: `mx1.${domain}`, preference: 10, a: ['127.0.0.2'] },
    { host: `mx2.${domain}`, preference: 20, a: ['127.0.0.3'] },
  ]);
  const s = await sink([
    { address: '127.0.0.2', name: 'mx1', ehlo: `250-mx1\n${'250-X\n'.repeat(150)}250 END` },
    { address: '127.0.0.3', name: 'mx2', greeting: `220 ${'x'.repeat(10_000)}` },
  ]);
  const outcomes = await deliverMessage(request(domain, ['a']), options(s));
  assertAll(outcomes, 'deferred', /^451 4\.5\.0 mx2\.garbage\d+\.test\[127\.0\.0\.3\]:\d+ broke the protocol while receiving the initial server greeting: reply line longer than 4096 bytes$/);
  assert.equal(s.connections('mx1'), 1);
  await stopSink(s);
});

// --- Fulmar as the receiving server ------------------------------------------------------------

test('Fulmar itself as the peer: delivered into the mailbox, with STARTTLS and PIPELINING', async () => {
  const domain = freshDomain('fulmar');
  const { f, admin } = await startServer(domain);
  try {
    // The server's own DNS lookups (SPF and the like) go to the test DNS server, not the world.
    await admin.set('dns.servers', dns.address);
    await admin.addUsers([`alice@${domain}`, `bob@${domain}`]);
    zone(domain, [{ host: `mx.${domain}`, preference: 10, a: ['127.0.0.1'] }]);
    const body = `From: sender@origin.test\r\nTo: alice@${domain}\r\nSubject: through the client\r\nMessage-ID: <c1@origin.test>\r\n\r\nHello.\r\n.a line with a dot\r\n`;
    const outcomes = byId(await deliverMessage(request(domain, ['alice', 'bob', 'nobody'], body), options(null, { port: f.ports.smtp })));
    assert.equal(outcomes.get(1)!.outcome, 'delivered', outcomes.get(1)!.reply);
    assert.equal(outcomes.get(2)!.outcome, 'delivered');
    assert.equal(outcomes.get(3)!.outcome, 'failed');
    assert.match(outcomes.get(3)!.reply, /^550 5\.1\.1 /);
    assert.match(outcomes.get(1)!.reply, /^250 2\.0\.0 /);
    const store = await f.openStore();
    try {
      const [text] = await readMailbox(store, `alice@${domain}`);
      assert.ok(text?.endsWith(body), text);
    } finally {
      await store.close();
    }
    const starttls = f.events('smtp.starttls');
    assert.equal(starttls.length, 1, 'the server saw one STARTTLS');
    assert.match(String(starttls[0]!.tls), /^TLSv1\.[23]$/);
    assert.equal(f.events('smtp.starttls_pipelined').length, 0);
  } finally {
    await stopServer(f, admin);
  }
});

// --- Hostile servers ---------------------------------------------------------------------------

/** A small seeded PRNG (mulberry32), so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('hostile servers: random replies, garbage, resets and stalls never throw, leak or lose a recipient', async () => {
  const seed = Number(process.env.SMTP_CLIENT_FUZZ_SEED ?? Date.now() % 100_000);
  const random = prng(seed);
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
  const replies = ['220 hi', '250 ok', '250-a\r\n250 b', '354 go', '421 4.3.2 bye', '450 4.0.0 later', '550 5.0.0 no', '503 bad', '334 VXNlcm5hbWU6', '235 ok', '221 bye', '2', '999 what', '250-', '\x00\xff', ''];
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const act = (): void => {
      const r = random();
      if (r < 0.05) socket.destroy();
      else if (r < 0.1) socket.end();
      else if (r < 0.15) socket.write(Buffer.from(Array.from({ length: Math.floor(random() * 600) }, () => Math.floor(random() * 256))));
      else if (r < 0.2) return; // stall
      else socket.write(`${pick(replies)}\r\n`);
    };
    socket.write(random() < 0.8 ? '220 fuzz ESMTP\r\n' : `${pick(replies)}\r\n`);
    socket.on('data', (d) => {
      for (let i = 0; i < d.toString('latin1').split('\n').length - 1; i++) act();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.2', resolve));
  const port = (server.address() as { port: number }).port;
  const domain = freshDomain('fuzz');
  zone(domain, [
    { host: `mx1.${domain}`, preference: 10, a: ['127.0.0.2'] },
    { host: `mx2.${domain}`, preference: 20, a: ['127.0.0.2', '127.0.0.250'] },
  ]);
  let unhandled: unknown = null;
  const onUnhandled = (err: unknown): void => {
    unhandled = err;
  };
  process.on('unhandledRejection', onUnhandled);
  try {
    const rounds = Number(process.env.SMTP_CLIENT_FUZZ_ROUNDS ?? 60);
    for (let i = 0; i < rounds; i++) {
      const smarthost = i % 10 === 9 ? { host: '127.0.0.2', port, tls: 'none' as const, username: 'u', password: 'p' } : null;
      const outcomes = await deliverMessage(
        request(domain, ['a', 'b', 'c'], BODY, { needs8BitMime: random() < 0.2 }),
        options(null, { port, smarthost, timeouts: { connectMs: 500, greetingMs: 150, commandMs: 150, dataBlockMs: 150, dataEndMs: 150 } }),
      );
      assert.equal(outcomes.length, 3, `seed ${seed}, round ${i}`);
      for (const o of outcomes) {
        assert.match(o.reply, /^[245]\d\d [245]\.\d{1,3}\.\d{1,3}( |$)/, `seed ${seed}, round ${i}: ${o.reply}`);
        assert.ok(['delivered', 'deferred', 'failed'].includes(o.outcome));
      }
    }
    // Every client socket is closed once deliverMessage resolved (the server side sees it soon).
    const deadline = Date.now() + 2000;
    while (sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(sockets.size, 0, `seed ${seed}: ${sockets.size} connections still open`);
    assert.equal(unhandled, null, `seed ${seed}: unhandled rejection ${String(unhandled)}`);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    server.close();
  }
});

test('smarthost with implicit TLS that does not speak TLS: deferred with the handshake failure', async () => {
  const s = await sink([{ address: '127.0.0.2', name: 'plain' }]);
  const outcomes = await deliverMessage(
    request('x.test', ['a']),
    options(null, { smarthost: { host: '127.0.0.2', port: s.port, tls: 'implicit', username: 'u', password: 'pw' }, timeouts: { commandMs: 1000 } }),
  );
  assertAll(outcomes, 'deferred', /^451 4\.7\.5 TLS handshake with 127\.0\.0\.2\[127\.0\.0\.2\]:\d+ failed: /);
  assert.ok(!s.commands().some((c) => c.line.startsWith('AUTH')));
  await stopSink(s);
});
