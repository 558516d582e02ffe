/**
 * SMTP reception driven by a client we did not write: Python's smtplib, over plain port 25 (MX),
 * STARTTLS on 25 and 587, implicit TLS on 465, with AUTH PLAIN and LOGIN, SMTPUTF8 and 8BITMIME.
 * CHUNKING (BDAT) is not in smtplib, so it is driven with a raw socket.
 *
 * One server for the file; each test adds its own accounts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { MessageRecord, Store } from '../../src/store/types.js';
import type { FulmarProcess } from './harness.js';
import { Admin, python3, codes, SmtpWire, unique, startServer, stopServer } from './smtp-wire.js';

const DOMAIN = 'smtplib.test';
let f: FulmarProcess;
let admin: Admin;

before(async () => ({ f, admin } = await startServer(DOMAIN)));
after(() => stopServer(f, admin));

/** Common Python prelude: ports, an SSL context that accepts our self-signed certificate, JSON out. */
const PRELUDE = `
import smtplib, ssl, json, os, sys, base64
from email.message import EmailMessage
H = '127.0.0.1'
P25 = int(os.environ['P25']); P587 = int(os.environ['P587']); P465 = int(os.environ['P465'])
def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c
def r(t):
    code, msg = t
    return [code, msg.decode('utf-8', 'replace') if isinstance(msg, bytes) else msg]
def feats(s):
    return sorted(k.upper() for k in s.esmtp_features.keys())
out = {}
`;

function py(script: string, env: Record<string, string> = {}): Record<string, unknown> {
  const stdout = python3(`${PRELUDE}\n${script}\nprint(json.dumps(out))`, {
    P25: String(f.ports.smtp),
    P587: String(f.ports.submission),
    P465: String(f.ports.smtps),
    ...env,
  });
  const last = stdout.trim().split('\n').pop()!;
  return JSON.parse(last) as Record<string, unknown>;
}

/** `[code, text]` as smtplib returns it; the text begins with the enhanced code. */
type PyReply = [number, string];

function assertReply(actual: unknown, code: number, enhanced: string, what: string): void {
  const [c, text] = actual as PyReply;
  assert.equal(`${c} ${text.split(' ')[0]}`, `${code} ${enhanced}`, `${what}: got ${c} ${text}`);
}

async function withStore<T>(fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await f.openStore();
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

interface Delivered {
  record: MessageRecord;
  bytes: Buffer;
  text: string;
}

async function inbox(address: string): Promise<Delivered[]> {
  return withStore(async (store) => {
    const account = await store.directory.getAccount(address.toLowerCase());
    assert.ok(account, `account ${address} exists`);
    const box = await store.mail.getMailbox(account.id, 'INBOX');
    assert.ok(box, `INBOX of ${address}`);
    const out: Delivered[] = [];
    for (const record of await store.mail.listMessages(box.id)) {
      const chunks: Buffer[] = [];
      for await (const c of store.mail.openMessage(record)) chunks.push(c as Buffer);
      const bytes = Buffer.concat(chunks);
      out.push({ record, bytes, text: bytes.toString('utf8') });
    }
    return out;
  });
}

/** Splits what the store returns into the per-delivery prefix, our Received header and the rest. */
function dissect(d: Delivered): { prefix: string; received: string; rest: Buffer } {
  const prefix = d.record.prefix.toString('utf8');
  assert.ok(d.bytes.subarray(0, d.record.prefix.length).equals(d.record.prefix), 'the message starts with its prefix');
  const blob = d.bytes.subarray(d.record.prefix.length);
  assert.equal(blob.subarray(0, 10).toString(), 'Received: ', 'the blob starts with our Received header');
  // The Received field ends at the first CRLF not followed by folding whitespace.
  let pos = 0;
  for (;;) {
    const nl = blob.indexOf('\r\n', pos);
    assert.ok(nl >= 0, 'Received header ends');
    if (blob[nl + 2] !== 0x20 && blob[nl + 2] !== 0x09) {
      pos = nl + 2;
      break;
    }
    pos = nl + 2;
  }
  return { prefix, received: blob.subarray(0, pos).toString('utf8'), rest: blob.subarray(pos) };
}

function headerOf(text: string, name: string): string[] {
  const head = text.split('\r\n\r\n')[0]!.replace(/\r\n[ \t]+/g, ' ');
  return head
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))
    .map((l) => l.slice(name.length + 1).trim());
}

