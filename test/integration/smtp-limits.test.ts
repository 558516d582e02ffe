/**
 * Every size rule and hard protocol limit of SMTP reception, against the real server: SIZE at
 * MAIL and RCPT (global and per-domain), oversize messages found during DATA/BDAT (read to the
 * end, refused, connection still usable), the drop-connection cap, recipients, quota, errors,
 * line lengths, timeouts and connections per IP.
 *
 * Settings are read by each new session, so a test changes them through the CLI, opens a new
 * connection, and restores them after. Tests in this file run one after another.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FulmarProcess } from './harness.js';
import { Admin, python3, cliAsync, codes, sleep, SmtpWire, unique, startServer, stopServer } from './smtp-wire.js';

const DOMAIN = 'limits.test';
const DEFAULT_MAX = 25 * 1024 * 1024;
let f: FulmarProcess;
let admin: Admin;

before(async () => ({ f, admin } = await startServer(DOMAIN)));
after(() => stopServer(f, admin));

/** Runs `fn` with runtime settings changed, and puts them back after. */
function withSettings(settings: Record<string, string>, fn: () => Promise<void>): Promise<void> {
  return admin.withSettings(settings, fn);
}

/** The same, through the CLI, as an administrator does it. */
async function withCliSettings(settings: Record<string, string>, fn: () => Promise<void>): Promise<void> {
  for (const [k, v] of Object.entries(settings)) await cliAsync(f, 'settings', 'set', k, v);
  try {
    await fn();
  } finally {
    for (const k of Object.keys(settings)) await cliAsync(f, 'settings', 'unset', k);
  }
}

async function inboxCount(address: string): Promise<number> {
  const store = await f.openStore();
  try {
    const account = await store.directory.getAccount(address);
    assert.ok(account, address);
    const box = await store.mail.getMailbox(account.id, 'INBOX');
    return (await store.mail.listMessages(box!.id)).length;
  } finally {
    await store.close();
  }
}

async function inboxTexts(address: string): Promise<string[]> {
  const store = await f.openStore();
  try {
    const account = await store.directory.getAccount(address);
    const box = await store.mail.getMailbox(account!.id, 'INBOX');
    const out: string[] = [];
    for (const m of await store.mail.listMessages(box!.id)) {
      const chunks: Buffer[] = [];
      for await (const c of store.mail.openMessage(m)) chunks.push(c as Buffer);
      out.push(Buffer.concat(chunks).toString('utf8'));
    }
    return out;
  } finally {
    await store.close();
  }
}

/** Files staged in blobs/tmp: an oversized message must leave none behind. */
function stagedFiles(): string[] {
  return readdirSync(join(f.dataDir, 'blobs', 'tmp'));
}

/** A message body of `size` bytes of 76-character lines, with a Subject. */
function body(size: number, subject: string): string {
  const head = `Subject: ${subject}\r\n\r\n`;
  const line = `${'x'.repeat(76)}\r\n`;
  let out = head;
  while (out.length + line.length <= size) out += line;
  return out + 'y'.repeat(Math.max(0, size - out.length - 2)) + '\r\n';
}

async function session(port = f.ports.smtp): Promise<SmtpWire> {
  const w = await SmtpWire.greeted(port);
  await w.ehlo();
  return w;
}

test('EHLO advertises the global limit as SIZE; MAIL FROM with SIZE= over it gets 552 5.3.4 at once', async () => {
  const w = await SmtpWire.greeted(f.ports.smtp);
  try {
    const ehlo = await w.ehlo();
    assert.ok(ehlo.lines.includes(`SIZE ${DEFAULT_MAX}`), ehlo.raw);
    assert.equal(codes(await w.cmd(`MAIL FROM:<big@far.example> SIZE=${DEFAULT_MAX + 1}`)), '552 5.3.4');
    // Nothing was started: a MAIL within the limit is accepted on the same connection.
    assert.equal(codes(await w.cmd(`MAIL FROM:<big@far.example> SIZE=${DEFAULT_MAX}`)), '250 2.1.0');
  } finally {
    w.close();
  }
});

