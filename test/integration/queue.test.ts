/**
 * The outbound queue end to end, through the real server: mail submitted on the submission port
 * (smtplib, STARTTLS, AUTH) or forwarded by an alias on port 25 goes through the queue to
 * receiving servers we did not write (the Python sink of smtp-sink.ts), found through a real DNS
 * server on loopback (dns.servers) on one remote port (delivery.remote_port). Bounces and other
 * DSNs are read from the sender's mailbox (or the sink, for a remote sender) and parsed by
 * Python's email package.
 *
 * One server for the file. Each test has its own destination domains, sink addresses and
 * accounts, sets the queue settings it needs, and leaves the queue empty.
 *
 * Expiry: queue.max_age cannot go below 60 s, so the expiry test moves the message's arrival
 * time back in the store (the only thing the test fakes) and lets the real worker decide.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { dkimVerify } from 'mailauth';
import type { Store } from '../../src/store/types.js';
import { TestDnsServer } from './dns-server.js';
import { FulmarProcess, readMailbox } from './harness.js';
import { field, parseDsn, queueIdOf, submit, textMessage, until, type ParsedDsn } from './queue-helpers.js';
import { Admin, cliAsync, unique } from './smtp-wire.js';
import { makeCertificate, SmtpSink, unstuff, type SinkServer } from './smtp-sink.js';

/** Our domain; the server's hostname is mx.fulmar.test, so double bounces go to postmaster@ here. */
const LOCAL = 'fulmar.test';
const HOSTNAME = 'mx.fulmar.test';
const PASSWORD = 'queue-secret';

let f: FulmarProcess;
let admin: Admin;
let store: Store;
const dns = new TestDnsServer();
let cert: Awaited<ReturnType<typeof makeCertificate>>;
let scratch: string;
let sinks: SmtpSink[] = [];

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'fulmar-queue-'));
  await dns.start();
  cert = await makeCertificate(['smarthost.queue.test', 'mx.queue.test']);
  f = await FulmarProcess.create({ hostname: HOSTNAME });
  admin = await Admin.open(f);
  await admin.addDomain(LOCAL);
  await admin.addUsers([`postmaster@${LOCAL}`], PASSWORD);
  await admin.set('dns.servers', dns.address);
  await f.start();
  store = await f.openStore();
});

after(async () => {
  await store?.close();
  await admin?.close();
  for (const s of sinks) await s.stop();
  const code = await f?.stop();
  f?.cleanup();
  await dns.stop();
  cert?.cleanup();
  rmSync(scratch, { recursive: true, force: true });
  assert.equal(code, 0, 'the server exits cleanly on SIGTERM');
});

// Every test leaves the queue empty (a leftover would be retried against the next test's sink)
// and the queue settings as they were.
const QUEUE_SETTINGS = ['queue.retry_schedule', 'queue.delay_warning', 'queue.max_age', 'delivery.smarthost', 'delivery.smarthost_tls', 'delivery.smarthost_user', 'delivery.smarthost_password'];
afterEach(async () => {
  for (const m of await store.queue.listQueued()) await store.queue.deleteQueued(m.id).catch(() => undefined);
  for (const k of QUEUE_SETTINGS) await admin.unset(k);
  for (const s of sinks) await s.stop();
  sinks = [];
});

// --- Helpers -------------------------------------------------------------------------------------

/** Loopback addresses, one per sink server or unused MX host, never reused within the file. */
let nextAddress = 2;
function loopback(): string {
  if (nextAddress > 250) throw new Error('out of loopback addresses');
  return `127.0.0.${nextAddress++}`;
}

/** A fresh remote domain with MX records pointing at the given addresses (host mxN.domain). */
function remoteDomain(label: string, mx: Array<{ address: string; preference: number; host?: string }> = []): string {
  const domain = `${unique(label)}.remote.test`;
  setMx(domain, mx);
  return domain;
}

function setMx(domain: string, mx: Array<{ address: string; preference: number; host?: string }>): void {
  dns.set(domain, { mx: mx.map((m, i) => ({ exchange: m.host ?? `mx${i + 1}.${domain}`, preference: m.preference })) });
  mx.forEach((m, i) => dns.set(m.host ?? `mx${i + 1}.${domain}`, { a: [m.address] }));
}

/** Starts sink servers and points delivery.remote_port at them. */
async function sink(servers: SinkServer[]): Promise<SmtpSink> {
  const s = await SmtpSink.start(servers, { tls: { cert: cert.cert, key: cert.key } });
  sinks.push(s);
  await admin.set('delivery.remote_port', String(s.port));
  return s;
}

/** A fresh local user who submits mail. */
async function localUser(label: string): Promise<string> {
  const address = `${unique(label)}@${LOCAL}`;
  await admin.addUsers([address], PASSWORD);
  return address;
}

/** Submission port, STARTTLS, AUTH PLAIN as `from`; returns the queue id. */
async function send(
  from: string,
  to: string[],
  body: string | Buffer,
  options: { mailOptions?: string[]; rcptOptions?: Record<string, string[]> } = {},
): Promise<number> {
  const r = await submit({ port: f.ports.submission, user: from, password: PASSWORD, from, to, body, ...options });
  assert.equal(r.mail[0], 250, `MAIL: ${r.mail[1]}`);
  r.rcpt.forEach((x, i) => assert.equal(x[0], 250, `RCPT ${to[i]}: ${x[1]}`));
  return queueIdOf(f, r.data);
}

