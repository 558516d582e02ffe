/**
 * DomainPOP end to end: a real Dovecot POP3 server (dovecot-pop3.ts) plays the ISP's catch-all
 * mailbox, filled with crafted messages; `fulmar collect domainpop add/set` configures a source
 * and `fulmar collect run NAME` collects it into the store, where each local mailbox is read
 * back exactly (readMailbox), and Dovecot's maildir tells what was deleted on the server.
 *
 * What each local copy looks like: Return-Path, Delivered-To, X-Rcpt-To, then our notes
 * (X-Fulmar-Foreign-Recipients, X-Fulmar-Unknown-Recipient, X-Fulmar-Collect-Note), then
 * `Received: from <pop host> ... by <us> (Fulmar DomainPOP <name>) with POP3|POP3S id <uidl>`,
 * then the message exactly as RETR returned it (Dovecot keeps LF lines and sends CRLF).
 *
 * One Dovecot and one Fulmar for the file. `collect run` works on the store directly, so the
 * server runs only in the relay test (its queue worker delivers the relayed copies to a Python
 * SMTP sink, the smarthost). Each test has its own catch-all mailbox(es) at Dovecot, its own
 * source names and its own local domain, so the tests stay independent and run side by side
 * (each CLI call is a Node start-up); the one test of a global setting runs alone at the end.
 *
 * Clock: leave-on-server ages are tested with FULMAR_COLLECT_CLOCK_OFFSET (a duration that
 * moves the collector's clock forward), given to the `collect run` process only.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Store } from '../../src/store/types.js';
import { type DovecotPop3, startDovecotPop3 } from './dovecot-pop3.js';
import { FULMAR, FulmarProcess } from './harness.js';
import { pyAsync, until } from './queue-helpers.js';
import { SmtpSink, unstuff } from './smtp-sink.js';
import { Admin } from './smtp-wire.js';

/** Our hostname, as the Received line of each collected copy names it. */
const HOST = 'mx.fulmar.test';
/** Every catch-all mailbox at the "ISP" has this password. */
const ISP_PASSWORD = 'isp-secret';

let d: DovecotPop3;
let f: FulmarProcess;
let admin: Admin;
let store: Store;
let scratch: string;

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'fulmar-collect-'));
  d = await startDovecotPop3();
  f = await FulmarProcess.create({ hostname: HOST });
  // `collect run` is an admin command: it reads our hostname from the config file (the harness
  // passes --hostname to `start` only). A top-level key goes before the first [table].
  writeFileSync(f.configFile, `hostname = "${HOST}"\n${readFileSync(f.configFile, 'utf8')}`);
  admin = await Admin.open(f);
  store = await f.openStore();
});

after(async () => {
  await f?.stop();
  await store?.close();
  await admin?.close();
  f?.cleanup();
  await d?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

// --- Helpers -------------------------------------------------------------------------------------

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `fulmar ARGS` on this file's data folder without blocking the event loop (the tests run
 * side by side); `env` adds environment variables (the clock hook). */
function fulmar(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [FULMAR, ...args, '--data', f.dataDir, '--config', f.configFile], {
      cwd: f.dataDir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('exit', (code) => res({ status: code ?? -1, stdout, stderr }));
  });
}