test('per-domain max-message-size: RCPT with a declared SIZE over the domain limit gets 552 5.3.4 for that recipient only', async () => {
  const small = `${unique('small')}.test`;
  await admin.addDomain(small, '10KB');
  const tiny = `${unique('tiny')}@${small}`;
  const roomy = `${unique('roomy')}@${DOMAIN}`;
  await admin.addUsers([tiny, roomy]);
  const w = await session();
  try {
    assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example> SIZE=20000')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<${tiny}>`)), '552 5.3.4');
    assert.equal(codes(await w.cmd(`RCPT TO:<${roomy}>`)), '250 2.1.5');
    assert.equal(codes(await w.cmd('DATA')), '354');
    assert.equal(codes(await w.cmd(`${body(15000, 'domain limit')}.`)), '250 2.0.0');
    // Declared within the domain's limit, the same recipient is accepted.
    assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example> SIZE=5000')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<${tiny}>`)), '250 2.1.5');
    assert.equal(codes(await w.cmd('DATA')), '354');
    assert.equal(codes(await w.cmd(`${body(4000, 'fits the domain')}.`)), '250 2.0.0');
  } finally {
    w.close();
  }
  assert.equal(await inboxCount(roomy), 1);
  assert.equal(await inboxCount(tiny), 1);
});

test('per-domain limit without SIZE: found during DATA, refused after the final dot with 552 5.3.4', async () => {
  const small = `${unique('small')}.test`;
  await admin.addDomain(small, '10KB');
  const tiny = `${unique('tiny')}@${small}`;
  await admin.addUsers([tiny]);
  const w = await session();
  try {
    assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example>')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<${tiny}>`)), '250 2.1.5');
    assert.equal(codes(await w.cmd('DATA')), '354');
    assert.equal(codes(await w.cmd(`${body(30_000, 'too big for the domain')}.`)), '552 5.3.4');
  } finally {
    w.close();
  }
  assert.equal(await inboxCount(tiny), 0);
});

test('a message too large during DATA (no SIZE declared) is read to its end, refused with 552 5.3.4, and the same connection then delivers a small one (smtplib)', async () => {
  const user = `${unique('data')}@${DOMAIN}`;
  await admin.addUsers([user]);
  await withSettings({ 'smtp.max_message_size': '64KB' }, async () => {
    const out = JSON.parse(
      python3(
        `
import smtplib, os, json
out = {}
s = smtplib.SMTP('127.0.0.1', int(os.environ['PORT']), timeout=20)
s.ehlo('client.example')
out['size'] = s.esmtp_features.get('size')
big = b'Subject: too big\\r\\n\\r\\n' + (b'z' * 998 + b'\\r\\n') * 300
s.mail('sender@far.example')           # no SIZE= declared
s.rcpt(os.environ['U'])
out['big'] = list(s.data(big)); out['big'][1] = out['big'][1].decode()
out['small'] = s.sendmail('sender@far.example', [os.environ['U']], b'Subject: small\\r\\n\\r\\nfits\\r\\n')
out['noop'] = s.noop()[0]
s.quit()
print(json.dumps(out))
`,
        { PORT: String(f.ports.smtp), U: user },
      ),
    ) as { size: string; big: [number, string]; small: Record<string, unknown>; noop: number };
    assert.equal(out.size, String(64 * 1024), 'the lowered limit is advertised in the new session');
    assert.equal(out.big[0], 552, out.big[1]);
    assert.match(out.big[1], /^5\.3\.4 /);
    assert.deepEqual(out.small, {});
    assert.equal(out.noop, 250);
  });
  const texts = await inboxTexts(user);
  assert.equal(texts.length, 1, 'only the small message was stored');
  assert.ok(texts[0]!.includes('Subject: small'));
  assert.deepEqual(stagedFiles(), [], 'nothing of the oversized message is left in the spool');
});