async function inbox(address: string): Promise<string[]> {
  return readMailbox(store, address);
}

/** Waits for the `n`-th message in an INBOX and parses it as a DSN. */
async function nthDsn(address: string, n = 1, timeoutMs = 20_000): Promise<{ raw: string; dsn: ParsedDsn }> {
  const raw = (await until(`message ${n} in ${address}'s INBOX`, async () => (await inbox(address))[n - 1], timeoutMs))!;
  return { raw, dsn: await parseDsn(raw) };
}

/** The queue entry, or null once every recipient is done. */
function queued(id: number): ReturnType<Store['queue']['getQueued']> {
  return store.queue.getQueued(id);
}

async function gone(id: number, timeoutMs = 20_000): Promise<void> {
  await until(`queue entry ${id} to leave the queue`, async () => (await queued(id)) === null, timeoutMs);
}

/** Waits until the recipient's status in the queue is `status`; returns the recipient. */
async function recipientState(id: number, address: string, status: string, timeoutMs = 20_000) {
  return until(`${address} of queue entry ${id} to be ${status}`, async () => {
    const m = await queued(id);
    const r = m?.recipients.find((x) => x.address === address);
    return r && r.status === status ? r : null;
  }, timeoutMs);
}

/** Checks the RFC 3464 shape every notification shares; returns its per-recipient blocks. */
function assertReport(dsn: ParsedDsn, to: string): Array<Record<string, string[]>> {
  assert.equal(dsn.contentType, 'multipart/report');
  assert.equal(dsn.reportType, 'delivery-status');
  assert.deepEqual(dsn.defects, []);
  assert.equal(dsn.parts[0], 'text/plain');
  assert.equal(dsn.parts[1], 'message/delivery-status');
  assert.ok(dsn.parts.length === 2 || dsn.parts.length === 3, `parts: ${dsn.parts.join(', ')}`);
  assert.match(field(dsn.headers, 'From'), new RegExp(`MAILER-DAEMON@${HOSTNAME.replace(/\./g, '\\.')}`, 'i'));
  assert.equal(field(dsn.headers, 'To'), `<${to}>`);
  assert.equal(field(dsn.headers, 'Auto-Submitted'), 'auto-replied');
  assert.equal(field(dsn.headers, 'MIME-Version'), '1.0');
  assert.ok(!Number.isNaN(Date.parse(field(dsn.headers, 'Date'))), 'a Date header');
  assert.match(field(dsn.headers, 'Message-ID'), /^<[^<>@\s]+@[^<>@\s]+>$/);
  assert.equal(field(dsn.perMessage, 'Reporting-MTA'), `dns; ${HOSTNAME}`);
  assert.ok(field(dsn.perMessage, 'Arrival-Date'));
  assert.ok(dsn.perRecipient && dsn.perRecipient.length > 0);
  return dsn.perRecipient!;
}