const TLS_COMMENT = /\(using TLSv1\.[23] with cipher [A-Za-z0-9_-]+/;

test('MX on port 25 without TLS: local delivery, 550 5.1.1 unknown user, 554 5.7.1 relay denied', async () => {
  const rcpt = `${unique('mx')}@${DOMAIN}`;
  await admin.addUsers([rcpt]);
  const out = py(
    `
s = smtplib.SMTP(H, P25, timeout=10)
code, banner = s.ehlo('client.example')
out['ehlo'] = code
out['features'] = feats(s)
s.mail('sender@far.example')
out['unknown'] = r(s.rcpt('nobody-here@${DOMAIN}'))
out['relay'] = r(s.rcpt('someone@far.example'))
out['ok'] = r(s.rcpt(os.environ['RCPT']))
out['data'] = r(s.data(b'From: <sender@far.example>\\r\\nTo: <' + os.environ['RCPT'].encode() + b'>\\r\\nSubject: plain mx\\r\\n\\r\\nHello over port 25.\\r\\n'))
s.quit()
`,
    { RCPT: rcpt },
  );
  assert.equal(out.ehlo, 250);
  const features = out.features as string[];
  for (const ext of ['PIPELINING', 'SIZE', '8BITMIME', 'ENHANCEDSTATUSCODES', 'SMTPUTF8', 'STARTTLS', 'CHUNKING']) {
    assert.ok(features.includes(ext), `EHLO advertises ${ext}: ${features.join(' ')}`);
  }
  assert.ok(!features.includes('AUTH'), 'no AUTH offered before TLS');
  assertReply(out.unknown, 550, '5.1.1', 'unknown local user');
  assertReply(out.relay, 554, '5.7.1', 'relay without auth');
  assertReply(out.ok, 250, '2.1.5', 'local recipient');
  assertReply(out.data, 250, '2.0.0', 'message accepted');

  const msgs = await inbox(rcpt);
  assert.equal(msgs.length, 1);
  const { prefix, received, rest } = dissect(msgs[0]!);
  assert.equal(prefix, `Return-Path: <sender@far.example>\r\nDelivered-To: ${rcpt}\r\nX-Rcpt-To: ${rcpt}\r\n`);
  assert.match(received, /^Received: from client\.example \(\S+ \[127\.0\.0\.1\]\)/);
  assert.match(received, /by mx\.fulmar\.test \(Fulmar\) with ESMTP id \S+/);
  assert.doesNotMatch(received, /using TLS/);
  assert.ok(received.includes(`for <${rcpt}>`), received);
  assert.equal(rest.toString(), `From: <sender@far.example>\r\nTo: <${rcpt}>\r\nSubject: plain mx\r\n\r\nHello over port 25.\r\n`);
});

test('STARTTLS on port 25: AUTH only after TLS (538 before), then AUTH PLAIN and a Received header with TLS details', async () => {
  const user = `${unique('tls25')}@${DOMAIN}`;
  await admin.addUsers([user], 'pw-25');
  const out = py(
    `
s = smtplib.SMTP(H, P25, timeout=10)
s.ehlo('client.example')
out['before'] = feats(s)
out['auth_plain_before'] = r(s.docmd('AUTH', 'PLAIN ' + base64.b64encode(b'\\0' + os.environ['U'].encode() + b'\\0pw-25').decode()))
out['auth_login_before'] = r(s.docmd('AUTH', 'LOGIN'))
out['starttls'] = r(s.starttls(context=ctx()))
out['cipher'] = s.sock.version()
s.ehlo('client.example')
out['after'] = feats(s)
out['auth_methods'] = s.esmtp_features.get('auth', '')
try:
    s.login(os.environ['U'], 'wrong-password')
    out['bad_login'] = 'accepted'
except smtplib.SMTPAuthenticationError as e:
    out['bad_login'] = [e.smtp_code, e.smtp_error.decode()]
out['login'] = r(s.login(os.environ['U'], 'pw-25'))
s.sendmail(os.environ['U'], [os.environ['U']], b'Subject: over starttls\\r\\n\\r\\nsecret body\\r\\n')
s.quit()
`,
    { U: user },
  );
  const before = out.before as string[];
  assert.ok(before.includes('STARTTLS'));
  assert.ok(!before.includes('AUTH'), `AUTH is not offered before TLS: ${before.join(' ')}`);
  assertReply(out.auth_plain_before, 538, '5.7.11', 'AUTH PLAIN before TLS');
  assertReply(out.auth_login_before, 538, '5.7.11', 'AUTH LOGIN before TLS');
  assertReply(out.starttls, 220, '2.0.0', 'STARTTLS');
  assert.match(out.cipher as string, /^TLSv1\.[23]$/);
  const afterTls = out.after as string[];
  assert.ok(afterTls.includes('AUTH'), `AUTH offered after TLS: ${afterTls.join(' ')}`);
  assert.ok(!afterTls.includes('STARTTLS'), 'STARTTLS no longer offered under TLS');
  assert.deepEqual((out.auth_methods as string).trim().split(/\s+/).sort(), ['LOGIN', 'PLAIN']);
  assert.deepEqual(out.bad_login, [535, '5.7.8 Authentication credentials invalid']);
  assertReply(out.login, 235, '2.7.0', 'AUTH PLAIN');

  const msgs = await inbox(user);
  assert.equal(msgs.length, 1);
  const { received, rest } = dissect(msgs[0]!);
  assert.match(received, TLS_COMMENT);
  assert.ok(received.includes(`(Authenticated sender: ${user})`), received);
  assert.match(received, /with ESMTPSA id /);
  assert.equal(rest.toString(), 'Subject: over starttls\r\n\r\nsecret body\r\n');
});

test('submission on 587: MAIL before AUTH gets 530 (plain and TLS), AUTH LOGIN after STARTTLS, relay to a remote address is queued', async () => {
  const user = `${unique('sub')}@${DOMAIN}`;
  const local = `${unique('subrcpt')}@${DOMAIN}`;
  await admin.addUsers([user, local], 'pw-587');
  const remote = `${unique('far')}@remote.example`;
  const out = py(
    `
s = smtplib.SMTP(H, P587, timeout=10)
s.ehlo('client.example')
out['plain_mail'] = r(s.mail(os.environ['U']))
out['plain_features'] = feats(s)
s.starttls(context=ctx())
s.ehlo('client.example')
out['tls_mail'] = r(s.mail(os.environ['U']))
s.user, s.password = os.environ['U'], 'pw-587'
out['login'] = r(s.auth('LOGIN', s.auth_login, initial_response_ok=False))
out['mail'] = r(s.mail(os.environ['U']))
out['rcpt_remote'] = r(s.rcpt(os.environ['REMOTE']))
out['rcpt_local'] = r(s.rcpt(os.environ['LOCAL']))
out['data'] = r(s.data(b'Subject: outbound\\r\\n\\r\\nto the world\\r\\n'))
s.quit()
`,
    { U: user, REMOTE: remote, LOCAL: local },
  );
  assertReply(out.plain_mail, 530, '5.7.0', 'MAIL before AUTH on 587 (plain)');
  assert.ok(!(out.plain_features as string[]).includes('AUTH'), 'no AUTH on 587 before TLS');
  assertReply(out.tls_mail, 530, '5.7.0', 'MAIL before AUTH on 587 (TLS)');
  assertReply(out.login, 235, '2.7.0', 'AUTH LOGIN');
  assertReply(out.mail, 250, '2.1.0', 'MAIL after AUTH');
  assertReply(out.rcpt_remote, 250, '2.1.5', 'relay for an authenticated user');
  assertReply(out.rcpt_local, 250, '2.1.5', 'local recipient');
  assertReply(out.data, 250, '2.0.0', 'message accepted');

  await withStore(async (store) => {
    const queued = (await store.queue.listQueued()).filter((q) => q.recipients.some((r) => r.address === remote));
    assert.equal(queued.length, 1, 'the remote recipient is held in the outbound queue');
    const q = queued[0]!;
    assert.equal(q.mailFrom, user);
    // Queued, or deferred once the first attempt met the test's unanswering DNS resolver.
    assert.deepEqual(
      q.recipients.map((r) => [r.address, r.status === 'deferred' ? 'queued' : r.status]),
      [[remote, 'queued']],
      'only the remote recipient is queued',
    );
    assert.ok(await store.blobs.exists(q.blobHash), 'the queued message is stored durably');
  });
  const msgs = await inbox(local);
  assert.equal(msgs.length, 1);
  assert.match(dissect(msgs[0]!).received, TLS_COMMENT);
});

test('implicit TLS on 465 with AUTH PLAIN; MAIL before AUTH is refused there too', async () => {
  const user = `${unique('smtps')}@${DOMAIN}`;
  await admin.addUsers([user], 'pw-465');
  const out = py(
    `
s = smtplib.SMTP_SSL(H, P465, timeout=10, context=ctx())
s.ehlo('client.example')
out['features'] = feats(s)
out['version'] = s.sock.version()
out['mail_noauth'] = r(s.mail(os.environ['U']))
s.user, s.password = os.environ['U'], 'pw-465'
out['login'] = r(s.auth('PLAIN', s.auth_plain))
out['refused'] = s.sendmail(os.environ['U'], [os.environ['U']], b'Subject: over 465\\r\\n\\r\\nimplicit tls\\r\\n')
s.quit()
`,
    { U: user },
  );
  const features = out.features as string[];
  assert.ok(features.includes('AUTH'), 'AUTH offered on 465');
  assert.ok(!features.includes('STARTTLS'), 'no STARTTLS on 465');
  assert.match(out.version as string, /^TLSv1\.[23]$/);
  assertReply(out.mail_noauth, 530, '5.7.0', 'MAIL before AUTH on 465');
  assertReply(out.login, 235, '2.7.0', 'AUTH PLAIN on 465');
  assert.deepEqual(out.refused, {});
  const msgs = await inbox(user);
  assert.equal(msgs.length, 1);
  const { received, rest } = dissect(msgs[0]!);
  assert.match(received, TLS_COMMENT);
  assert.match(received, /with ESMTPSA id /);
  assert.equal(rest.toString(), 'Subject: over 465\r\n\r\nimplicit tls\r\n');
});

test('aliases and catch-alls expand: one alias to two local users and a remote target; @domain catches the rest', async () => {
  const catchDomain = `${unique('catch')}.test`;
  const [u1, u2, u3] = [unique('al1'), unique('al2'), unique('al3')].map((l) => `${l}@${DOMAIN}`) as [string, string, string];
  const alias = `${unique('sales')}@${DOMAIN}`;
  const remote = `${unique('partner')}@remote.example`;
  await admin.addDomain(catchDomain);
  await admin.addUsers([u1, u2, u3]);
  await admin.addAlias(alias, [u1, u2, remote]);
  await admin.addAlias(`@${catchDomain}`, [u3]);
  const out = py(
    `
s = smtplib.SMTP(H, P25, timeout=10)
s.ehlo('client.example')
out['alias'] = s.sendmail('boss@far.example', [os.environ['ALIAS']], b'Subject: to the alias\\r\\n\\r\\nfor sales\\r\\n')
out['catch'] = s.sendmail('boss@far.example', ['anything-at-all@' + os.environ['CATCH']], b'Subject: caught\\r\\n\\r\\nfor whoever\\r\\n')
s.quit()
`,
    { ALIAS: alias, CATCH: catchDomain },
  );
  assert.deepEqual(out.alias, {});
  assert.deepEqual(out.catch, {});
  for (const u of [u1, u2]) {
    const msgs = await inbox(u);
    assert.equal(msgs.length, 1, `${u} got the alias copy`);
    const { prefix, rest } = dissect(msgs[0]!);
    assert.equal(prefix, `Return-Path: <boss@far.example>\r\nDelivered-To: ${u}\r\nX-Rcpt-To: ${alias}\r\n`);
    assert.equal(rest.toString(), 'Subject: to the alias\r\n\r\nfor sales\r\n');
  }
  const caught = await inbox(u3);
  assert.equal(caught.length, 1);
  assert.equal(
    dissect(caught[0]!).prefix,
    `Return-Path: <boss@far.example>\r\nDelivered-To: ${u3}\r\nX-Rcpt-To: anything-at-all@${catchDomain}\r\n`,
  );
  await withStore(async (store) => {
    const queued = (await store.queue.listQueued()).filter((q) => q.recipients.some((r) => r.address === remote));
    assert.equal(queued.length, 1, 'the remote alias target is held in the outbound queue');
    assert.equal(queued[0]!.mailFrom, 'boss@far.example');
  });
});

/** Every stored blob: files under blobs/ and small bodies kept inline in the database. */
function storedBlobs(): Map<string, { refcount: number; bytes: Buffer }> {
  const db = new Database(join(f.dataDir, 'fulmar.db'), { readonly: true });
  try {
    const out = new Map<string, { refcount: number; bytes: Buffer }>();
    const inline = db.prepare<[string], { data: Buffer }>('SELECT data FROM blob_data WHERE hash = ?');
    for (const row of db.prepare<[], { hash: string; refcount: number }>('SELECT hash, refcount FROM blob_refs').all()) {
      const data = inline.get(row.hash)?.data;
      const file = join(f.dataDir, 'blobs', row.hash.slice(0, 2), row.hash);
      out.set(row.hash, { refcount: row.refcount, bytes: data ?? (existsSync(file) ? readFileSync(file) : Buffer.alloc(0)) });
    }
    return out;
  } finally {
    db.close();
  }
}

test('a message to 3 local recipients is stored once; each copy has its own Return-Path, Delivered-To, X-Rcpt-To', async () => {
  const users = [unique('three'), unique('three'), unique('three')].map((l) => `${l}@${DOMAIN}`);
  await admin.addUsers(users);
  const blobsBefore = storedBlobs();
  const out = py(
    `
s = smtplib.SMTP(H, P25, timeout=10)
s.ehlo('client.example')
out['refused'] = s.sendmail('list@far.example', os.environ['RCPTS'].split(','), b'Subject: three\\r\\n\\r\\none blob\\r\\n')
s.quit()
`,
    { RCPTS: users.join(',') },
  );
  assert.deepEqual(out.refused, {});
  const hashes = new Set<string>();
  let received: string | null = null;
  for (const u of users) {
    const msgs = await inbox(u);
    assert.equal(msgs.length, 1);
    const d = msgs[0]!;
    hashes.add(d.record.blobHash);
    const parts = dissect(d);
    assert.equal(parts.prefix, `Return-Path: <list@far.example>\r\nDelivered-To: ${u}\r\nX-Rcpt-To: ${u}\r\n`);
    // The Received header is in the shared blob: identical for the three copies.
    received ??= parts.received;
    assert.equal(parts.received, received);
    assert.equal(parts.rest.toString(), 'Subject: three\r\n\r\none blob\r\n');
  }
  assert.equal(hashes.size, 1, 'the three copies reference one blob');
  const [hash] = [...hashes] as [string];
  const after = storedBlobs();
  const added = [...after.keys()].filter((h) => !blobsBefore.has(h));
  assert.deepEqual(added, [hash], 'exactly one new blob');
  assert.equal(after.get(hash)!.refcount, 3, 'referenced by the three copies');
  assert.equal(createHash('sha256').update(after.get(hash)!.bytes).digest('hex'), hash, 'the blob is content-addressed');
});

test('send_message with SMTPUTF8: a UTF-8 local part and UTF-8 headers arrive intact', async () => {
  const local = `jörg.${unique('u')}`;
  const user = `${local}@${DOMAIN}`;
  await admin.addUsers([user]);
  const out = py(
    `
s = smtplib.SMTP(H, P25, timeout=10)
s.ehlo('client.example')
out['smtputf8'] = s.has_extn('smtputf8')
m = EmailMessage()
m['From'] = 'Zoë <zoë@far.example>'
m['To'] = os.environ['U']
m['Subject'] = 'Grüße aus Köln ✓'
m.set_content('Ünïcödé body ✓\\n')
out['refused'] = s.send_message(m)
s.quit()
`,
    { U: user },
  );
  assert.equal(out.smtputf8, true);
  assert.deepEqual(out.refused, {});
  const msgs = await inbox(user);
  assert.equal(msgs.length, 1);
  const { prefix, received, rest } = dissect(msgs[0]!);
  assert.equal(prefix, `Return-Path: <zoë@far.example>\r\nDelivered-To: ${user}\r\nX-Rcpt-To: ${user}\r\n`);
  assert.match(received, /with UTF8SMTP id /);
  const text = rest.toString('utf8');
  assert.deepEqual(headerOf(text, 'Subject'), ['Grüße aus Köln ✓']);
  assert.deepEqual(headerOf(text, 'To'), [user]);
  assert.ok(text.includes('Ünïcödé body ✓'), text);
});

test('8BITMIME: body bytes 0x80-0xFF arrive exactly, dot-stuffing undone', async () => {
  const user = `${unique('eight')}@${DOMAIN}`;
  await admin.addUsers([user]);
  const high = Buffer.from(Array.from({ length: 128 }, (_, i) => 0x80 + i));
  const message = Buffer.concat([
    Buffer.from('Subject: 8bit\r\nContent-Type: text/plain; charset=latin1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'),
    high.subarray(0, 64),
    Buffer.from('\r\n.leading dot\r\n..two dots\r\n.\tdot tab\r\n'),
    high.subarray(64),
    Buffer.from('\r\ncaf\xe9 na\xefve\r\n', 'latin1'),
  ]);
  const file = join(f.dataDir, `${unique('eightbit')}.eml`);
  writeFileSync(file, message);
  const out = py(
    `
s = smtplib.SMTP(H, P25, timeout=10)
s.ehlo('client.example')
out['8bitmime'] = s.has_extn('8bitmime')
out['refused'] = s.sendmail('bytes@far.example', [os.environ['U']], open(os.environ['FILE'], 'rb').read(), mail_options=['BODY=8BITMIME'])
s.quit()
`,
    { U: user, FILE: file },
  );
  assert.equal(out['8bitmime'], true);
  assert.deepEqual(out.refused, {});
  const msgs = await inbox(user);
  assert.equal(msgs.length, 1);
  const { rest } = dissect(msgs[0]!);
  assert.ok(rest.equals(message), `bytes differ:\n${rest.toString('latin1')}\n---\n${message.toString('latin1')}`);
});

/** Deterministic pseudo-random text of about `size` bytes, CRLF lines up to 998 bytes, some starting with dots. */
function bigMessage(size: number): Buffer {
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,;:!?-_=+/()<>@"\'';
  const parts: string[] = ['Subject: one megabyte\r\nMessage-ID: <big@far.example>\r\n\r\n'];
  let total = parts[0]!.length;
  while (total < size) {
    const len = rand(999);
    let line = '';
    for (let i = 0; i < len; i++) line += alphabet[rand(alphabet.length)];
    if (rand(10) === 0) line = `.${line.slice(1)}`;
    if (rand(50) === 0) line = '.';
    line += '\r\n';
    parts.push(line);
    total += line.length;
  }
  return Buffer.from(parts.join(''), 'latin1');
}

test('a 1 MB message round-trips byte for byte (after the prefix and the Received header)', async () => {
  const user = `${unique('big')}@${DOMAIN}`;
  await admin.addUsers([user]);
  const message = bigMessage(1024 * 1024);
  const file = join(f.dataDir, `${unique('big')}.eml`);
  writeFileSync(file, message);
  const out = py(
    `
s = smtplib.SMTP(H, P25, timeout=30)
s.ehlo('client.example')
data = open(os.environ['FILE'], 'rb').read()
# smtplib declares SIZE=len(data) itself when the server offers SIZE.
out['refused'] = s.sendmail('big@far.example', [os.environ['U']], data)
s.quit()
`,
    { U: user, FILE: file },
  );
  assert.deepEqual(out.refused, {});
  const msgs = await inbox(user);
  assert.equal(msgs.length, 1);
  const { rest } = dissect(msgs[0]!);
  assert.equal(rest.length, message.length);
  assert.ok(rest.equals(message), 'the stored bytes equal the sent bytes');
});

test('CHUNKING over a raw socket: BDAT n, BDAT n LAST, pipelined; BDAT after an error is read and the session continues', async () => {
  const user = `${unique('bdat')}@${DOMAIN}`;
  await admin.addUsers([user]);
  const w = await SmtpWire.greeted(f.ports.smtp);
  try {
    const ehlo = await w.ehlo();
    assert.ok(ehlo.lines.includes('CHUNKING'));

    // A BDAT before MAIL: the chunk (which looks like commands) is read and discarded, then 503.
    const junk = 'MAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\n';
    w.write(`BDAT ${junk.length}\r\n${junk}`);
    assert.equal(codes(await w.read()), '503 5.5.1');
    assert.equal(codes(await w.cmd('NOOP')), '250 2.0.0', 'the chunk was not executed as commands');

    // No valid recipient: the chunk is read, then 554 5.5.1; the transaction can be reset.
    assert.equal(codes(await w.cmd('MAIL FROM:<chunks@far.example>')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<nobody-at-all@${DOMAIN}>`)), '550 5.1.1');
    w.write('BDAT 5 LAST\r\nhello');
    assert.equal(codes(await w.read()), '554 5.5.1');
    assert.equal(codes(await w.cmd('RSET')), '250 2.0.0');

    // A good message in three chunks, the first two pipelined in one write.
    const c1 = 'Subject: chunked\r\n\r\nfirst part, ';
    const c2 = 'second part with a\r\n.\r\nfake end and a bare\nLF inside, ';
    const c3 = 'last part\r\n';
    assert.equal(codes(await w.cmd('MAIL FROM:<chunks@far.example>')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '250 2.1.5');
    w.write(`BDAT ${Buffer.byteLength(c1)}\r\n${c1}BDAT ${Buffer.byteLength(c2)}\r\n${c2}`);
    const [r1, r2] = await w.readN(2);
    assert.equal(codes(r1!), '250 2.0.0');
    assert.equal(codes(r2!), '250 2.0.0');
    // DATA is not allowed once BDAT started (rfc3030 2).
    assert.equal(codes(await w.cmd('DATA')), '503 5.5.1');
    w.write(`BDAT ${Buffer.byteLength(c3)} LAST\r\n${c3}`);
    assert.equal(codes(await w.read()), '250 2.0.0');

    // BDAT 0 LAST ends a message whose last chunk was sent without LAST.
    assert.equal(codes(await w.cmd('MAIL FROM:<chunks@far.example>')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '250 2.1.5');
    const c4 = 'Subject: zero last\r\n\r\nbody\r\n';
    w.write(`BDAT ${c4.length}\r\n${c4}BDAT 0 LAST\r\n`);
    const [r4, r5] = await w.readN(2);
    assert.equal(codes(r4!), '250 2.0.0');
    assert.equal(codes(r5!), '250 2.0.0');
    assert.equal(codes(await w.cmd('QUIT')), '221 2.0.0');
  } finally {
    w.close();
  }
  const msgs = await inbox(user);
  assert.equal(msgs.length, 2);
  // BDAT content is not dot-stuffed: "\r\n.\r\n" is data. The bare LF is normalised (the default policy).
  assert.equal(
    dissect(msgs[0]!).rest.toString(),
    'Subject: chunked\r\n\r\nfirst part, second part with a\r\n.\r\nfake end and a bare\r\nLF inside, last part\r\n',
  );
  assert.match(dissect(msgs[0]!).received, /with ESMTP id /);
  assert.equal(dissect(msgs[1]!).rest.toString(), 'Subject: zero last\r\n\r\nbody\r\n');
});