test('a message too large during BDAT is read to its end, refused with 552 5.3.4 at LAST, and the connection stays usable', async () => {
  const user = `${unique('bdat')}@${DOMAIN}`;
  await admin.addUsers([user]);
  await withSettings({ 'smtp.max_message_size': '64KB' }, async () => {
    const w = await session();
    try {
      const chunk = body(50_000, 'bdat too big');
      assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example>')), '250 2.1.0');
      assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '250 2.1.5');
      w.write(`BDAT ${chunk.length}\r\n${chunk}`);
      const first = await w.read();
      w.write(`BDAT ${chunk.length} LAST\r\n${chunk}`);
      const last = await w.read();
      // Like DATA: the message is read to its end and refused once, after the LAST chunk.
      assert.equal(codes(first), '250 2.0.0', first.raw);
      assert.equal(codes(last), '552 5.3.4', last.raw);
      // The chunks were consumed exactly: the next command is understood.
      const small = 'Subject: small bdat\r\n\r\nfits\r\n';
      assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example>')), '250 2.1.0');
      assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '250 2.1.5');
      w.write(`BDAT ${small.length} LAST\r\n${small}`);
      assert.equal(codes(await w.read()), '250 2.0.0');
    } finally {
      w.close();
    }
  });
  const texts = await inboxTexts(user);
  assert.equal(texts.length, 1);
  assert.ok(texts[0]!.includes('Subject: small bdat'));
});

test('smtp.drop_connection_size: past it during DATA the server replies 552 and closes', async () => {
  const user = `${unique('drop')}@${DOMAIN}`;
  await admin.addUsers([user]);
  await withSettings({ 'smtp.max_message_size': '64KB', 'smtp.drop_connection_size': '256KB' }, async () => {
    const w = await session();
    try {
      assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example>')), '250 2.1.0');
      assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '250 2.1.5');
      assert.equal(codes(await w.cmd('DATA')), '354');
      // 1 MB without the end of data: the server must not wait for the dot.
      w.write(body(1024 * 1024, 'flood'));
      const r = await w.read();
      assert.equal(codes(r), '552 5.3.4', r.raw);
      await w.waitClosed(5000);
    } finally {
      w.close();
    }
  });
  assert.equal(await inboxCount(user), 0);
});

test('smtp.drop_connection_size: a BDAT chunk that would pass it gets 552 and the connection is closed', async () => {
  const user = `${unique('dropb')}@${DOMAIN}`;
  await admin.addUsers([user]);
  await withSettings({ 'smtp.max_message_size': '64KB', 'smtp.drop_connection_size': '256KB' }, async () => {
    const w = await session();
    try {
      assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example>')), '250 2.1.0');
      assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '250 2.1.5');
      const r = await w.cmd(`BDAT ${300 * 1024} LAST`);
      assert.equal(codes(r), '552 5.3.4', r.raw);
      await w.waitClosed(5000);
    } finally {
      w.close();
    }
  });
});

test('too many recipients: 452 4.5.3 past smtp.max_recipients, the first ones still get the message', async () => {
  const users = [1, 2, 3, 4].map(() => `${unique('many')}@${DOMAIN}`);
  await admin.addUsers(users);
  await withSettings({ 'smtp.max_recipients': '3' }, async () => {
    const w = await session();
    try {
      assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example>')), '250 2.1.0');
      for (const u of users.slice(0, 3)) assert.equal(codes(await w.cmd(`RCPT TO:<${u}>`)), '250 2.1.5');
      assert.equal(codes(await w.cmd(`RCPT TO:<${users[3]}>`)), '452 4.5.3');
      assert.equal(codes(await w.cmd('DATA')), '354');
      assert.equal(codes(await w.cmd('Subject: three of four\r\n\r\nhi\r\n.')), '250 2.0.0');
    } finally {
      w.close();
    }
  });
  assert.deepEqual(await Promise.all(users.map(inboxCount)), [1, 1, 1, 0]);
});