/** Log events named `name` logged after line `mark` (queue ids are not unique over time). */
function eventsSince(mark: number, name: string): Array<Record<string, unknown>> {
  return f.logLines
    .slice(mark)
    .filter((l) => l.includes(`"event":"${name}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The Return-Path our local delivery put on a notification: the null sender. */
function assertNullSender(raw: string): void {
  assert.match(raw, /^Return-Path: <>\r\n/m);
}

// --- MX order and fallback -----------------------------------------------------------------------

test('MX order and fallback: a refused connection and a 421 greeting, then the third MX takes the mail', async () => {
  const [dead, busy, good, worse] = [loopback(), loopback(), loopback(), loopback()];
  const domain = remoteDomain('fallback', [
    { address: worse, preference: 40 },
    { address: good, preference: 30 },
    { address: dead, preference: 10 }, // nothing listens there
    { address: busy, preference: 20 },
  ]);
  const s = await sink([
    { address: busy, name: 'busy', greeting: '421 4.3.2 too busy, come back later' },
    { address: good, name: 'good', extensions: ['PIPELINING', 'SIZE 10240000', '8BITMIME', 'ENHANCEDSTATUSCODES', 'DSN', 'STARTTLS'] },
    { address: worse, name: 'worse' },
  ]);
  const from = await localUser('fb');
  const mark = f.logLines.length;
  const rcpt = `someone@${domain}`;
  const body = textMessage(from, rcpt, 'MX fallback');
  const id = await send(from, [rcpt], body);
  const msg = await s.waitFor((e) => e.event === 'message' && e.server === 'good', 20_000);
  await gone(id);
  const connects = s.events.filter((e) => e.event === 'connect').map((e) => e.server);
  assert.deepEqual(connects, ['busy', 'good'], 'preference order; the worse MX is never tried');
  const [m] = s.messages('good');
  assert.equal(m!.mail.replace(/> .*$/, '>'), `MAIL FROM:<${from}>`);
  assert.deepEqual(m!.rcpts.map((r) => r.replace(/> .*$/, '>')), [`RCPT TO:<${rcpt}>`]);
  const text = unstuff(m!.raw).toString('utf8');
  assert.ok(text.endsWith(body), 'the message arrives byte for byte (after our trace header)');
  assert.match(text, new RegExp(`^Received: from [^\\r\\n]*\\r\\n(?:[ \\t][^\\r\\n]*\\r\\n)*`), 'our Received header on top');
  assert.equal(msg.answered, true);
  const ehlo = s.commands('good').find((c) => c.line.startsWith('EHLO'));
  assert.equal(ehlo?.line, `EHLO ${HOSTNAME}`);
  assert.ok(s.commands('good').some((c) => c.line === 'STARTTLS'), 'STARTTLS used when offered');
  assert.equal(m!.tls, true);
  const delivered = eventsSince(mark, 'queue.delivered').find((e) => e.queueId === id);
  assert.equal(delivered?.relay, `mx2.${domain}`);
  assert.deepEqual(await inbox(from), [], 'no notification for a delivered message');
});

// --- Per-recipient results, 4xx then `fulmar queue retry`, 5xx bounce ------------------------------

test('mixed results: 250 delivered, 550 bounced at once (RFC 3464, message attached), 450 deferred until `fulmar queue retry`', async () => {
  await admin.set('queue.retry_schedule', '1h'); // only `fulmar queue retry` brings it back
  const [first, second] = [loopback(), loopback()];
  const domain = remoteDomain('mixed', [{ address: first, preference: 10 }]);
  const s = await sink([
    {
      address: first,
      name: 'first',
      rcpt: { [`later@${domain}`]: '450 4.2.1 mailbox busy, try later', [`gone@${domain}`]: '550 5.1.1 <gone> no such user here' },
    },
    { address: second, name: 'second' },
  ]);
  const from = await localUser('mix');
  const to = [`ok@${domain}`, `later@${domain}`, `gone@${domain}`];
  const body = textMessage(from, to.join(', '), 'mixed results', 'The body of the mixed message.\r\n');
  const id = await send(from, to, body);

  const deferred = await recipientState(id, `later@${domain}`, 'deferred');
  assert.equal(deferred.lastError, '450 4.2.1 mailbox busy, try later');
  assert.equal(deferred.remoteMta, `mx1.${domain}`);
  assert.equal(deferred.attempts, 1);
  assert.deepEqual(s.messages('first')[0]!.rcpts.map((r) => r.replace(/> .*$/, '>')), [`RCPT TO:<ok@${domain}>`]);

  // The bounce for gone@ only.
  const { raw, dsn } = await nthDsn(from);
  assertNullSender(raw);
  const [r, ...more] = assertReport(dsn, from);
  assert.equal(more.length, 0, 'only the failed recipient is reported');
  assert.equal(field(r, 'Final-Recipient'), `rfc822; gone@${domain}`);
  assert.equal(field(r, 'Action'), 'failed');
  assert.equal(field(r, 'Status'), '5.1.1');
  assert.equal(field(r, 'Diagnostic-Code'), 'smtp; 550 5.1.1 <gone> no such user here');
  assert.equal(field(r, 'Remote-MTA'), `dns; mx1.${domain}`);
  assert.equal(field(dsn.headers, 'Subject'), 'Undelivered Mail Returned to Sender');
  assert.equal(dsn.parts[2], 'message/rfc822', 'RET unset: the whole message comes back');
  assert.equal(field(dsn.original!.headers, 'Subject'), 'mixed results');
  assert.match(dsn.original!.body, /The body of the mixed message\./);
  assert.match(dsn.text!, new RegExp(`<gone@${domain.replace(/\./g, '\\.')}>: 550 5\\.1\\.1`));

  // The CLI shows what waits and why.
  const list = await cliAsync(f, 'queue', 'list');
  const row = list.split('\n').find((l) => l.startsWith(`${id} `));
  assert.ok(row, `queue list has ${id}:\n${list}`);
  assert.match(row, new RegExp(`later@${domain.replace(/\./g, '\\.')}`));
  assert.doesNotMatch(row, /ok@|gone@/);
  assert.match(row, /450 4\.2\.1 mailbox busy/);
  assert.match(row, /in \d+m|in \d+s/);
  const show = await cliAsync(f, 'queue', 'show', String(id));
  assert.match(show, new RegExp(`from: +${from.replace(/\./g, '\\.')}`));
  assert.match(show, new RegExp(`ok@${domain.replace(/\./g, '\\.')} +delivered, 1 attempt`));
  assert.match(show, new RegExp(`gone@${domain.replace(/\./g, '\\.')} +failed, 1 attempt`));
  assert.match(show, new RegExp(`later@${domain.replace(/\./g, '\\.')} +deferred, 1 attempt\\(s\\), next `));
  assert.match(show, new RegExp(`last error: 450 4\\.2\\.1 mailbox busy, try later \\(mx1\\.${domain.replace(/\./g, '\\.')}\\)`));
  assert.match(show, /last error: 550 5\.1\.1 <gone> no such user here/);

  // Nothing happens by itself within the schedule; the MX moves; `queue retry` sends it now.
  await new Promise((res) => setTimeout(res, 2500));
  assert.equal(s.connections('first'), 1, 'no early retry');
  setMx(domain, [{ address: second, preference: 10 }]);
  const retried = await cliAsync(f, 'queue', 'retry');
  assert.match(retried, /^1 recipient\(s\) due now/);
  await gone(id);
  const [again] = s.messages('second');
  assert.deepEqual(again!.rcpts.map((x) => x.replace(/> .*$/, '>')), [`RCPT TO:<later@${domain}>`], 'only the deferred recipient is sent again');
  assert.equal(s.messages('first').length, 1);
  assert.ok(unstuff(again!.raw).toString('utf8').endsWith(body));
  assert.equal((await inbox(from)).length, 1, 'no second notification');
});

test('RET=HDRS, ENVID and ORCPT: echoed in the bounce, which carries only the header; DSN parameters relayed to a DSN server', async () => {
  const mx = loopback();
  const domain = remoteDomain('dsnparams', [{ address: mx, preference: 10 }]);
  const rcpt = `nobody@${domain}`;
  const s = await sink([{ address: mx, name: 'mx', rcpt: { [rcpt]: '550-5.1.1 the account nobody does not exist\n550 5.1.1 see you' } }]);
  const from = await localUser('ret');
  // Both ENVID and ORCPT are xtext (rfc3461 4): "+2B" is a "+". The report carries them decoded.
  const envid = `env+2B${unique('id')}`;
  const body = textMessage(from, rcpt, 'headers only please', 'SECRET BODY LINE\r\n');
  const id = await send(from, [rcpt], body, {
    mailOptions: ['RET=HDRS', `ENVID=${envid}`],
    rcptOptions: { [rcpt]: ['NOTIFY=FAILURE,DELAY', `ORCPT=rfc822;Original+2BAddr@${domain}`] },
  });
  const { dsn } = await nthDsn(from);
  await gone(id);
  const [r] = assertReport(dsn, from);
  assert.equal(field(dsn.perMessage, 'Original-Envelope-Id'), envid.replace('+2B', '+'));
  // rfc3461 4.2: ORCPT is xtext; the report carries the decoded address.
  assert.equal(field(r, 'Original-Recipient'), `rfc822; Original+Addr@${domain}`);
  assert.equal(field(r, 'Final-Recipient'), `rfc822; ${rcpt}`);
  assert.equal(field(r, 'Action'), 'failed');
  assert.equal(field(r, 'Status'), '5.1.1');
  assert.equal(field(r, 'Diagnostic-Code'), 'smtp; 550 5.1.1 the account nobody does not exist see you');
  assert.equal(dsn.parts[2], 'text/rfc822-headers');
  assert.match(dsn.originalHeaders!, /Subject: headers only please/);
  assert.doesNotMatch(dsn.originalHeaders!, /SECRET BODY LINE/);
  // The sink announces DSN, so the parameters went on with the message.
  const mail = s.commands('mx').find((c) => c.line.startsWith('MAIL FROM'))!.line;
  assert.match(mail, /\bRET=HDRS\b/);
  assert.match(mail, new RegExp(`\\bENVID=${envid.replace('+', '\\+')}(?: |$)`), 'relayed still xtext-encoded');
  const rcptLine = s.commands('mx').find((c) => c.line.startsWith('RCPT TO'))!.line;
  assert.match(rcptLine, /\bNOTIFY=FAILURE,DELAY\b/);
  assert.match(rcptLine, new RegExp(`\\bORCPT=rfc822;Original\\+2BAddr@${domain.replace(/\./g, '\\.')}\\b`));
});

test('NOTIFY=NEVER: a 5xx produces no bounce', async () => {
  const mx = loopback();
  const domain = remoteDomain('never', [{ address: mx, preference: 10 }]);
  const rcpt = `x@${domain}`;
  await sink([{ address: mx, name: 'mx', rcpt: { [rcpt]: '550 5.7.1 refused' } }]);
  const from = await localUser('never');
  const mark = f.logLines.length;
  const id = await send(from, [rcpt], textMessage(from, rcpt, 'never tell me'), { rcptOptions: { [rcpt]: ['NOTIFY=NEVER'] } });
  await gone(id);
  assert.ok(eventsSince(mark, 'queue.failed').some((e) => e.queueId === id));
  await new Promise((res) => setTimeout(res, 1500));
  assert.deepEqual(await inbox(from), []);
  assert.deepEqual(eventsSince(mark, 'queue.dsn_sent'), []);
});

test('NOTIFY=SUCCESS: a "relayed" report when the next hop has no DSN; nothing from us when it takes the request on', async () => {
  const [plain, dsnCapable] = [loopback(), loopback()];
  const noDsn = remoteDomain('nodsn', [{ address: plain, preference: 10 }]);
  const withDsn = remoteDomain('withdsn', [{ address: dsnCapable, preference: 10 }]);
  const s = await sink([
    { address: plain, name: 'plain', extensions: ['PIPELINING', 'SIZE 10240000', '8BITMIME', 'ENHANCEDSTATUSCODES'] },
    { address: dsnCapable, name: 'dsn' },
  ]);
  const from = await localUser('success');
  const a = `a@${noDsn}`;
  const b = `b@${withDsn}`;
  const id = await send(from, [a, b], textMessage(from, `${a}, ${b}`, 'tell me when it arrives', 'BODY NOT RETURNED\r\n'), {
    rcptOptions: { [a]: ['NOTIFY=SUCCESS'], [b]: ['NOTIFY=SUCCESS'] },
  });
  await gone(id);
  const { raw, dsn } = await nthDsn(from);
  assertNullSender(raw);
  const blocks = assertReport(dsn, from);
  assert.equal(blocks.length, 1, 'only the recipient the next hop could not report on');
  assert.equal(field(blocks[0], 'Final-Recipient'), `rfc822; ${a}`);
  assert.equal(field(blocks[0], 'Action'), 'relayed');
  assert.match(field(blocks[0], 'Status'), /^2\.\d+\.\d+$/);
  assert.equal(field(blocks[0], 'Remote-MTA'), `dns; mx1.${noDsn}`);
  assert.equal(field(dsn.headers, 'Subject'), 'Successful Mail Delivery Report');
  assert.ok(dsn.parts.length === 2 || dsn.parts[2] === 'text/rfc822-headers', 'a success report returns the header at most');
  assert.doesNotMatch(raw, /BODY NOT RETURNED/);
  const rcptLine = s.commands('dsn').find((c) => c.line.startsWith('RCPT TO'))!.line;
  assert.match(rcptLine, /\bNOTIFY=SUCCESS\b/);
  assert.doesNotMatch(s.commands('plain').find((c) => c.line.startsWith('RCPT TO'))!.line, /NOTIFY/);
  await new Promise((res) => setTimeout(res, 1000));
  assert.equal((await inbox(from)).length, 1);
});

// --- Delays and expiry ---------------------------------------------------------------------------

test('delay warning: Action: delayed, sent once however many retries follow', async () => {
  await admin.set('queue.retry_schedule', '1s');
  await admin.set('queue.delay_warning', '1s');
  const mx = loopback();
  const domain = remoteDomain('delay', [{ address: mx, preference: 10 }]);
  const rcpt = `slow@${domain}`;
  const s = await sink([{ address: mx, name: 'mx', rcpt: { [rcpt]: '451 4.3.0 greylisted, come back later' } }]);
  const from = await localUser('delay');
  const quiet = await localUser('quiet');
  const id = await send(from, [rcpt], textMessage(from, rcpt, 'a slow one', 'DELAYED BODY\r\n'));
  // The same delay for a sender who asked to hear of failures only.
  const quietId = await send(quiet, [rcpt], textMessage(quiet, rcpt, 'failures only'), { rcptOptions: { [rcpt]: ['NOTIFY=FAILURE'] } });
  const { raw, dsn } = await nthDsn(from);
  assertNullSender(raw);
  const [r] = assertReport(dsn, from);
  assert.equal(field(r, 'Action'), 'delayed');
  assert.equal(field(r, 'Status'), '4.3.0');
  assert.equal(field(r, 'Diagnostic-Code'), 'smtp; 451 4.3.0 greylisted, come back later');
  assert.equal(field(r, 'Remote-MTA'), `dns; mx1.${domain}`);
  assert.ok(field(r, 'Will-Retry-Until'));
  assert.equal(field(dsn.headers, 'Subject'), 'Delayed Mail (still being retried)');
  assert.doesNotMatch(raw, /DELAYED BODY/, 'a delay report returns the header at most');
  // More attempts follow (about one a second), but no second warning.
  const attemptsAtWarning = s.commands('mx').filter((c) => c.line.startsWith('RCPT')).length;
  await until('three more attempts', () => s.commands('mx').filter((c) => c.line.startsWith('RCPT')).length >= attemptsAtWarning + 3, 20_000);
  assert.equal((await inbox(from)).length, 1, 'the delay warning is sent once');
  const m = await queued(id);
  assert.equal(m?.recipients[0]?.status, 'deferred');
  assert.ok(m!.recipients[0]!.attempts >= 3);
  assert.ok((await queued(quietId))!.recipients[0]!.attempts >= 3);
  assert.deepEqual(await inbox(quiet), [], 'NOTIFY=FAILURE: no delay warning');
});

test('expiry: a message older than queue.max_age that is deferred again bounces with 5.4.7', async () => {
  await admin.set('queue.retry_schedule', '1h');
  await admin.set('queue.max_age', '60s');
  const mx = loopback();
  const domain = remoteDomain('expire', [{ address: mx, preference: 10 }]);
  const rcpt = `late@${domain}`;
  const s = await sink([{ address: mx, name: 'mx', rcpt: { [rcpt]: '452 4.2.2 mailbox full' } }]);
  const from = await localUser('expire');
  const id = await send(from, [rcpt], textMessage(from, rcpt, 'too late'));
  await recipientState(id, rcpt, 'deferred');
  assert.deepEqual(await inbox(from), [], 'not yet');
  // The message arrived two minutes ago, as far as the queue knows.
  const db = new Database(join(f.dataDir, 'fulmar.db'));
  try {
    db.pragma('busy_timeout = 5000');
    assert.equal(db.prepare('UPDATE queue_messages SET created_at = created_at - 120000 WHERE id = ?').run(id).changes, 1);
  } finally {
    db.close();
  }
  await cliAsync(f, 'queue', 'retry', String(id));
  const { dsn } = await nthDsn(from);
  await gone(id);
  assert.equal(s.connections('mx'), 2);
  const [r] = assertReport(dsn, from);
  assert.equal(field(r, 'Action'), 'failed');
  assert.equal(field(r, 'Status'), '5.4.7');
  assert.equal(field(r, 'Diagnostic-Code'), 'smtp; 452 4.2.2 mailbox full');
  assert.equal(dsn.parts[2], 'message/rfc822');
});

// --- Senders that are not local, and the null sender ---------------------------------------------

test('a bounce for a remote sender goes out through the queue with MAIL FROM:<> to the sender\'s MX', async () => {
  const [target, senderMx] = [loopback(), loopback()];
  const dest = remoteDomain('fwddest', [{ address: target, preference: 10 }]);
  const senderDomain = remoteDomain('sender', [{ address: senderMx, preference: 10 }]);
  const alias = `${unique('fwd')}@${LOCAL}`;
  const final = `moved@${dest}`;
  await admin.addAlias(alias, [final]);
  const s = await sink([
    { address: target, name: 'target', rcpt: { [final]: '550 5.1.1 moved away, no forwarding' } },
    { address: senderMx, name: 'sender' },
  ]);
  const remoteSender = `carol@${senderDomain}`;
  const r = await submit({ port: f.ports.smtp, tls: false, from: remoteSender, to: [alias], body: textMessage(remoteSender, alias, 'to be forwarded', 'FORWARDED BODY\r\n') });
  const id = await queueIdOf(f, r.data);
  const bounce = await s.waitFor((e) => e.event === 'message' && e.server === 'sender', 20_000);
  await gone(id);
  // The forward itself kept the original envelope sender.
  assert.equal(s.messages('target').length, 0);
  assert.match(s.commands('target').find((c) => c.line.startsWith('MAIL'))!.line, new RegExp(`^MAIL FROM:<${remoteSender.replace(/\./g, '\\.')}>`));
  const [m] = s.messages('sender');
  assert.equal(m!.mail.replace(/> .*$/, '>'), 'MAIL FROM:<>');
  assert.deepEqual(m!.rcpts.map((x) => x.replace(/> .*$/, '>')), [`RCPT TO:<${remoteSender}>`]);
  assert.equal(bounce.answered, true);
  const raw = unstuff(m!.raw).toString('utf8');
  const dsn = await parseDsn(raw);
  const [block] = assertReport(dsn, remoteSender);
  assert.equal(field(block, 'Final-Recipient'), `rfc822; ${final}`);
  assert.equal(field(block, 'Action'), 'failed');
  assert.equal(field(block, 'Status'), '5.1.1');
  assert.equal(field(block, 'Remote-MTA'), `dns; mx1.${dest}`);
  assert.match(dsn.original!.body, /FORWARDED BODY/);
  // The bounce left the queue too.
  await until('the queue to empty', async () => (await store.queue.listQueued()).length === 0);
});

test('a message with the null sender that fails: no bounce to <>, a double bounce to postmaster', async () => {
  const target = loopback();
  const dest = remoteDomain('dbl', [{ address: target, preference: 10 }]);
  const alias = `${unique('fwd0')}@${LOCAL}`;
  const final = `gone@${dest}`;
  await admin.addAlias(alias, [final]);
  const s = await sink([{ address: target, name: 'target', rcpt: { [final]: '550 5.1.1 no such user' } }]);
  const before = (await inbox(`postmaster@${LOCAL}`)).length;
  const r = await submit({ port: f.ports.smtp, tls: false, from: '', to: [alias], body: textMessage('mailer-daemon@elsewhere.test', alias, 'a bounce that bounces') });
  const id = await queueIdOf(f, r.data);
  const { raw, dsn } = await nthDsn(`postmaster@${LOCAL}`, before + 1);
  await gone(id);
  assertNullSender(raw);
  const [block] = assertReport(dsn, `postmaster@${LOCAL}`);
  assert.equal(field(block, 'Action'), 'failed');
  assert.equal(field(block, 'Final-Recipient'), `rfc822; ${final}`);
  assert.equal(field(block, 'Status'), '5.1.1');
  // Nothing else went out: one session at the target, and the queue is empty.
  await new Promise((res) => setTimeout(res, 1000));
  assert.equal(s.connections('target'), 1);
  assert.deepEqual(await store.queue.listQueued(), []);
  assert.equal(s.commands().filter((c) => c.line.startsWith('MAIL')).length, 1);
});

test('a bounce the remote sender\'s MX refuses becomes a double bounce to postmaster, and goes no further', async () => {
  const [target, senderMx] = [loopback(), loopback()];
  const dest = remoteDomain('dbl2dest', [{ address: target, preference: 10 }]);
  const senderDomain = remoteDomain('dbl2sender', [{ address: senderMx, preference: 10 }]);
  const alias = `${unique('fwd2')}@${LOCAL}`;
  const final = `gone@${dest}`;
  const remoteSender = `forged@${senderDomain}`;
  await admin.addAlias(alias, [final]);
  const s = await sink([
    { address: target, name: 'target', rcpt: { [final]: '550 5.1.1 no such user' } },
    { address: senderMx, name: 'sender', rcpt: { [remoteSender.toLowerCase()]: '550 5.1.1 never sent anything' } },
  ]);
  const before = (await inbox(`postmaster@${LOCAL}`)).length;
  const r = await submit({ port: f.ports.smtp, tls: false, from: remoteSender, to: [alias], body: textMessage(remoteSender, alias, 'backscatter bait') });
  await queueIdOf(f, r.data);
  const { raw, dsn } = await nthDsn(`postmaster@${LOCAL}`, before + 1);
  assertNullSender(raw);
  const [block] = assertReport(dsn, `postmaster@${LOCAL}`);
  assert.equal(field(block, 'Final-Recipient'), `rfc822; ${remoteSender}`);
  assert.equal(field(block, 'Action'), 'failed');
  assert.equal(field(block, 'Diagnostic-Code'), 'smtp; 550 5.1.1 never sent anything');
  assert.equal(dsn.parts[2], 'message/rfc822', 'the failed bounce itself is attached');
  assert.equal(dsn.original!.contentType, 'multipart/report');
  await until('the queue to empty', async () => (await store.queue.listQueued()).length === 0);
  await new Promise((res) => setTimeout(res, 1000));
  assert.equal(s.connections('sender'), 1, 'the bounce was tried once and not bounced again');
  assert.equal((await inbox(`postmaster@${LOCAL}`)).length, before + 1);
});

test('null MX (RFC 7505): an immediate bounce with 5.1.10', async () => {
  const domain = `${unique('nullmx')}.remote.test`;
  dns.set(domain, { mx: [{ exchange: '', preference: 0 }], a: ['127.0.0.1'] });
  await sink([{ address: loopback(), name: 'unused' }]);
  const from = await localUser('nullmx');
  const rcpt = `anyone@${domain}`;
  const started = Date.now();
  const id = await send(from, [rcpt], textMessage(from, rcpt, 'to a domain without mail'));
  const { dsn } = await nthDsn(from);
  await gone(id);
  assert.ok(Date.now() - started < 15_000);
  const [r] = assertReport(dsn, from);
  assert.equal(field(r, 'Action'), 'failed');
  assert.equal(field(r, 'Status'), '5.1.10');
  assert.match(field(r, 'Diagnostic-Code'), /^smtp; 556 5\.1\.10 /);
  assert.equal(r!['remote-mta'], undefined, 'no remote MTA was involved');
});

test('8-bit message to a server without 8BITMIME: bounced with 5.6.3, nothing sent', async () => {
  const mx = loopback();
  const domain = remoteDomain('seven', [{ address: mx, preference: 10 }]);
  const s = await sink([{ address: mx, name: 'mx', extensions: ['PIPELINING', 'SIZE 10240000', 'ENHANCEDSTATUSCODES'] }]);
  const from = await localUser('eight');
  const rcpt = `x@${domain}`;
  const body = Buffer.from(textMessage(from, rcpt, 'eight bits', 'Grüße aus Köln\r\n', 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n'), 'utf8');
  const id = await send(from, [rcpt], body, { mailOptions: ['BODY=8BITMIME'] });
  const { dsn } = await nthDsn(from);
  await gone(id);
  const [r] = assertReport(dsn, from);
  assert.equal(field(r, 'Action'), 'failed');
  assert.equal(field(r, 'Status'), '5.6.3');
  assert.equal(s.messages().length, 0);
  assert.ok(!s.commands().some((c) => c.line === 'DATA'));
});

// --- Smarthost -----------------------------------------------------------------------------------

test('smarthost: everything goes through it, AUTH PLAIN only after STARTTLS', async () => {
  const host = loopback();
  const s = await sink([
    {
      address: host,
      name: 'smarthost',
      extensions: ['PIPELINING', 'SIZE 10240000', '8BITMIME', 'ENHANCEDSTATUSCODES', 'STARTTLS', 'AUTH PLAIN LOGIN'],
      auth: { user: 'relay-user', password: 'relay pass' },
    },
  ]);
  await admin.set('delivery.smarthost', `${host}:${s.port}`);
  await admin.set('delivery.smarthost_tls', 'starttls');
  await admin.set('delivery.smarthost_user', 'relay-user');
  await admin.set('delivery.smarthost_password', 'relay pass');
  const from = await localUser('smart');
  // Domains with no DNS at all: only the smarthost can take them.
  const to = [`a@${unique('nowhere')}.invalid`, `b@${unique('elsewhere')}.invalid`];
  const body = textMessage(from, to.join(', '), 'via the smarthost');
  const id = await send(from, to, body);
  await s.waitFor((e) => e.event === 'message', 20_000);
  await gone(id);
  const [m] = s.messages();
  assert.equal(s.messages().length, 1, 'one session for every domain');
  assert.equal(m!.tls, true);
  assert.equal(m!.auth, 'relay-user');
  assert.deepEqual(m!.rcpts.map((r) => r.replace(/> .*$/, '>')).sort(), to.map((t) => `RCPT TO:<${t}>`).sort());
  const auth = s.events.find((e) => e.event === 'auth');
  assert.equal(auth?.tls, true, 'credentials only inside TLS');
  const authLine = s.commands().find((c) => c.line.startsWith('AUTH'))!;
  assert.match(authLine.line, /^AUTH PLAIN /);
  assert.equal(authLine.tls, true);
  assert.ok(unstuff(m!.raw).toString('utf8').endsWith(body));
  assert.equal(dns.queries.filter((q) => to.some((t) => t.endsWith(q.name))).length, 0, 'no MX lookups for smarthost mail');
});

test('delivery.tls_required_domains: an MX without STARTTLS gets nothing; the mail waits', async () => {
  await admin.set('queue.retry_schedule', '1h');
  const mx = loopback();
  const domain = remoteDomain('mustls', [{ address: mx, preference: 10 }]);
  await admin.set('delivery.tls_required_domains', `other.example, ${domain}`);
  try {
    const s = await sink([{ address: mx, name: 'mx' }]);
    const from = await localUser('tls');
    const rcpt = `x@${domain}`;
    const id = await send(from, [rcpt], textMessage(from, rcpt, 'secret'));
    const r = await recipientState(id, rcpt, 'deferred');
    assert.match(r.lastError ?? '', /^4\d\d 4\.7\.\d+ .*TLS/);
    assert.equal(s.messages().length, 0);
    assert.ok(!s.commands().some((c) => c.line.startsWith('MAIL')));
    assert.deepEqual(await inbox(from), []);
  } finally {
    await admin.unset('delivery.tls_required_domains');
  }
});

// --- fulmar queue hold / release / delete --------------------------------------------------------

test('fulmar queue hold, release and delete', async () => {
  await admin.set('queue.retry_schedule', '1h');
  const [busy, open] = [loopback(), loopback()];
  const domain = remoteDomain('hold', [{ address: busy, preference: 10 }]);
  const s = await sink([
    { address: busy, name: 'busy', rcpt: {} , mail: '451 4.3.2 try again later' },
    { address: open, name: 'open' },
  ]);
  const from = await localUser('hold');
  const kept = await send(from, [`kept@${domain}`], textMessage(from, `kept@${domain}`, 'held'));
  const dropped = await send(from, [`dropped@${domain}`], textMessage(from, `dropped@${domain}`, 'deleted'));
  await recipientState(kept, `kept@${domain}`, 'deferred');
  await recipientState(dropped, `dropped@${domain}`, 'deferred');

  assert.match(await cliAsync(f, 'queue', 'hold', String(kept)), new RegExp(`^held message ${kept}`));
  assert.match(await cliAsync(f, 'queue', 'delete', String(dropped)), new RegExp(`^deleted message ${dropped}`));
  const list = await cliAsync(f, 'queue', 'list');
  assert.match(list, new RegExp(`^${kept} \\(held\\) `, 'm'));
  assert.doesNotMatch(list, new RegExp(`^${dropped} `, 'm'));
  assert.match(await cliAsync(f, 'queue', 'show', String(kept)), /\(held: fulmar queue release/);

  // The destination recovers; a held message still waits, even when everything is retried.
  setMx(domain, [{ address: open, preference: 10 }]);
  await cliAsync(f, 'queue', 'retry');
  await new Promise((res) => setTimeout(res, 3000));
  assert.equal(s.connections('open'), 0, 'a held message is not delivered');
  assert.ok(await queued(kept));

  assert.match(await cliAsync(f, 'queue', 'release', String(kept)), new RegExp(`^released message ${kept}`));
  await gone(kept);
  const [m] = s.messages('open');
  assert.deepEqual(m!.rcpts.map((r) => r.replace(/> .*$/, '>')), [`RCPT TO:<kept@${domain}>`]);
  assert.equal(s.messages('open').length, 1, 'the deleted message never went out');
  assert.deepEqual(await inbox(from), [], 'deleting does not bounce');
  const missing = f.cliResult('queue', 'show', String(dropped));
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /no message/);
});

// --- DKIM ----------------------------------------------------------------------------------------

test('DKIM: `fulmar domain dkim` and a submitted message arrives signed; mailauth and dkimpy verify it', async () => {
  const signer = `${unique('signed')}.test`;
  await admin.addDomain(signer);
  const from = `ann@${signer}`;
  await admin.addUsers([from], PASSWORD);
  const line = (await cliAsync(f, 'domain', 'dkim', signer)).trim();
  const m = /^(\S+)\. IN TXT ((?:"[^"]*" ?)+)$/.exec(line);
  assert.ok(m, line);
  const name = m[1]!;
  const strings = [...m[2]!.matchAll(/"([^"]*)"/g)].map((x) => x[1]!);
  dns.set(name, { txt: [strings] });

  const mx = loopback();
  const domain = remoteDomain('dkimdest', [{ address: mx, preference: 10 }]);
  const s = await sink([{ address: mx, name: 'mx' }]);
  const rcpt = `reader@${domain}`;
  const body = textMessage(from, rcpt, 'signed on the way out', 'Signed body.\r\n\r\n  with   odd   spacing  \r\n.and a dot\r\n', 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n');
  const id = await send(from, [rcpt], body);
  await s.waitFor((e) => e.event === 'message', 20_000);
  await gone(id);
  const raw = unstuff(s.messages()[0]!.raw);
  assert.match(raw.toString('utf8'), /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=/);

  // mailauth, asking the test DNS server for the published record.
  const resolver = dns.resolver(2000, 2);
  const verdict = await dkimVerify(raw, {
    resolver: (async (n: string, type: string) => (type === 'TXT' ? resolver.resolveTxt(n) : resolver.resolve(n, type))) as never,
  });
  const result = verdict.results[0] as { status: { result: string; comment?: string }; signingDomain: string; selector: string };
  assert.equal(result.status.result, 'pass', JSON.stringify(verdict.results));
  assert.equal(result.signingDomain, signer);
  assert.equal(name, `${result.selector}._domainkey.${signer}`);

  // dkimpy (Debian's python3-dkim), given the same record.
  const file = join(scratch, `${unique('signed')}.eml`);
  writeFileSync(file, raw);
  const script = `
import dkim, json, os
records = json.loads(os.environ['RECORDS'])
def dnsfunc(name, timeout=5):
    v = records.get(name.decode('ascii').rstrip('.').lower())
    return v.encode('ascii') if v is not None else None
print(json.dumps(bool(dkim.verify(open(os.environ['MSG'], 'rb').read(), dnsfunc=dnsfunc))))
`;
  const py = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8', env: { ...process.env, RECORDS: JSON.stringify({ [name]: strings.join('') }), MSG: file }, timeout: 60_000 });
  assert.equal(py.status, 0, `dkimpy ran (apt-get install python3-dkim): ${py.stderr}`);
  assert.equal(py.stdout.trim(), 'true');
});