async function ok(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const r = await fulmar(args, env);
  assert.equal(r.status, 0, `fulmar ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** A local domain with a postmaster and the given users (local parts). */
async function localDomain(domain: string, users: string[]): Promise<void> {
  await admin.addDomain(domain);
  await admin.addUsers(['postmaster', ...users].map((u) => `${u}@${domain}`));
}

/** A catch-all mailbox at the ISP (a Dovecot account); returns its login. */
function ispBox(label: string): string {
  const login = `${label}@isp.test`;
  d.addUser(login, ISP_PASSWORD);
  return login;
}

/** `collect domainpop add NAME` for a Dovecot mailbox (plain POP3 unless the options say otherwise). */
async function addSource(name: string, domain: string, box: string, ...options: string[]): Promise<Run> {
  const hasPort = options.includes('--port');
  return ok([
    'collect', 'domainpop', 'add', name, '--domain', domain, '--host', '127.0.0.1',
    ...(hasPort ? [] : ['--port', String(d.port)]),
    '--user', box, '--password', ISP_PASSWORD, ...options,
  ]);
}

interface MessageLine {
  uidl: string;
  size: number;
  /** `delivered -> a@x (To), b@x (Cc)`, `duplicate`, `large`, ... */
  what: string;
  notes: string[];
}

interface Collected extends Run {
  collected: number;
  deleted: number;
  left: number;
  messages: MessageLine[];
}

/** Parses the output of `collect run NAME` (one source). */
function parseRun(r: Run, name: string): Collected {
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  const summary = new RegExp(`^domainpop ${name}: collected (\\d+), deleted (\\d+), left (\\d+) on the server \\(\\d+ ms\\)$`);
  const at = lines.findIndex((l) => summary.test(l));
  assert.ok(at >= 0, `no summary line for ${name} in:\n${r.stdout}\n${r.stderr}`);
  const [, collected, deleted, left] = summary.exec(lines[at]!)!;
  const messages: MessageLine[] = [];
  for (const line of lines.slice(at + 1)) {
    const m = /^ {2}(\S+) (\d+) bytes: (.*)$/.exec(line);
    if (m) messages.push({ uidl: m[1]!, size: Number(m[2]), what: m[3]!, notes: [] });
    else if (line.startsWith('    ') && messages.length > 0) messages.at(-1)!.notes.push(line.trim());
    else assert.fail(`unexpected line in the output of collect run: ${JSON.stringify(line)}\n${r.stdout}`);
  }
  return { ...r, collected: Number(collected), deleted: Number(deleted), left: Number(left), messages };
}

/** `collect run NAME`, which must succeed; `env` for the clock hook. */
async function collect(name: string, env: Record<string, string> = {}): Promise<Collected> {
  return parseRun(await ok(['collect', 'run', name], env), name);
}

/** The `what` of each reported message, in report order. */
const outcomes = (c: Collected): string[] => c.messages.map((m) => m.what);

/** A message as the tests write it: header lines and a body, CRLF line ends. */
function message(headers: string[], body = 'Hello.\r\n'): string {
  return `${headers.join('\r\n')}\r\n\r\n${body}`;
}

/** What RETR returns for a message stored at Dovecot (LF in the maildir, CRLF on the wire). */
function asRetr(m: string): string {
  const crlf = m.replace(/\r?\n/g, '\r\n');
  return crlf.endsWith('\r\n') ? crlf : `${crlf}\r\n`;
}

/**
 * A local copy as it must sit in a mailbox: our headers then the message. The Received line's
 * date is checked for its form by `normalize` and replaced with DATE.
 */
function localCopy(
  to: string,
  raw: string,
  o: { source: string; uidl: string; from?: string; notes?: string; protocol?: 'POP3' | 'POP3S'; account?: string },
): string {
  // Delivered-To names the account, X-Rcpt-To the address the copy was for (an alias, ...).
  return (
    `Return-Path: <${o.from ?? 'al@far.test'}>\r\nDelivered-To: ${o.account ?? to}\r\nX-Rcpt-To: ${to}\r\n${o.notes ?? ''}` +
    `Received: from 127.0.0.1 (127.0.0.1 [127.0.0.1])\r\n\tby ${HOST} (Fulmar DomainPOP ${o.source}) with ${o.protocol ?? 'POP3'}\r\n` +
    `\tid ${o.uidl}; DATE\r\n${asRetr(raw)}`
  );
}

const RFC5322_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/;

/** Replaces the date of our Received line (the first one) with DATE, after checking its form. */
function normalize(copy: string): string {
  return copy.replace(/(\(Fulmar DomainPOP [^)]+\) with POP3S?\r\n\tid \S+; )([^\r\n]*)/, (_all, head: string, date: string) => {
    assert.match(date, RFC5322_DATE, `the date of our Received line: ${date}`);
    return `${head}DATE`;
  });
}

async function inbox(address: string, mailbox = 'INBOX'): Promise<string[]> {
  return (await mailboxBytes(address, mailbox)).map((b) => normalize(b.toString('utf8')));
}

/** Every message of a mailbox as bytes, in UID order. */
async function mailboxBytes(address: string, mailbox = 'INBOX'): Promise<Buffer[]> {
  const account = await store.directory.getAccount(address.toLowerCase());
  if (!account) throw new Error(`no account ${address}`);
  const box = await store.mail.getMailbox(account.id, mailbox);
  if (!box) throw new Error(`no mailbox ${mailbox} for ${address}`);
  const out: Buffer[] = [];
  for (const m of await store.mail.listMessages(box.id)) {
    const chunks: Buffer[] = [];
    for await (const c of store.mail.openMessage(m)) chunks.push(c as Buffer);
    out.push(Buffer.concat(chunks));
  }
  return out;
}

/** A message whose RETR form (CRLF) is exactly `size` bytes. */
function sized(size: number, subject: string, to: string): string {
  const head = `From: al@far.test\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@far.test>\r\n\r\n`;
  // Lines of 78 characters (80 with CRLF), then one line of at most 158 to make up the size.
  let rest = size - head.length;
  let body = '';
  while (rest > 160) {
    body += `${'x'.repeat(78)}\r\n`;
    rest -= 80;
  }
  assert.ok(rest >= 3, `${size} bytes is too small for the header`);
  return `${head}${body}${'y'.repeat(rest - 2)}\r\n`;
}

/** RETR of every message of a Dovecot mailbox by Python's poplib (a client we did not write), as bytes. */
async function poplibRetrAll(box: string): Promise<Buffer[]> {
  const out = await pyAsync(
    String.raw`
import poplib, os, json, base64
p = poplib.POP3('127.0.0.1', int(os.environ['PORT']), timeout=10)
p.user(os.environ['BOX']); p.pass_(os.environ['PW'])
n = p.stat()[0]
# poplib gives the lines without their CRLF, dot-unstuffed; a message ends with a line end.
print(json.dumps([base64.b64encode(b''.join(l + b'\r\n' for l in p.retr(i)[1])).decode() for i in range(1, n + 1)]))
p.quit()
`,
    { PORT: String(d.port), BOX: box, PW: ISP_PASSWORD },
  );
  return (JSON.parse(out) as string[]).map((b) => Buffer.from(b, 'base64'));
}

/** The rows of `collect status` (header first), cells split on runs of 2+ spaces. */
async function status(): Promise<string[][]> {
  const r = await ok(['collect', 'status']);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s{2,}/));
}

// Each test has its own catch-all mailboxes, sources and local domain: they run side by side
// (each CLI call is a Node start-up; Dovecot and SQLite take several clients at once).
describe('DomainPOP sources, each test on its own', { concurrency: 4 }, () => {
  // --- Envelope mode -------------------------------------------------------------------------------

  test('envelope mode: X-Rcpt-To, Delivered-To:2 (second from the top), a stripped prefix; without the header the postmaster gets it', async () => {
    const domain = 'env.test';
    await localDomain(domain, ['bob', 'carol', 'dave']);
    const [boxA, boxB, boxC] = [ispBox('env-a'), ispBox('env-b'), ispBox('env-c')];

    const added = await addSource('envA', domain, boxA, '--mode', 'envelope', '--envelope-header', 'X-Rcpt-To');
    assert.match(added.stdout, /^added DomainPOP source envA: .*envelope mode: X-Rcpt-To:1/);
    // Without --mode: naming an envelope header chooses envelope mode.
    const addedB = await addSource('envB', domain, boxB, '--envelope-header', 'Delivered-To:2');
    assert.match(addedB.stdout, /envelope mode: Delivered-To:2/);
    await addSource('envC', domain, boxC, '--mode', 'envelope', '--envelope-header', 'Delivered-To', '--strip-prefix', 'env.test-');
    const list = await ok(['collect', 'domainpop', 'list']);
    assert.match(list.stdout, /^envC: domain env\.test; env-c@isp\.test@127\.0\.0\.1:\d+, tls=none, delete-after-download; envelope mode: Delivered-To:1 strip "env\.test-"; /m);
    assert.ok(!list.stdout.includes(ISP_PASSWORD), 'list shows no password');

    // X-Rcpt-To: one recipient per copy, whatever To and Cc say.
    // The ISP's Return-Path is the envelope sender of the copies (and stays in the message).
    const e1 = message(['Return-Path: <bounce@far.test>', 'X-Rcpt-To: <bob@env.test>', 'From: Al <al@far.test>', 'To: list@far.test, carol@env.test', 'Subject: e1', 'Message-ID: <e1@far.test>']);
    // The ISP stored one copy per recipient, with one Message-ID: each recipient gets one.
    const e2 = message(['X-Rcpt-To: carol@env.test', 'From: al@far.test', 'To: carol@env.test, dave@env.test', 'Subject: e2', 'Message-ID: <e2@far.test>']);
    const e3 = message(['X-Rcpt-To: dave@env.test', 'From: al@far.test', 'To: carol@env.test, dave@env.test', 'Subject: e2', 'Message-ID: <e2@far.test>']);
    // No envelope header: the postmaster, never bob from To.
    const e4 = message(['From: al@far.test', 'To: bob@env.test', 'Subject: e4', 'Message-ID: <e4@far.test>']);
    for (const m of [e1, e2, e3, e4]) d.deliver(boxA, m);
    const a = await collect('envA');
    assert.deepEqual(outcomes(a), [
      'delivered -> bob@env.test (X-Rcpt-To#1)',
      'delivered -> carol@env.test (X-Rcpt-To#1)',
      'delivered -> dave@env.test (X-Rcpt-To#1)',
      'delivered -> postmaster@env.test (no recipient)',
    ]);
    assert.deepEqual(a.messages[3]!.notes, ['no recipient found in the header: the postmaster gets it']);
    assert.deepEqual([a.collected, a.deleted, a.left], [4, 4, 0]);
    assert.equal(d.count(boxA), 0);

    // Delivered-To:2 is the second from the top; a message with only one goes to the postmaster.
    const d1 = message(['Delivered-To: carol@env.test', 'Delivered-To: bob@env.test', 'From: al@far.test', 'To: list@far.test', 'Subject: d1', 'Message-ID: <d1@far.test>']);
    const d2 = message(['Delivered-To: carol@env.test', 'From: al@far.test', 'To: carol@env.test', 'Subject: d2', 'Message-ID: <d2@far.test>']);
    d.deliver(boxB, d1);
    d.deliver(boxB, d2);
    const b = await collect('envB');
    assert.deepEqual(outcomes(b), ['delivered -> bob@env.test (Delivered-To#2)', 'delivered -> postmaster@env.test (no recipient)']);
    assert.equal(d.count(boxB), 0);

    // qmail's virtual-domain prefix: env.test-bob@isp.test is bob@env.test; an address without it stays.
    const p1 = message(['Delivered-To: env.test-bob@isp.test', 'From: al@far.test', 'To: list@far.test', 'Subject: p1', 'Message-ID: <p1@far.test>']);
    const p2 = message(['Delivered-To: dave@env.test', 'From: al@far.test', 'To: list@far.test', 'Subject: p2', 'Message-ID: <p2@far.test>']);
    d.deliver(boxC, p1);
    d.deliver(boxC, p2);
    const c = await collect('envC');
    assert.deepEqual(outcomes(c), ['delivered -> bob@env.test (Delivered-To#1)', 'delivered -> dave@env.test (Delivered-To#1)']);
    assert.equal(d.count(boxC), 0);

    const [ua, ub, uc] = [a.messages.map((m) => m.uidl), b.messages.map((m) => m.uidl), c.messages.map((m) => m.uidl)];
    assert.deepEqual(await inbox('bob@env.test'), [
      localCopy('bob@env.test', e1, { source: 'envA', uidl: ua[0]!, from: 'bounce@far.test' }),
      localCopy('bob@env.test', d1, { source: 'envB', uidl: ub[0]! }),
      localCopy('bob@env.test', p1, { source: 'envC', uidl: uc[0]! }),
    ]);
    assert.deepEqual(await inbox('carol@env.test'), [localCopy('carol@env.test', e2, { source: 'envA', uidl: ua[1]! })]);
    assert.deepEqual(await inbox('dave@env.test'), [
      localCopy('dave@env.test', e3, { source: 'envA', uidl: ua[2]! }),
      localCopy('dave@env.test', p2, { source: 'envC', uidl: uc[1]! }),
    ]);
    const note = 'X-Fulmar-Collect-Note: no local recipient found\r\n';
    assert.deepEqual(await inbox('postmaster@env.test'), [
      localCopy('postmaster@env.test', e4, { source: 'envA', uidl: ua[3]!, notes: note }),
      localCopy('postmaster@env.test', d2, { source: 'envB', uidl: ub[1]!, notes: note }),
    ]);
  });

  // --- Header mode: foreign recipients -------------------------------------------------------------

  test('header mode, foreign recipients: ignore (nothing for them), postmaster (one summary copy)', async () => {
    const domain = 'hdr.test';
    await localDomain(domain, ['bob', 'carol']);
    const box = ispBox('hdr');
    await addSource('hdr', domain, box, '--mode', 'headers', '--headers', 'To,Cc');

    const h1 = message(['From: Al <al@far.test>', 'To: "Smith, Bob" <bob@hdr.test>, x@far.test', 'Cc: carol@hdr.test,', ' "Why" <y@far2.test>', 'Subject: h1', 'Message-ID: <h1@far.test>']);
    d.deliver(box, h1);
    const ignore = await collect('hdr');
    assert.deepEqual(outcomes(ignore), ['delivered -> bob@hdr.test (To), carol@hdr.test (Cc)']);
    assert.deepEqual(ignore.messages[0]!.notes, ['foreign recipients ignored: x@far.test, y@far2.test']);

    const set = await ok(['collect', 'domainpop', 'set', 'hdr', '--foreign', 'postmaster']);
    assert.match(set.stdout, /foreign postmaster/);
    // Group syntax and comments are read too; an unknown local address and the foreign ones
    // share the postmaster's one copy.
    const h2 = message(['From: Al <al@far.test>', 'To: Team: bob@hdr.test, x@far.test, ghost@hdr.test;', 'Cc: carol@hdr.test (Carol), y@far2.test', 'Subject: h2', 'Message-ID: <h2@far.test>']);
    d.deliver(box, h2);
    const summary = await collect('hdr');
    assert.deepEqual(outcomes(summary), ['delivered -> bob@hdr.test (To), carol@hdr.test (Cc), postmaster@hdr.test (unknown ghost@hdr.test, foreign summary)']);
    assert.deepEqual(summary.messages[0]!.notes, [
      'ghost@hdr.test (from To) has no mailbox here: a copy goes to the postmaster',
      'foreign recipients x@far.test, y@far2.test: one copy to the postmaster',
    ]);
    assert.equal(d.count(box), 0);

    const [u1, u2] = [ignore.messages[0]!.uidl, summary.messages[0]!.uidl];
    assert.deepEqual(await inbox('bob@hdr.test'), [
      localCopy('bob@hdr.test', h1, { source: 'hdr', uidl: u1 }),
      localCopy('bob@hdr.test', h2, { source: 'hdr', uidl: u2 }),
    ]);
    assert.deepEqual(await inbox('carol@hdr.test'), [
      localCopy('carol@hdr.test', h1, { source: 'hdr', uidl: u1 }),
      localCopy('carol@hdr.test', h2, { source: 'hdr', uidl: u2 }),
    ]);
    assert.deepEqual(await inbox('postmaster@hdr.test'), [
      localCopy('postmaster@hdr.test', h2, {
        source: 'hdr',
        uidl: u2,
        notes: 'X-Fulmar-Unknown-Recipient: ghost@hdr.test\r\nX-Fulmar-Foreign-Recipients: x@far.test, y@far2.test\r\n',
      }),
    ]);
  });

  test('header mode, foreign = relay: each foreign address gets a copy through the queue, never one read from a Received line', async () => {
    const domain = 'rly.test';
    await localDomain(domain, ['bob']);
    const box = ispBox('rly');
    const sink = await SmtpSink.start([{ address: '127.0.0.1', name: 'smarthost' }]);
    try {
      await admin.set('delivery.smarthost', `127.0.0.1:${sink.port}`);
      await admin.set('delivery.smarthost_tls', 'none');
      await f.start();
      await addSource('rly', domain, box, '--mode', 'headers', '--received', '--foreign', 'relay');
      const r1 = message([
        'Received: from relay.far.test by mx.isp.test with ESMTP id 1 for <z@far3.test>; Tue, 1 Jan 2030 10:00:00 +0000',
        'From: Al <al@far.test>',
        'To: bob@rly.test, x@far.test',
        'Cc: y@far2.test',
        'Subject: relay me',
        'Message-ID: <r1@far.test>',
      ], 'A line.\r\n.A line with a leading dot.\r\n');
      d.deliver(box, r1);
      const run = await collect('rly');
      assert.deepEqual(outcomes(run), ['delivered -> bob@rly.test (To), x@far.test (To), y@far2.test (Cc)']);
      assert.deepEqual(run.messages[0]!.notes, ['z@far3.test (from Received#1) is not ours and came from a Received line: not relayed']);
      assert.equal(d.count(box), 0);
      const uidl = run.messages[0]!.uidl;
      assert.deepEqual(await inbox('bob@rly.test'), [localCopy('bob@rly.test', r1, { source: 'rly', uidl })]);

      await sink.waitFor((e) => e.event === 'message', 20_000);
      await until('the queue is empty', async () => ((await store.queue.listQueued()).length === 0 ? true : undefined), 20_000);
      const got = sink.messages();
      assert.equal(got.length, 1, 'one message through the smarthost');
      assert.match(got[0]!.mail, /^MAIL FROM:<al@far\.test>/);
      assert.deepEqual(got[0]!.rcpts.map((r) => r.replace(/> .*$/, '>')).sort(), ['RCPT TO:<x@far.test>', 'RCPT TO:<y@far2.test>']);
      assert.ok(!sink.commands().some((c) => /z@far3\.test/i.test(c.line)), 'the Received address is never relayed');
      // Our Received line first, then the message as collected (no per-recipient headers).
      const relayed = unstuff(got[0]!.raw).toString('utf8');
      assert.equal(
        normalize(relayed),
        `Received: from 127.0.0.1 (127.0.0.1 [127.0.0.1])\r\n\tby ${HOST} (Fulmar DomainPOP rly) with POP3\r\n\tid ${uidl}; DATE\r\n${asRetr(r1)}`,
      );
    } finally {
      await f.stop();
      await admin.unset('delivery.smarthost');
      await admin.unset('delivery.smarthost_tls');
      await sink.stop();
    }
  });

  // --- Duplicates ----------------------------------------------------------------------------------

  test('dedupe: one message stored three times (one per user) gives each one copy, across runs too; off gives three; no Message-ID is never dropped; Date warns', async () => {
    const domain = 'dup.test';
    await localDomain(domain, ['a', 'b', 'c']);
    const [boxOn, boxOff, boxDate] = [ispBox('dup-on'), ispBox('dup-off'), ispBox('dup-date')];
    await addSource('dupOn', domain, boxOn, '--mode', 'headers');
    await addSource('dupOff', domain, boxOff, '--mode', 'headers', '--dedupe', 'off');

    const m1 = message(['From: al@far.test', 'To: a@dup.test, b@dup.test', 'Cc: c@dup.test', 'Subject: three copies', 'Message-ID: <m1@far.test>']);
    for (let i = 0; i < 3; i++) d.deliver(boxOn, m1);
    const on = await collect('dupOn');
    assert.deepEqual(outcomes(on), ['delivered -> a@dup.test (To), b@dup.test (To), c@dup.test (Cc)', 'duplicate', 'duplicate']);
    for (const m of on.messages.slice(1)) assert.deepEqual(m.notes, ['duplicate (<m1@far.test>) for a@dup.test, b@dup.test, c@dup.test']);
    assert.deepEqual([on.collected, on.deleted, on.left], [1, 3, 0]);
    assert.equal(d.count(boxOn), 0);

    // A fourth copy in a later run is still a duplicate (the keys persist); a message without a
    // Message-ID is never dropped: stored twice, delivered twice.
    const noId = message(['From: al@far.test', 'To: a@dup.test', 'Subject: no id']);
    d.deliver(boxOn, m1);
    d.deliver(boxOn, noId);
    d.deliver(boxOn, noId);
    const on2 = await collect('dupOn');
    assert.deepEqual(outcomes(on2), ['duplicate', 'delivered -> a@dup.test (To)', 'delivered -> a@dup.test (To)']);
    assert.equal(d.count(boxOn), 0);

    // Dedupe off: every stored copy is delivered to every recipient (the risk, documented).
    const m2 = message(['From: al@far.test', 'To: a@dup.test, b@dup.test, c@dup.test', 'Subject: off', 'Message-ID: <m2@far.test>']);
    for (let i = 0; i < 3; i++) d.deliver(boxOff, m2);
    const off = await collect('dupOff');
    assert.deepEqual(outcomes(off), Array(3).fill('delivered -> a@dup.test (To), b@dup.test (To), c@dup.test (To)'));
    assert.equal(d.count(boxOff), 0);

    const copy = (to: string, raw: string, source: string, uidl: string): string => localCopy(to, raw, { source, uidl });
    assert.deepEqual(await inbox('a@dup.test'), [
      copy('a@dup.test', m1, 'dupOn', on.messages[0]!.uidl),
      copy('a@dup.test', noId, 'dupOn', on2.messages[1]!.uidl),
      copy('a@dup.test', noId, 'dupOn', on2.messages[2]!.uidl),
      ...off.messages.map((m) => copy('a@dup.test', m2, 'dupOff', m.uidl)),
    ]);
    for (const u of ['b', 'c']) {
      const to = `${u}@dup.test`;
      assert.deepEqual(await inbox(to), [copy(to, m1, 'dupOn', on.messages[0]!.uidl), ...off.messages.map((m) => copy(to, m2, 'dupOff', m.uidl))]);
    }
    assert.deepEqual(await inbox('postmaster@dup.test'), []);

    // Date as the dedupe header: a warning, and the documented risk (two messages, one Date).
    const added = await addSource('dupDate', domain, boxDate, '--mode', 'headers', '--dedupe', 'Date');
    assert.match(added.stderr, /^warning: --dedupe Date treats distinct messages sent in the same second as copies of one/m);
    assert.match(added.stdout, /dedupe Date/);
    const date = 'Date: Tue, 01 Jan 2030 10:00:00 +0000';
    d.deliver(boxDate, message(['From: al@far.test', 'To: b@dup.test', 'Subject: first', date, 'Message-ID: <x1@far.test>']));
    d.deliver(boxDate, message(['From: zed@far.test', 'To: b@dup.test', 'Subject: second', date, 'Message-ID: <x2@far.test>']));
    const byDate = await collect('dupDate');
    assert.deepEqual(outcomes(byDate), ['delivered -> b@dup.test (To)', 'duplicate']);
    const bInbox = await inbox('b@dup.test');
    assert.equal(bInbox.length, 5);
    assert.match(bInbox[4]!, /\r\nSubject: first\r\n/);
  });

  // --- Recipients from other places ----------------------------------------------------------------

  test('Bcc without an envelope header goes to the postmaster; with X-Rcpt-To in the header list, to that user', async () => {
    const domain = 'bcc.test';
    await localDomain(domain, ['dave']);
    const box = ispBox('bcc');
    await addSource('bcc', domain, box, '--mode', 'headers', '--headers', 'To,Cc');
    const b1 = message(['From: al@far.test', 'To: undisclosed-recipients:;', 'Subject: b1', 'Message-ID: <b1@far.test>']);
    const b2 = message(['X-Rcpt-To: dave@bcc.test', 'From: al@far.test', 'To: list@far.test', 'Subject: b2', 'Message-ID: <b2@far.test>']);
    d.deliver(box, b1);
    d.deliver(box, b2);
    const first = await collect('bcc');
    assert.deepEqual(outcomes(first), ['delivered -> postmaster@bcc.test (no recipient)', 'delivered -> postmaster@bcc.test (no recipient)']);
    assert.deepEqual(first.messages[0]!.notes, ['no recipient found in the header: the postmaster gets it']);
    assert.deepEqual(first.messages[1]!.notes, ['foreign recipients ignored: list@far.test', 'no deliverable recipient: the postmaster gets it']);

    await ok(['collect', 'domainpop', 'set', 'bcc', '--headers', 'To,Cc,X-Rcpt-To']);
    const b3 = message(['X-Rcpt-To: dave@bcc.test', 'From: al@far.test', 'To: list@far.test', 'Subject: b3', 'Message-ID: <b3@far.test>']);
    d.deliver(box, b3);
    const second = await collect('bcc');
    assert.deepEqual(outcomes(second), ['delivered -> dave@bcc.test (X-Rcpt-To)']);
    assert.equal(d.count(box), 0);

    const note = 'X-Fulmar-Collect-Note: no local recipient found\r\n';
    assert.deepEqual(await inbox('postmaster@bcc.test'), [
      localCopy('postmaster@bcc.test', b1, { source: 'bcc', uidl: first.messages[0]!.uidl, notes: note }),
      localCopy('postmaster@bcc.test', b2, { source: 'bcc', uidl: first.messages[1]!.uidl, notes: note }),
    ]);
    assert.deepEqual(await inbox('dave@bcc.test'), [localCopy('dave@bcc.test', b3, { source: 'bcc', uidl: second.messages[0]!.uidl })]);
  });

  test('Received "for": skip the first N lines; stop at the first local address', async () => {
    const domain = 'rcv.test';
    await localDomain(domain, ['bob', 'carol']);
    const box = ispBox('rcv');
    await addSource('rcv', domain, box, '--mode', 'headers', '--headers', 'To', '--received', '--skip-received', '1');
    const date = 'Tue, 1 Jan 2030 10:00:00 +0000';
    const r1 = message([
      `Received: from mx.isp.test by pop.isp.test with LMTP id 1 for <carol@rcv.test>; ${date}`,
      `Received: from relay.far.test (relay.far.test [192.0.2.1])\r\n\tby mx.isp.test with ESMTP id 2\r\n\tfor <bob@rcv.test>; ${date}`,
      'From: al@far.test',
      'To: list@far.test',
      'Subject: r1',
      'Message-ID: <r1@far.test>',
    ]);
    d.deliver(box, r1);
    const skip = await collect('rcv');
    assert.deepEqual(outcomes(skip), ['delivered -> bob@rcv.test (Received#2)']);

    // No skip; stop at the first line naming a local address (a foreign one before it does not stop).
    await ok(['collect', 'domainpop', 'set', 'rcv', '--skip-received', '0', '--stop-at-local']);
    const three = (id: string): string =>
      message([
        `Received: from a.far.test by b.far.test id 1 for <someone@far.test>; ${date}`,
        `Received: from b.far.test by mx.isp.test id 2 for bob@rcv.test; ${date}`,
        `Received: from c.far.test by mx.isp.test id 3 for <carol@rcv.test>; ${date}`,
        'From: al@far.test',
        'To: list@far.test',
        `Subject: ${id}`,
        `Message-ID: <${id}@far.test>`,
      ]);
    const r2 = three('r2');
    d.deliver(box, r2);
    const stop = await collect('rcv');
    assert.deepEqual(outcomes(stop), ['delivered -> bob@rcv.test (Received#2)']);
    assert.deepEqual(stop.messages[0]!.notes, ['foreign recipients ignored: list@far.test, someone@far.test']);

    await ok(['collect', 'domainpop', 'set', 'rcv', '--no-stop-at-local']);
    const r3 = three('r3');
    d.deliver(box, r3);
    const all = await collect('rcv');
    assert.deepEqual(outcomes(all), ['delivered -> bob@rcv.test (Received#2), carol@rcv.test (Received#3)']);
    assert.equal(d.count(box), 0);

    assert.deepEqual(await inbox('bob@rcv.test'), [
      localCopy('bob@rcv.test', r1, { source: 'rcv', uidl: skip.messages[0]!.uidl }),
      localCopy('bob@rcv.test', r2, { source: 'rcv', uidl: stop.messages[0]!.uidl }),
      localCopy('bob@rcv.test', r3, { source: 'rcv', uidl: all.messages[0]!.uidl }),
    ]);
    assert.deepEqual(await inbox('carol@rcv.test'), [localCopy('carol@rcv.test', r3, { source: 'rcv', uidl: all.messages[0]!.uidl })]);
    assert.deepEqual(await inbox('postmaster@rcv.test'), []);
  });

  test('Subject parentheses: "Re: hi (eve@domain)" goes to eve with --subject-parens, not without', async () => {
    const domain = 'sub.test';
    await localDomain(domain, ['eve']);
    const box = ispBox('sub');
    await addSource('sub', domain, box, '--mode', 'headers', '--subject-parens');
    const s1 = message(['From: al@far.test', 'To: list@far.test', 'Subject: Re: hi (eve@sub.test)', 'Message-ID: <s1@far.test>']);
    d.deliver(box, s1);
    const on = await collect('sub');
    assert.deepEqual(outcomes(on), ['delivered -> eve@sub.test (Subject)']);

    await ok(['collect', 'domainpop', 'set', 'sub', '--no-subject-parens']);
    const s2 = message(['From: al@far.test', 'To: list@far.test', 'Subject: Re: hi (eve@sub.test)', 'Message-ID: <s2@far.test>']);
    d.deliver(box, s2);
    const off = await collect('sub');
    assert.deepEqual(outcomes(off), ['delivered -> postmaster@sub.test (no recipient)']);
    assert.equal(d.count(box), 0);
    assert.deepEqual(await inbox('eve@sub.test'), [localCopy('eve@sub.test', s1, { source: 'sub', uidl: on.messages[0]!.uidl })]);
    assert.deepEqual(await inbox('postmaster@sub.test'), [
      localCopy('postmaster@sub.test', s2, { source: 'sub', uidl: off.messages[0]!.uidl, notes: 'X-Fulmar-Collect-Note: no local recipient found\r\n' }),
    ]);
  });

  test('name matching: "Joe User" <info@domain> goes to the account named Joe User; a name with a comma does not match', async () => {
    const domain = 'nm.test';
    await localDomain(domain, []);
    await ok(['user', 'add', 'joe@nm.test', '--password', 'secret', '--name', 'Joe User']);
    const box = ispBox('nm');
    await addSource('nm', domain, box, '--mode', 'headers', '--name-matching');
    const n1 = message(['From: al@far.test', 'To: "Joe User" <info@nm.test>', 'Subject: n1', 'Message-ID: <n1@far.test>']);
    // An encoded display name is decoded before the match.
    const n2 = message(['From: al@far.test', 'Cc: =?UTF-8?Q?Joe_User?= <sales@nm.test>', 'Subject: n2', 'Message-ID: <n2@far.test>']);
    const n3 = message(['From: al@far.test', 'To: "User, Joe" <info@nm.test>', 'Subject: n3', 'Message-ID: <n3@far.test>']);
    for (const m of [n1, n2, n3]) d.deliver(box, m);
    const run = await collect('nm');
    assert.deepEqual(outcomes(run), [
      'delivered -> joe@nm.test (To (real name "Joe User"))',
      'delivered -> joe@nm.test (Cc (real name "Joe User"))',
      'delivered -> postmaster@nm.test (unknown info@nm.test)',
    ]);
    assert.equal(d.count(box), 0);
    const u = run.messages.map((m) => m.uidl);
    assert.deepEqual(await inbox('joe@nm.test'), [
      localCopy('joe@nm.test', n1, { source: 'nm', uidl: u[0]! }),
      localCopy('joe@nm.test', n2, { source: 'nm', uidl: u[1]! }),
    ]);
    assert.deepEqual(await inbox('postmaster@nm.test'), [
      localCopy('postmaster@nm.test', n3, { source: 'nm', uidl: u[2]!, notes: 'X-Fulmar-Unknown-Recipient: info@nm.test\r\n' }),
    ]);
  });

  test('a local-domain address without an account: --unknown postmaster (a copy with a note) or drop (logged; never the whole message)', async () => {
    const domain = 'unk.test';
    await localDomain(domain, ['bob']);
    const box = ispBox('unk');
    await addSource('unk', domain, box, '--mode', 'headers');
    const u1 = message(['From: al@far.test', 'To: bob@unk.test, ghost@unk.test', 'Subject: u1', 'Message-ID: <u1@far.test>']);
    d.deliver(box, u1);
    const pm = await collect('unk');
    assert.deepEqual(outcomes(pm), ['delivered -> bob@unk.test (To), postmaster@unk.test (unknown ghost@unk.test)']);
    assert.deepEqual(pm.messages[0]!.notes, ['ghost@unk.test (from To) has no mailbox here: a copy goes to the postmaster']);

    await ok(['collect', 'domainpop', 'set', 'unk', '--unknown', 'drop']);
    const u2 = message(['From: al@far.test', 'To: bob@unk.test, ghost@unk.test', 'Subject: u2', 'Message-ID: <u2@far.test>']);
    // Only for the unknown address: nobody deliverable is left, so the postmaster still gets it.
    const u3 = message(['From: al@far.test', 'To: ghost@unk.test', 'Subject: u3', 'Message-ID: <u3@far.test>']);
    d.deliver(box, u2);
    d.deliver(box, u3);
    const drop = await collect('unk');
    assert.deepEqual(outcomes(drop), ['delivered -> bob@unk.test (To)', 'delivered -> postmaster@unk.test (no recipient)']);
    assert.deepEqual(drop.messages[0]!.notes, ['ghost@unk.test (from To) has no mailbox here: dropped (unknown = drop)']);
    assert.equal(d.count(box), 0);

    assert.deepEqual(await inbox('bob@unk.test'), [
      localCopy('bob@unk.test', u1, { source: 'unk', uidl: pm.messages[0]!.uidl }),
      localCopy('bob@unk.test', u2, { source: 'unk', uidl: drop.messages[0]!.uidl }),
    ]);
    assert.deepEqual(await inbox('postmaster@unk.test'), [
      localCopy('postmaster@unk.test', u1, { source: 'unk', uidl: pm.messages[0]!.uidl, notes: 'X-Fulmar-Unknown-Recipient: ghost@unk.test\r\n' }),
      localCopy('postmaster@unk.test', u3, { source: 'unk', uidl: drop.messages[1]!.uidl, notes: 'X-Fulmar-Collect-Note: no local recipient found\r\n' }),
    ]);
  });

  // --- Size, order, leave on server ----------------------------------------------------------------

  test('size cap: under the limit downloaded, at and over it not (>=); the postmaster warned once per message across runs; --delete-large deletes them', async () => {
    const domain = 'big.test';
    await localDomain(domain, ['a']);
    const box = ispBox('big');
    const N = 1000;
    await addSource('big', domain, box, '--mode', 'headers', '--max-download-size', String(N), '--warn-postmaster');
    const [under, at, over] = [sized(N - 1, 'under', 'a@big.test'), sized(N, 'at', 'a@big.test'), sized(N + 1, 'over', 'a@big.test')];
    for (const m of [under, at, over]) d.deliver(box, m);

    const first = await collect('big');
    assert.deepEqual(first.messages.map((m) => [m.size, m.what]), [
      [N - 1, 'delivered -> a@big.test (To)'],
      [N, 'large'],
      [N + 1, 'large'],
    ]);
    for (const m of first.messages.slice(1)) {
      assert.deepEqual(m.notes, [`${m.size} bytes, at or over the limit of ${N}: not downloaded`, 'postmaster postmaster@big.test warned']);
    }
    assert.deepEqual([first.collected, first.deleted, first.left], [1, 1, 2]);
    assert.equal(d.count(box), 2, 'the large messages stay on the server');
    assert.deepEqual(await inbox('a@big.test'), [localCopy('a@big.test', under, { source: 'big', uidl: first.messages[0]!.uidl })]);

    const warnings = await inbox('postmaster@big.test');
    assert.equal(warnings.length, 2);
    for (const [i, w] of warnings.entries()) {
      const m = first.messages[i + 1]!;
      const subject = i === 0 ? 'at' : 'over';
      assert.match(w, /^Return-Path: <>\r\nDelivered-To: postmaster@big\.test\r\n/);
      assert.match(w, /\r\nSubject: Large message not collected by DomainPOP big\r\n/);
      assert.match(w, /\r\nAuto-Submitted: auto-generated\r\n/);
      assert.ok(w.includes(`found a message of ${m.size} bytes on 127.0.0.1, at or over the download limit of ${N} bytes.\r\nIt was left on the server.`), w);
      assert.ok(w.includes(`  UIDL:    ${m.uidl}\r\n`), w);
      assert.ok(w.includes(`  Subject: ${subject}\r\n`), w);
      assert.ok(w.includes('  To:      a@big.test\r\n'), w);
    }

    // A second run: still large, still left, and no second warning.
    const second = await collect('big');
    assert.deepEqual(second.messages.map((m) => [m.uidl, m.what]), first.messages.slice(1).map((m) => [m.uidl, 'large']));
    for (const m of second.messages) assert.deepEqual(m.notes, [`${m.size} bytes, at or over the limit of ${N}: not downloaded`]);
    assert.equal(d.count(box), 2);
    assert.equal((await inbox('postmaster@big.test')).length, 2, 'one warning per large message, not one per run');

    // --delete-large: deleted from the server, still no new warning, nothing delivered.
    await ok(['collect', 'domainpop', 'set', 'big', '--delete-large']);
    const third = await collect('big');
    assert.deepEqual(third.messages.map((m) => m.what), ['large', 'large']);
    for (const m of third.messages) assert.deepEqual(m.notes, [`${m.size} bytes, at or over the limit of ${N}: not downloaded, deleted from the server`]);
    assert.deepEqual([third.collected, third.deleted, third.left], [0, 2, 0]);
    assert.equal(d.count(box), 0);
    assert.equal((await inbox('postmaster@big.test')).length, 2);
    assert.equal((await inbox('a@big.test')).length, 1);
  });

  test('--small-first: messages are downloaded (and delivered) smallest first', async () => {
    const domain = 'sf.test';
    await localDomain(domain, ['a', 'b']);
    const [boxSmall, boxPlain] = [ispBox('sf-small'), ispBox('sf-plain')];
    await addSource('sfSmall', domain, boxSmall, '--mode', 'headers', '--small-first');
    await addSource('sfPlain', domain, boxPlain, '--mode', 'headers');
    const sizes = [900, 300, 600];
    const small = sizes.map((n) => sized(n, `s${n}`, 'a@sf.test'));
    const plain = sizes.map((n) => sized(n, `p${n}`, 'b@sf.test'));
    for (const m of small) d.deliver(boxSmall, m);
    for (const m of plain) d.deliver(boxPlain, m);

    const s = await collect('sfSmall');
    assert.deepEqual(s.messages.map((m) => m.size), [300, 600, 900]);
    const p = await collect('sfPlain');
    assert.deepEqual(p.messages.map((m) => m.size), [900, 300, 600]);
    assert.equal(d.count(boxSmall) + d.count(boxPlain), 0);
    // UIDs in the local mailbox follow the order of delivery.
    assert.deepEqual(await inbox('a@sf.test'), [small[1]!, small[2]!, small[0]!].map((m, i) => localCopy('a@sf.test', m, { source: 'sfSmall', uidl: s.messages[i]!.uidl })));
    assert.deepEqual(await inbox('b@sf.test'), plain.map((m, i) => localCopy('b@sf.test', m, { source: 'sfPlain', uidl: p.messages[i]!.uidl })));
    // Dovecot numbers by arrival: the smallest message came second.
    assert.deepEqual(s.messages.map((m) => m.uidl.slice(0, 8)), ['00000002', '00000003', '00000001']);
  });

  test('leave on server for 3 days: never collected twice, deleted once older (test clock); 0 days = never deleted', async () => {
    const domain = 'los.test';
    await localDomain(domain, ['a', 'b']);
    const [box3, box0] = [ispBox('los-3'), ispBox('los-0')];
    const added = await addSource('los3', domain, box3, '--mode', 'headers', '--leave-on-server', '--delete-after-days', '3');
    assert.match(added.stdout, /leave-on-server 3d/);
    await addSource('los0', domain, box0, '--mode', 'headers', '--leave-on-server', '--delete-after-days', '0');
    const m1 = message(['From: al@far.test', 'To: a@los.test', 'Subject: l1', 'Message-ID: <l1@far.test>']);
    const m2 = message(['From: al@far.test', 'To: a@los.test', 'Subject: l2', 'Message-ID: <l2@far.test>']);
    const m3 = message(['From: al@far.test', 'To: a@los.test', 'Subject: l3', 'Message-ID: <l3@far.test>']);
    d.deliver(box3, m1);
    d.deliver(box3, m2);

    const first = await collect('los3');
    assert.deepEqual(outcomes(first), ['delivered -> a@los.test (To)', 'delivered -> a@los.test (To)']);
    assert.deepEqual([first.collected, first.deleted, first.left], [2, 0, 2]);
    assert.equal(d.count(box3), 2);

    // A new message arrives: only it is collected.
    d.deliver(box3, m3);
    const second = await collect('los3');
    assert.deepEqual(outcomes(second), ['delivered -> a@los.test (To)']);
    assert.deepEqual([second.collected, second.deleted, second.left], [1, 0, 3]);
    assert.equal(d.count(box3), 3);

    // Two days on: not old enough.
    const twoDays = await collect('los3', { FULMAR_COLLECT_CLOCK_OFFSET: '2d' });
    assert.deepEqual([twoDays.messages.length, twoDays.collected, twoDays.deleted, twoDays.left], [0, 0, 0, 3]);
    assert.equal(d.count(box3), 3);

    // Four days on: deleted from the server, not delivered again.
    const fourDays = await collect('los3', { FULMAR_COLLECT_CLOCK_OFFSET: '4d' });
    assert.deepEqual([fourDays.messages.length, fourDays.collected, fourDays.deleted, fourDays.left], [0, 0, 3, 0]);
    assert.equal(d.count(box3), 0);
    const u = [...first.messages, ...second.messages].map((m) => m.uidl);
    assert.deepEqual(await inbox('a@los.test'), [m1, m2, m3].map((m, i) => localCopy('a@los.test', m, { source: 'los3', uidl: u[i]! })));

    // 0 days: left for ever, and never collected again.
    const b1 = message(['From: al@far.test', 'To: b@los.test', 'Subject: forever', 'Message-ID: <b1@far.test>']);
    d.deliver(box0, b1);
    const keep = await collect('los0');
    assert.deepEqual(outcomes(keep), ['delivered -> b@los.test (To)']);
    const later = await collect('los0', { FULMAR_COLLECT_CLOCK_OFFSET: '1000d' });
    assert.deepEqual([later.messages.length, later.collected, later.deleted, later.left], [0, 0, 0, 1]);
    assert.equal(d.count(box0), 1);
    assert.deepEqual(await inbox('b@los.test'), [localCopy('b@los.test', b1, { source: 'los0', uidl: keep.messages[0]!.uidl })]);
  });

  test('the dedupe window lasts as long as the source keeps mail: a copy arriving 2 days later, while the first is still on the server (3 days), is a duplicate', async () => {
    const domain = 'win.test';
    await localDomain(domain, ['a']);
    const box = ispBox('win');
    await addSource('win', domain, box, '--mode', 'headers', '--leave-on-server', '--delete-after-days', '3');
    const m = message(['From: al@far.test', 'To: a@win.test', 'Subject: late copy', 'Message-ID: <w1@far.test>']);
    d.deliver(box, m);
    const first = await collect('win');
    assert.deepEqual(outcomes(first), ['delivered -> a@win.test (To)']);
    // The ISP stores a second copy of the same message (a late retry); the first is still there.
    d.deliver(box, m);
    const later = await collect('win', { FULMAR_COLLECT_CLOCK_OFFSET: '2d' });
    assert.deepEqual(outcomes(later), ['duplicate']);
    assert.equal(d.count(box), 2);
    assert.deepEqual(await inbox('a@win.test'), [localCopy('a@win.test', m, { source: 'win', uidl: first.messages[0]!.uidl })]);
  });

  test('the directory decides: an alias reaches its targets, a catch-all takes unknown names, a full mailbox sends its copy to the postmaster', async () => {
    const domain = 'dir.test';
    await localDomain(domain, ['bob', 'carol', 'small']);
    await admin.addAlias('sales@dir.test', ['bob@dir.test', 'carol@dir.test']);
    await admin.addAlias('@dir.test', ['carol@dir.test']);
    await admin.addUsers(['tiny@dir.test'], 'secret', '1KB');
    const box = ispBox('dir');
    await addSource('dir', domain, box, '--mode', 'headers');
    const m1 = message(['From: al@far.test', 'To: sales@dir.test', 'Subject: to the alias', 'Message-ID: <dir1@far.test>']);
    const m2 = message(['From: al@far.test', 'To: whoever@dir.test', 'Subject: to the catch-all', 'Message-ID: <dir2@far.test>']);
    const m3 = sized(2000, 'too-big-for-tiny', 'tiny@dir.test, bob@dir.test');
    for (const m of [m1, m2, m3]) d.deliver(box, m);
    const run = await collect('dir');
    assert.deepEqual(outcomes(run), [
      'delivered -> sales@dir.test (To)',
      'delivered -> whoever@dir.test (To)',
      'delivered -> postmaster@dir.test (refused tiny@dir.test), bob@dir.test (To)',
    ]);
    assert.deepEqual(run.messages[2]!.notes, ['tiny@dir.test: mailbox of tiny@dir.test is full; the postmaster gets it']);
    assert.equal(d.count(box), 0);
    const u = run.messages.map((m) => m.uidl);
    // The copy names the address the message was for; the alias expands to the accounts.
    assert.deepEqual(await inbox('bob@dir.test'), [
      localCopy('sales@dir.test', m1, { source: 'dir', uidl: u[0]!, account: 'bob@dir.test' }),
      localCopy('bob@dir.test', m3, { source: 'dir', uidl: u[2]! }),
    ]);
    assert.deepEqual(await inbox('carol@dir.test'), [
      localCopy('sales@dir.test', m1, { source: 'dir', uidl: u[0]!, account: 'carol@dir.test' }),
      localCopy('whoever@dir.test', m2, { source: 'dir', uidl: u[1]!, account: 'carol@dir.test' }),
    ]);
    assert.deepEqual(await inbox('tiny@dir.test'), []);
    assert.deepEqual(await inbox('postmaster@dir.test'), [
      localCopy('postmaster@dir.test', m3, { source: 'dir', uidl: u[2]!, notes: 'X-Fulmar-Collect-Note: not delivered to tiny@dir.test: mailbox of tiny@dir.test is full\r\n' }),
    ]);
  });

  // --- Archive -------------------------------------------------------------------------------------

  test('--archive: a folder gets one file per downloaded message, byte-identical to RETR; an archive mailbox gets the raw copy without our headers', async () => {
    const domain = 'arc.test';
    await localDomain(domain, ['a', 'arch']);
    const [boxF, boxM] = [ispBox('arc-f'), ispBox('arc-m')];
    const folder = join(scratch, 'archive');
    await addSource('arcF', domain, boxF, '--mode', 'headers', '--archive', folder);
    await addSource('arcM', domain, boxM, '--mode', 'headers', '--archive', 'arch@arc.test/Archive');

    const a1 = message(['From: al@far.test', 'To: a@arc.test', 'Subject: a1', 'Message-ID: <a1@far.test>'], 'CRLF lines\r\n');
    // LF lines, dot-stuffed lines on the wire, 8-bit UTF-8, no final line end.
    const a2 = 'From: al@far.test\nTo: a@arc.test\nSubject: a2\nMessage-ID: <a2@far.test>\n\n.leading dot\n..two dots\n.\nd\u00e9j\u00e0 vu\nno final line end';
    d.deliver(boxF, a1);
    d.deliver(boxF, a2);
    // A second copy of a1 (one Message-ID): a duplicate, but downloaded, so archived too.
    d.deliver(boxF, a1);
    const retr = await poplibRetrAll(boxF);
    assert.deepEqual(retr.map((b) => b.toString('utf8')), [asRetr(a1), asRetr(a2), asRetr(a1)], 'what RETR returns: CRLF lines');

    const run = await collect('arcF');
    assert.deepEqual(outcomes(run), ['delivered -> a@arc.test (To)', 'delivered -> a@arc.test (To)', 'duplicate']);
    assert.equal(d.count(boxF), 0);
    const files = readdirSync(folder);
    assert.equal(files.length, 3, `one file per downloaded message: ${files.join(', ')}`);
    assert.ok(files.every((name) => name.endsWith('.eml') && !name.startsWith('.tmp')), files.join(', '));
    const archived = files.map((name) => readFileSync(join(folder, name)));
    const sortKey = (b: Buffer): string => b.toString('latin1');
    assert.deepEqual(archived.map(sortKey).sort(), retr.map(sortKey).sort(), 'byte-identical to RETR');
    // And to the message part of each delivered copy.
    const delivered = await mailboxBytes('a@arc.test');
    assert.equal(delivered.length, 2);
    for (const [i, copy] of delivered.entries()) {
      // (the first two RETRs: the third message was a duplicate)
      assert.ok(copy.subarray(copy.length - retr[i]!.length).equals(retr[i]!), `copy ${i + 1} ends with the RETR bytes`);
      assert.equal(normalize(copy.toString('utf8')), localCopy('a@arc.test', [a1, a2][i]!, { source: 'arcF', uidl: run.messages[i]!.uidl }));
    }

    const a3 = message(['From: al@far.test', 'To: a@arc.test', 'Subject: a3', 'Message-ID: <a3@far.test>'], 'to the archive mailbox\r\n');
    d.deliver(boxM, a3);
    d.deliver(boxM, a3);
    const runM = await collect('arcM');
    assert.deepEqual(outcomes(runM), ['delivered -> a@arc.test (To)', 'duplicate']);
    assert.equal(d.count(boxM), 0);
    // Like the folder: every downloaded message, the duplicate included.
    // (compared as latin1 text: the same bytes, a readable diff)
    const archive = (await mailboxBytes('arch@arc.test', 'Archive')).map((b) => b.toString('latin1'));
    assert.deepEqual(archive, [asRetr(a3), asRetr(a3)], 'the raw copies, without our headers');
    assert.deepEqual(await mailboxBytes('arch@arc.test'), [], "nothing in the archive account's INBOX");
    assert.deepEqual((await inbox('a@arc.test'))[2], localCopy('a@arc.test', a3, { source: 'arcM', uidl: runM.messages[0]!.uidl }));
    assert.equal(readdirSync(folder).length, 3, 'the folder archive belongs to arcF only');
  });

  // --- TLS and APOP --------------------------------------------------------------------------------

  test('TLS: STLS and implicit TLS with --insecure; without it the self-signed certificate fails and collect status shows why; APOP', async () => {
    const domain = 'tls.test';
    await localDomain(domain, ['a']);
    const box = ispBox('tls');
    await addSource('tlsStls', domain, box, '--mode', 'headers', '--tls', 'starttls', '--insecure');
    await addSource('tlsImplicit', domain, box, '--mode', 'headers', '--tls', 'implicit', '--insecure', '--port', String(d.tlsPort));
    await addSource('tlsVerify', domain, box, '--mode', 'headers', '--tls', 'implicit', '--port', String(d.tlsPort));
    await addSource('tlsApop', domain, box, '--mode', 'headers', '--apop');

    const copies: string[] = [];
    for (const [name, protocol] of [['tlsStls', 'POP3S'], ['tlsImplicit', 'POP3S'], ['tlsApop', 'POP3']] as const) {
      const m = message(['From: al@far.test', 'To: a@tls.test', `Subject: via ${name}`, `Message-ID: <${name}@far.test>`]);
      d.deliver(box, m);
      const run = await collect(name);
      assert.deepEqual(outcomes(run), ['delivered -> a@tls.test (To)'], name);
      assert.equal(d.count(box), 0, name);
      copies.push(localCopy('a@tls.test', m, { source: name, uidl: run.messages[0]!.uidl, protocol }));
    }
    assert.deepEqual(await inbox('a@tls.test'), copies);
    assert.match(d.log(), /Login: user=<tls@isp\.test>, method=APOP/);

    // Certificate verification is on by default: the self-signed certificate fails, for STLS too.
    const m = message(['From: al@far.test', 'To: a@tls.test', 'Subject: waiting', 'Message-ID: <wait@far.test>']);
    d.deliver(box, m);
    const failed = await fulmar(['collect', 'run', 'tlsVerify', '--verbose']);
    assert.equal(failed.status, 1, failed.stdout + failed.stderr);
    assert.ok(!`${failed.stdout}${failed.stderr}`.includes(ISP_PASSWORD), 'the password is never printed or logged');
    assert.match(failed.stderr, /"event":"collect\.failed"/);
    assert.match(failed.stdout, /^domainpop tlsVerify: FAILED: .*certificate/im);
    assert.match(failed.stdout, /^domainpop tlsVerify: collected 0, deleted 0, left 0/m);
    assert.equal(d.count(box), 1, 'the message waits on the server');
    const row = (await status()).find((r) => r[1] === 'tlsVerify');
    assert.ok(row, 'tlsVerify in collect status');
    assert.match(row.at(-1)!, /certificate/i, `LAST ERROR: ${row.join(' | ')}`);

    await ok(['collect', 'domainpop', 'set', 'tlsVerify', '--tls', 'starttls', '--port', String(d.port)]);
    const failedStls = await fulmar(['collect', 'run', 'tlsVerify']);
    assert.equal(failedStls.status, 1);
    assert.match(failedStls.stdout, /FAILED: .*certificate/i);
    assert.equal(d.count(box), 1);

    await ok(['collect', 'domainpop', 'set', 'tlsVerify', '--insecure']);
    const fixed = await collect('tlsVerify');
    assert.deepEqual(outcomes(fixed), ['delivered -> a@tls.test (To)']);
    assert.equal(d.count(box), 0);
  });
});

// A global setting: after the tests above, alone.
test('collect.postmaster: mail without a local recipient and large-message warnings go there instead of postmaster@<source domain>', async () => {
  const domain = 'pm.test';
  await localDomain(domain, ['boss']);
  const box = ispBox('pm');
  await addSource('pm', domain, box, '--mode', 'headers', '--max-download-size', '600', '--warn-postmaster');
  const m1 = message(['From: al@far.test', 'To: list@far.test', 'Subject: for nobody here', 'Message-ID: <pm1@far.test>']);
  d.deliver(box, m1);
  d.deliver(box, sized(700, 'pm-large', 'boss@pm.test'));
  await admin.set('collect.postmaster', 'boss@pm.test');
  let run: Collected;
  try {
    run = await collect('pm');
  } finally {
    await admin.unset('collect.postmaster');
  }
  assert.deepEqual(outcomes(run), ['delivered -> boss@pm.test (no recipient)', 'large']);
  assert.deepEqual(run.messages[1]!.notes, ['700 bytes, at or over the limit of 600: not downloaded', 'postmaster boss@pm.test warned']);
  const got = await inbox('boss@pm.test');
  assert.equal(got.length, 2);
  assert.equal(got[0], localCopy('boss@pm.test', m1, { source: 'pm', uidl: run.messages[0]!.uidl, notes: 'X-Fulmar-Collect-Note: no local recipient found\r\n' }));
  assert.match(got[1]!, /^Return-Path: <>\r\nDelivered-To: boss@pm\.test\r\n[\s\S]*\r\nSubject: Large message not collected by DomainPOP pm\r\n/);
  assert.deepEqual(await inbox('postmaster@pm.test'), []);
  assert.equal(d.count(box), 1, 'the large message stays');
});