test('over quota: 452 4.2.2 once the mailbox is full, and at once when the declared SIZE does not fit', async () => {
  const full = `${unique('quota')}@${DOMAIN}`;
  const fresh = `${unique('quota')}@${DOMAIN}`;
  await admin.addUsers([full, fresh], 'secret', '1KB');
  const w = await session();
  try {
    // The first message (2 KB, no SIZE) fits the empty mailbox's check and is delivered.
    assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example>')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<${full}>`)), '250 2.1.5');
    assert.equal(codes(await w.cmd('DATA')), '354');
    assert.equal(codes(await w.cmd(`${body(2048, 'fills the mailbox')}.`)), '250 2.0.0');
    // Now the mailbox is over its quota.
    assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example>')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<${full}>`)), '452 4.2.2');
    assert.equal(codes(await w.cmd('RSET')), '250 2.0.0');
    // A declared size over the quota of an empty mailbox.
    assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example> SIZE=2048')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<${fresh}>`)), '452 4.2.2');
  } finally {
    w.close();
  }
  assert.equal(await inboxCount(full), 1);
  assert.equal(await inboxCount(fresh), 0);
});

test('smtp.max_errors (default 10): the 10th error is answered, then 421 and the connection closes', async () => {
  const w = await session();
  try {
    for (let i = 1; i <= 9; i++) assert.equal(codes(await w.cmd(`BOGUS${i}`)), '500 5.5.2', `error ${i}`);
    assert.equal(codes(await w.cmd('BOGUS10')), '500 5.5.2');
    const r = await w.read();
    assert.equal(codes(r), '421 4.7.0', r.raw);
    await w.waitClosed(5000);
  } finally {
    w.close();
  }
});

test('an over-long command line gets 500 5.5.2 and the session continues', async () => {
  const w = await session();
  try {
    assert.equal(codes(await w.cmd(`NOOP ${'x'.repeat(20_000)}`)), '500 5.5.2');
    assert.equal(codes(await w.cmd(`MAIL FROM:<${'a'.repeat(3000)}@far.example>`)), '501 5.1.7');
    assert.equal(codes(await w.cmd('NOOP')), '250 2.0.0');
    assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example>')), '250 2.1.0');
  } finally {
    w.close();
  }
});

test('data line length and header size: refused with 554 5.6.0 and 552 5.3.4, the session continues', async () => {
  const user = `${unique('lines')}@${DOMAIN}`;
  await admin.addUsers([user]);
  await withSettings({ 'smtp.max_line_length': '1000', 'smtp.max_header_size': '16KB' }, async () => {
    const w = await session();
    try {
      assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example>')), '250 2.1.0');
      assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '250 2.1.5');
      assert.equal(codes(await w.cmd('DATA')), '354');
      assert.equal(codes(await w.cmd(`Subject: long line\r\n\r\n${'L'.repeat(5000)}\r\n.`)), '554 5.6.0');

      let header = 'Subject: big header\r\n';
      for (let i = 0; i < 400; i++) header += `X-Filler-${i}: ${'h'.repeat(60)}\r\n`;
      assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example>')), '250 2.1.0');
      assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '250 2.1.5');
      assert.equal(codes(await w.cmd('DATA')), '354');
      assert.equal(codes(await w.cmd(`${header}\r\nbody\r\n.`)), '552 5.3.4');

      assert.equal(codes(await w.cmd('MAIL FROM:<s@far.example>')), '250 2.1.0');
      assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '250 2.1.5');
      assert.equal(codes(await w.cmd('DATA')), '354');
      assert.equal(codes(await w.cmd('Subject: fine\r\n\r\nshort lines\r\n.')), '250 2.0.0');
    } finally {
      w.close();
    }
  });
  assert.equal(await inboxCount(user), 1);
});

test('idle timeout: a silent client gets 421 4.4.2 and is disconnected (set with the CLI: settings set smtp.idle_timeout 1s)', async () => {
  await withCliSettings({ 'smtp.idle_timeout': '1s' }, async () => {
    const started = Date.now();
    const w = await SmtpWire.greeted(f.ports.smtp);
    try {
      await w.ehlo();
      const r = await w.read(5000);
      assert.equal(codes(r), '421 4.4.2', r.raw);
      await w.waitClosed(3000);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 900 && elapsed < 4000, `closed after ${elapsed} ms`);
    } finally {
      w.close();
    }
  });
});

test('session timeout: an active session is closed with 421 4.4.2 when smtp.session_timeout is over', async () => {
  await withSettings({ 'smtp.session_timeout': '2s' }, async () => {
    const started = Date.now();
    const w = await session();
    try {
      let last = await w.cmd('NOOP');
      while (last.code === 250 && Date.now() - started < 6000) {
        await sleep(200);
        last = await w.cmd('NOOP');
      }
      assert.equal(codes(last), '421 4.4.2', last.raw);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 1900 && elapsed < 5000, `closed after ${elapsed} ms`);
      await w.waitClosed(3000);
    } finally {
      w.close();
    }
  });
});

/** Waits until every connection the server logged has also ended (earlier tests close theirs asynchronously). */
async function serverIdle(timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (f.events('smtp.connect').length > f.events('smtp.disconnect').length) {
    if (Date.now() > deadline) assert.fail('connections of earlier tests are still open');
    await sleep(50);
  }
}

test('connections per IP: with smtp.max_connections_per_ip 2, the third connection gets 421', async () => {
  await withSettings({ 'smtp.max_connections_per_ip': '2' }, async () => {
    await serverIdle();
    const a = await SmtpWire.greeted(f.ports.smtp);
    const b = await SmtpWire.greeted(f.ports.submission);
    const c = await SmtpWire.open(f.ports.smtp);
    try {
      const r = await c.read();
      assert.equal(codes(r), '421 4.7.0', r.raw);
      await c.waitClosed(5000);
      // The first two are unaffected.
      assert.equal(codes(await a.cmd('NOOP')), '250 2.0.0');
      assert.equal(codes(await b.cmd('NOOP')), '250 2.0.0');
      // A slot freed is a slot available again.
      assert.equal(codes(await a.cmd('QUIT')), '221 2.0.0');
      await a.waitClosed();
      await sleep(100);
      const d = await SmtpWire.greeted(f.ports.smtp);
      d.close();
    } finally {
      a.close();
      b.close();
      c.close();
    }
  });
});

test('failed logins are counted per IP: past auth.max_failures_per_ip, AUTH gets 454 4.7.0 without a password check', async () => {
  const user = `${unique('throttle')}@${DOMAIN}`;
  await admin.addUsers([user], 'right-password');
  const plain = (pw: string): string => Buffer.from(`\0${user}\0${pw}`).toString('base64');
  await admin.withSettings({ 'auth.max_failures_per_ip': '2', 'auth.allow_plaintext': 'true' }, async () => {
    const c = await SmtpWire.greeted(f.ports.smtp);
    assert.equal((await c.cmd('EHLO client.example')).code, 250);
    assert.equal(codes(await c.cmd(`AUTH PLAIN ${plain('wrong-1')}`)), '535 5.7.8');
    assert.equal(codes(await c.cmd(`AUTH PLAIN ${plain('wrong-2')}`)), '535 5.7.8');
    assert.equal(codes(await c.cmd(`AUTH PLAIN ${plain('right-password')}`)), '454 4.7.0', 'even the right password waits');
    await c.cmd('QUIT');
  });
  // A higher limit lets the address log in again.
  await admin.withSettings({ 'auth.max_failures_per_ip': '50', 'auth.allow_plaintext': 'true' }, async () => {
    const c = await SmtpWire.greeted(f.ports.smtp);
    assert.equal((await c.cmd('EHLO client.example')).code, 250);
    assert.equal(codes(await c.cmd(`AUTH PLAIN ${plain('right-password')}`)), '235 2.7.0');
    await c.cmd('QUIT');
  });
});
