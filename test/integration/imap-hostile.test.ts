/**
 * Hostile and sloppy IMAP clients against the real server, over raw sockets: unknown and
 * malformed commands, commands in the wrong state, over-long lines, literals of every size and
 * kind (before login, on APPEND beyond APPENDLIMIT, 30 MB through a synchronising literal),
 * commands pipelined after STARTTLS, bare CR, invalid mailbox names and path tricks, error
 * floods, the login timeout, garbage SASL, IDLE misuse, COMPRESS=DEFLATE, and random bytes.
 *
 * Each case checks the exact tagged answer, that nothing else was sent, and that the connection
 * still works afterwards. One server for the file; each test has its own account.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FulmarProcess } from './harness.js';
import { ImapWire, listedNames, quote, type ImapResult } from './imap-wire.js';
import { deliver, storedInbox } from './pop3-wire.js';
import { Admin, rssKb, sleep, startServer, stopServer, unique } from './smtp-wire.js';

const DOMAIN = 'imap-hostile.test';
const DEFAULT_BOXES = ['Archive', 'Drafts', 'INBOX', 'Junk', 'Sent', 'Trash'];
let f: FulmarProcess;
let admin: Admin;

before(async () => ({ f, admin } = await startServer(DOMAIN)));
after(() => stopServer(f, admin));

async function newUser(prefix: string, messages = 0): Promise<string> {
  const user = `${unique(prefix)}@${DOMAIN}`;
  await admin.addUsers([user]);
  for (let i = 1; i <= messages; i++) {
    await deliver(f, [user], `From: <sender@far.example>\r\nTo: <${user}>\r\nSubject: message ${i}\r\n\r\nbody ${i}\r\n`);
  }
  return user;
}

/** The status line of a result as `TAG STATUS [CODE]`, for compact assertions. */
function head(r: ImapResult): string {
  return `${r.tag} ${r.status}${r.code ? ` [${r.code}]` : ''}`;
}

/** The connection still works: NOOP is answered OK with nothing else, and no stray bytes follow. */
async function assertUsable(w: ImapWire, what: string): Promise<void> {
  const r = await w.command('NOOP');
  assert.equal(r.status, 'OK', `${what}: NOOP after it: ${r.tagged.raw}`);
  assert.deepEqual(r.lines, [], `${what}: nothing but the NOOP's OK`);
  assert.equal(await w.drain(50), '', `${what}: no stray bytes`);
}

/** Sends a raw line and expects exactly one BAD, tagged `tag` (or `*`), then checks the connection. */
async function expectBad(w: ImapWire, line: string | Buffer, tag: string, text?: RegExp): Promise<void> {
  const label = JSON.stringify(typeof line === 'string' ? line.slice(0, 120) : line.toString('latin1').slice(0, 120));
  const r = await w.raw(line);
  assert.equal(r.kind === 'continuation' ? '+' : r.text.split(' ', 2).join(' '), `${tag} BAD`, `${label}: ${r.raw}`);
  if (text) assert.match(r.text, text, label);
  await assertUsable(w, label);
}

async function mailboxes(user: string): Promise<string[]> {
  const w = await ImapWire.login(f, user);
  try {
    const r = await w.command('LIST "" "*"');
    assert.equal(r.status, 'OK');
    return listedNames(r);
  } finally {
    w.close();
  }
}

// ---- syntax and state

test('unknown command, missing tag, tags with "+" or "*", empty line: one BAD each, the connection goes on', async () => {
  const w = await ImapWire.greeted(f.ports.imap);
  try {
    await expectBad(w, 'A1 FROBNICATE now', 'A1', /^A1 BAD Unknown command FROBNICATE/);
    await expectBad(w, 'A2 XYZZY', 'A2');
    await expectBad(w, 'A3 UID FROB 1', 'A3', /Unknown command UID FROB/);
    await expectBad(w, 'NOOP', 'NOOP', /Missing command/); // the only word is the tag
    await expectBad(w, ' NOOP', '*', /Invalid tag/);
    await expectBad(w, '', '*');
    await expectBad(w, '+ NOOP', '*', /Invalid tag/);
    await expectBad(w, '* NOOP', '*', /Invalid tag/);
    await expectBad(w, 'a+b NOOP', '*', /Invalid tag/);
    await expectBad(w, 'a*b NOOP', '*', /Invalid tag/);
    await expectBad(w, 'a%b NOOP', '*', /Invalid tag/);
    await expectBad(w, 'A4 NOOP(', 'A4', /Invalid command name/);
    await expectBad(w, 'A5 NOOP extra', 'A5', /Unexpected extra arguments/);
    await expectBad(w, 'A6 CAPABILITY ', 'A6');
  } finally {
    w.close();
  }
});

test('commands in the wrong state get BAD and do nothing: before login, before SELECT, after login', async () => {
  const user = await newUser('state', 1);
  const w = await ImapWire.greeted(f.ports.imaps, { tls: true });
  try {
    for (const c of ['SELECT INBOX', 'EXAMINE INBOX', 'LIST "" *', 'CREATE x', 'DELETE INBOX', 'STATUS INBOX (MESSAGES)', 'ENABLE IMAP4rev2', 'IDLE', 'FETCH 1 FLAGS', 'EXPUNGE', 'COMPRESS DEFLATE']) {
      const r = await w.command(c);
      assert.equal(head(r), `${r.tag} BAD`, `${c} before login: ${r.tagged.raw}`);
      assert.match(r.text, /log in first/, c);
      assert.deepEqual(r.lines, [], c);
      await assertUsable(w, c); // and keeps the count of bad commands in a row below imap.max_errors
    }
    assert.equal((await w.command('NOOP')).status, 'OK');
    const login = await w.command(`LOGIN ${quote(user)} secret`);
    assert.equal(login.status, 'OK', login.tagged.raw);
    for (const c of ['FETCH 1 FLAGS', 'STORE 1 +FLAGS (\\Deleted)', 'SEARCH ALL', 'UID SEARCH ALL', 'EXPUNGE', 'UID EXPUNGE 1', 'CLOSE', 'UNSELECT', 'CHECK', 'COPY 1 Trash', 'MOVE 1 Trash']) {
      const r = await w.command(c);
      assert.equal(head(r), `${r.tag} BAD`, `${c} before SELECT: ${r.tagged.raw}`);
      assert.match(r.text, /selected mailbox/, c);
      assert.deepEqual(r.lines, [], c);
      await assertUsable(w, c);
    }
    for (const c of ['STARTTLS', `LOGIN ${quote(user)} secret`, 'AUTHENTICATE PLAIN']) {
      const r = await w.command(c);
      assert.equal(head(r), `${r.tag} BAD`, `${c} after login: ${r.tagged.raw}`);
    }
    await assertUsable(w, 'after the wrong-state commands');
    // Nothing was copied, moved, expunged or flagged.
    const s = await w.command('STATUS INBOX (MESSAGES UNSEEN DELETED)');
    assert.deepEqual(s.lines, ['* STATUS INBOX (MESSAGES 1 UNSEEN 1 DELETED 0)']);
    const t = await w.command('STATUS Trash (MESSAGES)');
    assert.deepEqual(t.lines, ['* STATUS Trash (MESSAGES 0)']);
  } finally {
    w.close();
  }
});

test('bad syntax for every major command: a tagged BAD each, and the connection goes on', async () => {
  const user = await newUser('syntax', 2);
  const w = await ImapWire.login(f, user, 'secret', 'INBOX');
  const cases = [
    'FETCH 1 (BODY[',
    'FETCH 1 (BODY[)',
    'FETCH 1 BODY[HEADER.FIELDS]',
    'FETCH 1 BODY[HEADER.FIELDS ()]',
    'FETCH 1 BODY[1.MIME',
    'FETCH 1 BODY[]<0>',
    'FETCH 1 BODY[]<0.0>',
    'FETCH 1 (FLAGS',
    'FETCH 1 (FLAGS))',
    'FETCH 1 (FROB)',
    'FETCH 1',
    'FETCH',
    'FETCH 1 ()',
    'FETCH 1 FLAGS (CHANGEDSINCE)',
    'FETCH 1 FLAGS (VANISHED)',
    'STORE 1 +FLAGS (\\Seen',
    'STORE 1 +FLAGS ((\\Seen))',
    'STORE 1 +FLAGS (\\)',
    'STORE 1 +FLAGS ("\\Seen")',
    'STORE 1 +FLAGS (\\Seen) extra)',
    'STORE 1 FROB (\\Seen)',
    'STORE 1 +FLAGS',
    'STORE 1 FLAGS.NOISY (\\Seen)',
    'STORE 1 (UNCHANGEDSINCE x) FLAGS (\\Seen)',
    'SEARCH',
    'SEARCH (ALL',
    'SEARCH ALL)',
    'SEARCH ((ALL)',
    'SEARCH OR ALL',
    'SEARCH NOT',
    'SEARCH FROB',
    'SEARCH SINCE 32-Jan-2020',
    'SEARCH SINCE 1-Foo-2020',
    'SEARCH LARGER x',
    'SEARCH CHARSET',
    'SEARCH HEADER Subject',
    'SEARCH UID x',
    'SEARCH RETURN (FROB) ALL',
    `SEARCH ${'('.repeat(200)}ALL${')'.repeat(200)}`,
    `SEARCH ${'NOT '.repeat(200)}ALL`,
    `SEARCH ${'OR ALL '.repeat(200)}ALL`,
    'SELECT',
    'SELECT INBOX (FROB)',
    'SELECT INBOX (QRESYNC (1 2))',
    'EXAMINE INBOX extra',
    'CREATE',
    'CREATE "unterminated',
    'CREATE a (USE (\\Sent)',
    'DELETE',
    'RENAME INBOX',
    'STATUS INBOX',
    'STATUS INBOX ()',
    'STATUS INBOX (FROB)',
    'STATUS INBOX (MESSAGES',
    'LIST ""',
    'LIST (FROB) "" *',
    'LIST "" * RETURN (FROB)',
    'LSUB ""',
    'APPEND INBOX',
    'APPEND INBOX (\\Seen) "bad date" {3+}\r\nabc',
    'APPEND INBOX "32-Jan-2020 00:00:00 +0000" {3+}\r\nabc',
    'COPY 1',
    'COPY x Trash',
    'MOVE 1:* ',
    'UID',
    'UID FETCH',
    'UID STORE 1 FLAGS',
    'UID EXPUNGE',
    'EXPUNGE now',
    'ENABLE',
    'ID',
    'ID (',
    'ID ("name")',
    'GETQUOTAROOT',
    'SETQUOTA "" (STORAGE x)',
    'COMPRESS',
    'IDLE now',
  ];
  try {
    for (const [i, c] of cases.entries()) {
      const tag = `S${i}`;
      await expectBad(w, `${tag} ${c}`, tag);
    }
    // Still selected, and nothing changed: both messages, no flags.
    const r = await w.command('FETCH 1:* (FLAGS)');
    assert.deepEqual(r.lines, ['* 1 FETCH (FLAGS ())', '* 2 FETCH (FLAGS ())']);
    assert.deepEqual(await mailboxes(user), DEFAULT_BOXES, 'no mailbox was created');
  } finally {
    w.close();
  }
});

test('SEARCH nested 50 levels deep works; 200 levels (parens, NOT, OR) is a BAD without a crash', async () => {
  const user = await newUser('deep', 2);
  const w = await ImapWire.login(f, user, 'secret', 'INBOX');
  try {
    const ok = await w.command(`SEARCH ${'('.repeat(50)}ALL${')'.repeat(50)}`);
    assert.equal(ok.status, 'OK', ok.tagged.raw);
    assert.deepEqual(ok.lines, ['* SEARCH 1 2']);
    const not = await w.command(`SEARCH ${'NOT NOT '.repeat(20)}SUBJECT "message 2"`);
    assert.deepEqual(not.lines, ['* SEARCH 2']);
    for (const deep of [`${'('.repeat(200)}ALL${')'.repeat(200)}`, `${'NOT '.repeat(200)}ALL`, `${'OR ALL '.repeat(200)}ALL`, `${'('.repeat(5000)}ALL${')'.repeat(5000)}`]) {
      const r = await w.command(`SEARCH ${deep}`);
      assert.equal(head(r), `${r.tag} BAD`, r.tagged.raw);
      assert.match(r.text, /nested too deeply/);
    }
    await assertUsable(w, 'deep SEARCH');
  } finally {
    w.close();
  }
});

test('bad sequence numbers: 0, 1:x, *:0, past the end, over 32 bits: BAD; UID sets past the end are empty', async () => {
  const user = await newUser('seq', 3);
  const w = await ImapWire.login(f, user, 'secret', 'INBOX');
  try {
    for (const c of ['FETCH 0 FLAGS', 'FETCH 1:x FLAGS', 'FETCH 1,,2 FLAGS', 'FETCH 1: FLAGS', 'FETCH :1 FLAGS', 'FETCH -1 FLAGS', 'FETCH 1:0 FLAGS', 'FETCH 4294967296 FLAGS', 'FETCH 99999999999999999999 FLAGS', 'STORE 0 +FLAGS (\\Seen)', 'COPY 0 Trash', 'UID FETCH 0 FLAGS', 'SEARCH 0', 'SEARCH UID 0']) {
      const r = await w.command(c);
      assert.equal(head(r), `${r.tag} BAD`, `${c}: ${r.tagged.raw}`);
      assert.deepEqual(r.lines, [], c);
      await assertUsable(w, c);
    }
    // rfc9051 9 (seq-number): a number past the last message is a BAD, for every command.
    for (const c of ['FETCH 4 FLAGS', 'FETCH 1:4 FLAGS', 'FETCH 4:* FLAGS', 'STORE 4 +FLAGS (\\Deleted)', 'STORE 1:4 +FLAGS (\\Deleted)', 'COPY 4 Trash', 'MOVE 2:9 Trash']) {
      const r = await w.command(c);
      assert.equal(head(r), `${r.tag} BAD`, `${c}: ${r.tagged.raw}`);
      assert.deepEqual(r.lines, [], `${c}: nothing fetched, stored, copied or moved`);
      await assertUsable(w, c);
    }
    // rfc9051 6.4.9: UIDs that do not exist are ignored.
    const uid = await w.command('UID FETCH 4:4294967295 FLAGS');
    assert.equal(uid.status, 'OK');
    assert.deepEqual(uid.lines, []);
    const s = await w.command('STATUS Trash (MESSAGES)');
    assert.deepEqual(s.lines, ['* STATUS Trash (MESSAGES 0)']);
    const flags = await w.command('FETCH 1:* FLAGS');
    assert.deepEqual(flags.lines, ['* 1 FETCH (FLAGS ())', '* 2 FETCH (FLAGS ())', '* 3 FETCH (FLAGS ())']);
  } finally {
    w.close();
  }
});

// ---- lines and literals

test('a line over 64 KB gets one BAD and the connection recovers, also when it ends in a literal announcement', async () => {
  const w = await ImapWire.greeted(f.ports.imap);
  try {
    const long = 'x'.repeat(70 * 1024);
    await expectBad(w, `L1 NOOP ${long}`, 'L1', /Line too long/);
    // 1 MB in pieces, with no newline until the end.
    for (let i = 0; i < 16; i++) await w.writeAndDrain('y'.repeat(64 * 1024));
    await expectBad(w, 'z', '*', /Line too long/);
    // A long line ending in a synchronising literal announcement: no "+", the command is over.
    w.write(`L2 LOGIN ${long} {5}\r\n`);
    const r = await w.response();
    assert.equal(r.text.split(' ', 2).join(' '), 'L2 BAD', r.raw);
    await assertUsable(w, 'long line with {5}');
    // ... and a non-synchronising one: its 5 octets are skipped, not run as a command.
    w.write(`L3 LOGIN ${long} {5+}\r\nL4 NO\r\n`);
    const r3 = await w.response();
    assert.equal(r3.text.split(' ', 2).join(' '), 'L3 BAD', r3.raw);
    await assertUsable(w, 'long line with {5+}');
  } finally {
    w.close();
  }
});

test('before login: a synchronising literal over 8 KB gets NO [TOOBIG] and no "+"; a non-synchronising one is skipped', async () => {
  const w = await ImapWire.greeted(f.ports.imap);
  try {
    w.write('T1 LOGIN {8193}\r\n');
    const r = await w.response();
    assert.equal(r.kind, 'tagged', `no continuation request: ${r.raw}`);
    assert.match(r.text, /^T1 NO \[TOOBIG\] /);
    await assertUsable(w, 'refused sync literal');
    // The client sent nothing more; a client that sends the data anyway has it parsed as commands.
    w.write(`T2 LOGIN {20000+}\r\n${'a'.repeat(20000)} {3+}\r\nabc\r\n`);
    const r2 = await w.response();
    assert.match(r2.text, /^T2 NO \[TOOBIG\] /, r2.raw);
    await assertUsable(w, 'refused non-sync literal');
    // 8 KB is still fine (the password is simply wrong).
    w.write(`T3 LOGIN {4}\r\n`);
    await w.continuation();
    w.write(`user {8192+}\r\n${'p'.repeat(8192)}\r\n`);
    const r3 = await w.response();
    assert.match(r3.text, /^T3 NO \[PRIVACYREQUIRED\]/, 'on port 143 without TLS, LOGIN is refused, but after reading it');
    await assertUsable(w, '8 KB literal');
  } finally {
    w.close();
  }
});

test('literal sizes that are not numbers ({99999999999999999999999}, {2^64}): BAD, * BYE and close; {} is only a bad argument', async () => {
  // The octets of a literal whose size cannot be read cannot be skipped: the server closes.
  for (const announcement of ['{99999999999999999999999}', '{18446744073709551616}', '{99999999999999999999999+}', '{18446744073709551616+}']) {
    const w = await ImapWire.greeted(f.ports.imap);
    try {
      w.write(`B1 LOGIN ${announcement}\r\nB2 NOOP\r\n`);
      const r = await w.response();
      assert.match(r.text, /^B1 BAD /, `${announcement}: ${r.raw}`);
      assert.match((await w.response()).text, /^\* BYE /, announcement);
      await w.waitClosed(5000);
      assert.equal(w.pending.length, 0, `${announcement}: the NOOP after it was not run`);
    } finally {
      w.close();
    }
  }
  const w = await ImapWire.greeted(f.ports.imap);
  try {
    await expectBad(w, 'B3 LOGIN {}', 'B3');
    await expectBad(w, 'B4 LOGIN {-1}', 'B4');
    await expectBad(w, 'B5 LOGIN {1x}', 'B5');
  } finally {
    w.close();
  }
});

test('APPEND {100000000+} beyond APPENDLIMIT: skipped without buffering (server RSS flat), then NO [TOOBIG]', async (t) => {
  const user = await newUser('huge');
  const w = await ImapWire.login(f, user);
  const pid = f.child!.pid!;
  try {
    const cap = await w.command('CAPABILITY');
    const limit = Number(/APPENDLIMIT=(\d+)/.exec(cap.lines[0]!)![1]);
    assert.ok(limit < 100_000_000, `APPENDLIMIT ${limit}`);
    const size = 100_000_000;
    const started = Date.now();
    const before = rssKb(pid);
    const samples: number[] = []; // RSS after each 10 MB
    w.write(`H1 APPEND INBOX {${size}+}\r\n`);
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    let sent = 0;
    for (; sent < 30 * 1024 * 1024; sent += chunk.length) {
      await w.writeAndDrain(chunk);
      if ((sent / chunk.length) % 10 === 9) samples.push(rssKb(pid));
    }
    await sleep(200);
    assert.equal(w.pending.length, 0, 'no answer before the literal was skipped (rfc7888 4)');
    for (; sent < size; sent += chunk.length) {
      await w.writeAndDrain(sent + chunk.length <= size ? chunk : chunk.subarray(0, size - sent));
      if ((sent / chunk.length) % 10 === 9) samples.push(rssKb(pid));
    }
    w.write('\r\n');
    const r = await w.until('H1', 30_000);
    const ms = Date.now() - started;
    const peak = Math.max(...samples, rssKb(pid));
    const mb = (kb: number): number => Math.round(kb / 1024);
    t.diagnostic(`100 MB skipped in ${ms} ms; server RSS before ${mb(before)} MB, every 10 MB: ${samples.map(mb).join(' ')} MB`);
    assert.match(r.tagged.text, /^H1 NO \[TOOBIG\] /, r.tagged.raw);
    assert.deepEqual(r.lines, []);
    // Not held: the growth is the garbage collector's slack (V8 lets ~64 MB of freed external
    // buffers wait), far below the 100 MB sent, and flat over the last 50 MB.
    assert.ok(peak - before < 64 * 1024, `RSS grew by ${mb(peak - before)} MB while skipping 100 MB`);
    const late = samples.slice(-5);
    assert.ok(Math.max(...late) - Math.min(...late) < 24 * 1024, `RSS over the last 50 MB: ${late.map(mb).join(' ')} MB`);
    await assertUsable(w, 'after the skipped literal');
    const s = await w.command('STATUS INBOX (MESSAGES)');
    assert.deepEqual(s.lines, ['* STATUS INBOX (MESSAGES 0)']);
  } finally {
    w.close();
  }
});

test('APPEND {100000000} (synchronising) beyond APPENDLIMIT: NO [TOOBIG] at once, no "+"', async () => {
  const user = await newUser('hugesync');
  const w = await ImapWire.login(f, user);
  try {
    w.write('H2 APPEND INBOX (\\Seen) {100000000}\r\n');
    const r = await w.response();
    assert.equal(r.kind, 'tagged', r.raw);
    assert.match(r.text, /^H2 NO \[TOOBIG\] /);
    await assertUsable(w, 'refused sync APPEND');
  } finally {
    w.close();
  }
});

test('APPEND of a 30 MB message through a synchronising literal: stored byte for byte, server RSS growth bounded', async (t) => {
  const user = await newUser('big');
  const pid = f.child!.pid!;
  await admin.withSettings({ 'imap.max_append_size': '64M' }, async () => {
    const w = await ImapWire.login(f, user);
    try {
      const line = `${randomBytes(57).toString('base64')}\r\n`; // 78 octets
      const lines = Math.ceil((30 * 1024 * 1024) / line.length);
      const header = `From: <big@far.example>\r\nTo: <${user}>\r\nSubject: 30 MB\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n`;
      const message = Buffer.concat([Buffer.from(header), Buffer.from(line.repeat(lines))]);
      const digest = createHash('sha256').update(message).digest('hex');
      const before = rssKb(pid);
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, rssKb(pid))), 20);
      const started = Date.now();
      let r: ImapResult;
      try {
        w.write(`B1 APPEND INBOX (\\Flagged) {${message.length}}\r\n`);
        await w.continuation();
        for (let i = 0; i < message.length; i += 256 * 1024) await w.writeAndDrain(message.subarray(i, i + 256 * 1024));
        w.write('\r\n');
        r = await w.until('B1', 60_000);
      } finally {
        clearInterval(sampler);
      }
      const ms = Date.now() - started;
      peak = Math.max(peak, rssKb(pid));
      t.diagnostic(`30 MB APPEND in ${ms} ms; server RSS before ${Math.round(before / 1024)} MB, peak ${Math.round(peak / 1024)} MB (+${Math.round((peak - before) / 1024)} MB)`);
      assert.equal(r.status, 'OK', r.tagged.raw);
      assert.match(r.code ?? '', /^APPENDUID \d+ 1$/);
      assert.ok(peak - before < 40 * 1024, `server RSS grew by ${Math.round((peak - before) / 1024)} MB`);
      const size = await w.command('EXAMINE INBOX');
      assert.ok(size.lines.includes('* 1 EXISTS'), size.lines.join('\n'));
      const f1 = await w.command('FETCH 1 (RFC822.SIZE FLAGS)');
      assert.deepEqual(f1.lines, [`* 1 FETCH (RFC822.SIZE ${message.length} FLAGS (\\Flagged))`]);
      const stored = (await storedInbox(f, user)).messages;
      assert.equal(stored.length, 1);
      assert.equal(createHash('sha256').update(stored[0]!.bytes).digest('hex'), digest, 'stored byte for byte');

      // A client that asks for 3 x 30 MB and does not read: the server waits on the socket
      // instead of buffering the responses.
      w.socket.pause();
      const slowBefore = rssKb(pid);
      w.write('R1 FETCH 1 BODY.PEEK[]\r\nR2 FETCH 1 BODY.PEEK[]\r\nR3 FETCH 1 BODY.PEEK[]\r\n');
      let slowPeak = slowBefore;
      for (let i = 0; i < 15; i++) {
        await sleep(100);
        slowPeak = Math.max(slowPeak, rssKb(pid));
      }
      t.diagnostic(`3 x 30 MB FETCH not read for 1.5 s: server RSS ${Math.round(slowBefore / 1024)} MB -> peak ${Math.round(slowPeak / 1024)} MB`);
      assert.ok(slowPeak - slowBefore < 40 * 1024, `server RSS grew by ${Math.round((slowPeak - slowBefore) / 1024)} MB with a client not reading`);
      w.socket.resume();
      for (const tag of ['R1', 'R2', 'R3']) {
        const r = await w.until(tag, 60_000);
        assert.equal(r.status, 'OK', r.tagged.raw);
        assert.equal(r.untagged.length, 1);
        assert.equal(createHash('sha256').update(r.untagged[0]!.literals[0]!).digest('hex'), digest, `${tag}: byte for byte`);
      }
    } finally {
      w.close();
    }
  });
});

test('STARTTLS: commands pipelined after it are discarded, not run after the handshake', async () => {
  const user = await newUser('tlspipe');
  const w = await ImapWire.greeted(f.ports.imap);
  try {
    const events = f.events('imap.starttls_pipelined').length;
    // If the LOGIN were kept and run after the handshake, the session would be logged in.
    w.write(`P1 STARTTLS\r\nP2 LOGIN ${quote(user)} secret\r\nP3 SELECT INBOX\r\n`);
    const r = await w.response();
    assert.equal(r.text, 'P1 OK Begin TLS negotiation now');
    assert.equal(await w.drain(100), '', 'nothing but the OK in clear text');
    await w.upgrade();
    const cap = await w.command('CAPABILITY');
    assert.equal(cap.lines.length, 1);
    assert.match(cap.lines[0]!, /AUTH=PLAIN/, 'still not authenticated');
    assert.doesNotMatch(cap.lines[0]!, /STARTTLS|NAMESPACE/);
    const sel = await w.command('SELECT INBOX');
    assert.equal(sel.status, 'BAD', `the pipelined LOGIN did not happen: ${sel.tagged.raw}`);
    await assertUsable(w, 'after STARTTLS');
    await sleep(50);
    assert.equal(f.events('imap.starttls_pipelined').length, events + 1, 'the discard is logged');
    const login = await w.command(`LOGIN ${quote(user)} secret`);
    assert.equal(login.status, 'OK');
  } finally {
    w.close();
  }
});

test('a bare CR in a command line: BAD, and neither half is run', async () => {
  const user = await newUser('barecr');
  const w = await ImapWire.login(f, user);
  try {
    await expectBad(w, 'C1 NOOP\rC2 LOGOUT', 'C1', /CR/);
    await expectBad(w, 'C3 CREATE foo\rbar', 'C3', /CR/);
    await expectBad(w, 'C4 CREATE foo\r', 'C4', /CR/); // CR CR LF
    assert.deepEqual(await mailboxes(user), DEFAULT_BOXES);
  } finally {
    w.close();
  }
});

test('a client that drops the connection in the middle of an APPEND literal leaves no staged file and no message', async () => {
  const user = await newUser('dropped');
  const tmp = join(f.dataDir, 'blobs', 'tmp');
  const w = await ImapWire.login(f, user);
  w.write('D1 APPEND INBOX {10000000}\r\n');
  await w.continuation();
  for (let i = 0; i < 5; i++) await w.writeAndDrain(Buffer.alloc(1024 * 1024, 'd'));
  await sleep(100);
  w.close();
  let left: string[] = [];
  for (let i = 0; i < 20; i++) {
    await sleep(100);
    left = readdirSync(tmp);
    if (left.length === 0) break;
  }
  assert.deepEqual(left, [], 'the staged part of the literal was removed');
  const v = await ImapWire.login(f, user);
  try {
    assert.deepEqual((await v.command('STATUS INBOX (MESSAGES)')).lines, ['* STATUS INBOX (MESSAGES 0)']);
  } finally {
    v.close();
  }
});

test('MULTIAPPEND whose second message is too big: NO [TOOBIG] and none of the messages is stored (rfc3502 6.3.11)', async () => {
  const user = await newUser('multi');
  const w = await ImapWire.login(f, user);
  try {
    const first = 'Subject: first\r\n\r\nfirst\r\n';
    // Non-synchronising: the first message is streamed and staged, the second is skipped.
    w.write(`M1 APPEND INBOX {${first.length}+}\r\n${first} (\\Seen) {30000000+}\r\n`);
    for (let i = 0; i < 30; i++) await w.writeAndDrain(Buffer.alloc(1_000_000, 'm'));
    w.write('\r\n');
    const r = await w.until('M1', 30_000);
    assert.match(r.tagged.text, /^M1 NO \[TOOBIG\] /, r.tagged.raw);
    // Synchronising: the server refuses the second literal at once.
    w.write(`M2 APPEND INBOX {${first.length}}\r\n`);
    await w.continuation();
    w.write(`${first} {30000000}\r\n`);
    const r2 = await w.response();
    assert.match(r2.text, /^M2 NO \[TOOBIG\] /, r2.raw);
    await assertUsable(w, 'after MULTIAPPEND');
    assert.deepEqual((await w.command('STATUS INBOX (MESSAGES)')).lines, ['* STATUS INBOX (MESSAGES 0)']);
    assert.deepEqual(readdirSync(join(f.dataDir, 'blobs', 'tmp')), [], 'no staged file left');
  } finally {
    w.close();
  }
});

test('STARTTLS followed by plain-text garbage instead of a handshake: the connection closes, the server goes on', async () => {
  const w = await ImapWire.greeted(f.ports.imap);
  try {
    const r = await w.command('STARTTLS');
    assert.equal(r.status, 'OK');
    w.write('G1 LOGIN not a tls client\r\n');
    await w.waitClosed(5000);
  } finally {
    w.close();
  }
  const v = await ImapWire.greeted(f.ports.imap);
  await assertUsable(v, 'a new connection');
  v.close();
});

// ---- mailbox names

test('invalid modified UTF-7, 8-bit names without UTF8=ACCEPT and invalid UTF-8 with it: BAD or NO, nothing created', async () => {
  const user = await newUser('names');
  const w = await ImapWire.login(f, user);
  try {
    const rev1: Array<string | Buffer> = [
      'CREATE "a&"', // unterminated shift
      'CREATE "&Jjo"', // no "-"
      'CREATE "&AGE-"', // "a" encoded: not canonical (rfc3501 5.1.3)
      'CREATE "&AGEAYgBj-"', // "abc" encoded
      'CREATE "&ZeVnLIqe-&U,BTFw-"', // two shifts back to back: not canonical
      'CREATE "&2D0-"', // a lone high surrogate
      'CREATE "a&b-"', // 6 bits: not a whole code unit
      Buffer.concat([Buffer.from('CREATE "Zo'), Buffer.from([0xc3, 0xab]), Buffer.from('"')]), // 8-bit without UTF8=ACCEPT
    ];
    for (const [i, c] of rev1.entries()) {
      const tag = `M${i}`;
      const r = await w.raw(Buffer.concat([Buffer.from(`${tag} `), Buffer.isBuffer(c) ? c : Buffer.from(c)]));
      assert.match(r.text, new RegExp(`^${tag} (BAD|NO) `), `${c}: ${r.raw}`);
      await assertUsable(w, String(c));
    }
    // Valid modified UTF-7 is accepted: "&-" is "&", "&AOk-" is "é".
    assert.equal((await w.command('CREATE "R&-D"')).status, 'OK');
    assert.equal((await w.command('CREATE "caf&AOk-"')).status, 'OK');
    const en = await w.command('ENABLE UTF8=ACCEPT');
    assert.deepEqual(en.lines, ['* ENABLED UTF8=ACCEPT']);
    const utf8: Buffer[] = [
      Buffer.from([0xc3, 0x28]), // invalid continuation
      Buffer.from([0xc0, 0xaf]), // overlong "/"
      Buffer.from([0xed, 0xa0, 0x80]), // surrogate
      Buffer.from([0xf4, 0x90, 0x80, 0x80]), // beyond U+10FFFF
      Buffer.from([0xff]),
      Buffer.from('a\x7fb'), // DEL: not Net-Unicode (rfc6855 3)
      Buffer.from('a\x1bb'),
    ];
    for (const [i, bytes] of utf8.entries()) {
      const tag = `U${i}`;
      const r = await w.raw(Buffer.concat([Buffer.from(`${tag} CREATE "x`), bytes, Buffer.from('"')]));
      assert.match(r.text, new RegExp(`^${tag} (BAD|NO) `), `${bytes.toString('hex')}: ${r.raw}`);
      await assertUsable(w, bytes.toString('hex'));
    }
    assert.equal((await w.command('CREATE "Zoë"')).status, 'OK');
    const list = await w.command('LIST "" "*"');
    assert.deepEqual(listedNames(list), [...DEFAULT_BOXES, 'R&D', 'Zoë', 'café'].sort());
  } finally {
    w.close();
  }
});

test('mailbox names with path tricks (../../etc, /abs, a//b, *, %, NUL) get NO or BAD; nothing is created, inside or outside', async () => {
  const user = await newUser('paths');
  const w = await ImapWire.login(f, user);
  const dataParent = dirname(f.dataDir);
  const outsideBefore = readdirSync(dataParent).length;
  try {
    const names = ['../../etc', '..', '../x', 'a/../../b', './x', 'a/./b', '/abs', '/etc/passwd', 'a//b', 'a/', '/', '*', '%', 'a*b', 'a%b', 'INBOX/../../etc'];
    for (const name of names) {
      for (const cmd of ['CREATE', 'RENAME Drafts']) {
        const r = await w.command(`${cmd} ${quote(name)}`);
        // "a/" is "a" with the intent to create children (rfc9051 6.3.4); it stays valid for CREATE.
        if (name === 'a/' && cmd === 'CREATE') {
          assert.equal(r.status, 'OK', r.tagged.raw);
          assert.equal((await w.command('DELETE a')).status, 'OK');
          continue;
        }
        assert.match(`${r.status}`, /^(NO|BAD)$/, `${cmd} ${name}: ${r.tagged.raw}`);
        assert.deepEqual(r.lines, []);
      }
    }
    // APPEND, SELECT and STATUS of such names find nothing.
    for (const name of ['../../etc', '/abs', 'a//b']) {
      const a = await w.append(name, 'Subject: x\r\n\r\ny\r\n');
      assert.match(a.tagged.text, /^\S+ NO /, `APPEND ${name}: ${a.tagged.raw}`);
      assert.match((await w.command(`SELECT ${quote(name)}`)).status, /^(NO|BAD)$/);
    }
    // NUL in a literal mailbox name.
    const nul = await w.withLiteral('N1', 'CREATE', Buffer.from('evil\0name'));
    assert.equal(nul.status, 'BAD', nul.tagged.raw);
    const nul8 = await w.raw('N2 CREATE ~{9+}\r\nevil\0name');
    assert.match(nul8.text, /^N2 BAD /, nul8.raw);
    await assertUsable(w, 'NUL names');
    assert.deepEqual(await mailboxes(user), DEFAULT_BOXES, 'the account has only its default mailboxes');
  } finally {
    w.close();
  }
  assert.equal(readdirSync(dataParent).length, outsideBefore, 'nothing new next to the data folder');
  assert.ok(!existsSync(join(f.dataDir, 'etc')) && !existsSync(join(f.dataDir, '..', 'etc', 'passwd.imap')));
});

test('names with C1 controls, U+2028 or U+2029 are refused (rfc6855 3, rfc9051 5.1), as modified UTF-7 and as UTF-8', async () => {
  const user = await newUser('c1');
  const w = await ImapWire.login(f, user);
  try {
    // rfc6855 3 / rfc9051 5.1: mailbox names MUST NOT contain U+0000-U+001F, U+0080-U+009F, U+007F, U+2028, U+2029.
    for (const wire of ['&AIU-', 'a&AIA-b', 'a&AJ8-', 'a&ICg-b', 'a&ICk-b', 'a&AAE-b']) {
      const r = await w.command(`CREATE "${wire}"`);
      assert.match(r.status, /^(NO|BAD)$/, `CREATE "${wire}": ${r.tagged.raw}`);
    }
    await w.command('ENABLE UTF8=ACCEPT');
    for (const name of ['\u0085', 'a\u0080b', 'a\u2028b', 'a\u2029b']) {
      const r = await w.command(`CREATE "${name}"`);
      assert.match(r.status, /^(NO|BAD)$/, `CREATE ${JSON.stringify(name)}: ${r.tagged.raw}`);
    }
  } finally {
    w.close();
  }
  assert.deepEqual(await mailboxes(user), DEFAULT_BOXES);
});

test('LIST with many wildcards against a long name answers at once and does not stall other sessions', async (t) => {
  const user = await newUser('redos');
  const w = await ImapWire.login(f, user);
  const other = await ImapWire.login(f, user);
  try {
    assert.equal((await w.command(`CREATE ${'a'.repeat(40)}`)).status, 'OK');
    const started = Date.now();
    w.write(`W1 LIST "" "${'*'.repeat(9)}b"\r\n`);
    await sleep(20);
    const noopStarted = Date.now();
    assert.equal((await other.command('NOOP', { timeoutMs: 120_000 })).status, 'OK');
    const noopMs = Date.now() - noopStarted;
    const r = await w.until('W1', 120_000);
    const ms = Date.now() - started;
    t.diagnostic(`LIST "" "*********b" took ${ms} ms; a NOOP on another connection meanwhile ${noopMs} ms`);
    assert.equal(r.status, 'OK');
    assert.deepEqual(r.lines, []);
    assert.ok(ms < 1000, `LIST with 9 wildcards took ${ms} ms`);
    assert.ok(noopMs < 500, `another session's NOOP waited ${noopMs} ms`);
    for (const pattern of [`${'%'.repeat(9)}b`, `${'*%'.repeat(5)}b`]) {
      const t0 = Date.now();
      const r2 = await w.command(`LIST "" "${pattern}"`, { timeoutMs: 120_000 });
      assert.equal(r2.status, 'OK');
      assert.ok(Date.now() - t0 < 1000, `LIST "" "${pattern}" took ${Date.now() - t0} ms`);
    }
  } finally {
    w.close();
    other.close();
  }
});

test('SEARCH with thousands of BODY keys on a 2 MB message answers fast and does not stall other sessions', async (t) => {
  const user = await newUser('searchamp');
  const w = await ImapWire.login(f, user);
  const other = await ImapWire.login(f, user);
  try {
    const body = `${'All work and no play makes Jack a dull boy. '.repeat(20)}\r\n`.repeat(2300); // ~2 MB of text
    assert.equal((await w.append('INBOX', `Subject: dull\r\nContent-Type: text/plain\r\n\r\n${body}`)).status, 'OK');
    assert.equal((await w.command('SELECT INBOX')).status, 'OK');
    // 3,000 keys fit in one 64 KB line; each matches, so none short-cuts the AND.
    const started = Date.now();
    w.write(`W2 SEARCH ${'BODY jack '.repeat(3000)}ALL\r\n`);
    await sleep(300); // the body is read by then: what follows is pure CPU in the server
    const noopStarted = Date.now();
    assert.equal((await other.command('NOOP', { timeoutMs: 120_000 })).status, 'OK');
    const noopMs = Date.now() - noopStarted;
    const r = await w.until('W2', 120_000);
    const ms = Date.now() - started;
    t.diagnostic(`SEARCH with 3000 BODY keys took ${ms} ms; a NOOP on another connection meanwhile ${noopMs} ms`);
    assert.deepEqual(r.lines, ['* SEARCH 1']);
    assert.ok(noopMs < 500, `another session's NOOP waited ${noopMs} ms`);
    assert.ok(ms < 1500, `SEARCH with 3000 BODY keys took ${ms} ms`);
  } finally {
    w.close();
    other.close();
  }
});

// ---- floods, timeouts, SASL, IDLE, COMPRESS

test('10 bad commands in a row: * BYE and the connection closes; a good command in between resets the count', async () => {
  const w = await ImapWire.greeted(f.ports.imap);
  try {
    for (let i = 1; i <= 9; i++) assert.match((await w.raw(`E${i} FROB`)).text, new RegExp(`^E${i} BAD `));
    assert.equal((await w.command('NOOP')).status, 'OK');
    for (let i = 1; i <= 9; i++) assert.match((await w.raw(`F${i} FROB`)).text, new RegExp(`^F${i} BAD `));
    const last = await w.raw('F10 FROB');
    assert.match(last.text, /^F10 BAD /);
    const bye = await w.response();
    assert.match(bye.text, /^\* BYE /);
    await w.waitClosed(5000);
  } finally {
    w.close();
  }
  await admin.withSettings({ 'imap.max_errors': '3' }, async () => {
    const v = await ImapWire.greeted(f.ports.imap);
    try {
      v.write('G1 FROB\r\nG2 FROB\r\nG3 FROB\r\nG4 NOOP\r\n');
      assert.deepEqual([(await v.response()).text, (await v.response()).text, (await v.response()).text].map((t) => t.slice(0, 6)), ['G1 BAD', 'G2 BAD', 'G3 BAD']);
      assert.match((await v.response()).text, /^\* BYE /);
      await v.waitClosed(5000);
      assert.doesNotMatch(v.pending.toString(), /G4/, 'the pipelined NOOP was not run');
    } finally {
      v.close();
    }
  });
});

test('login timeout (imap.login_timeout = 1 s): * BYE and close; a logged-in session is not timed out by it', async () => {
  const user = await newUser('timeout');
  await admin.withSettings({ 'imap.login_timeout': '1s' }, async () => {
    const w = await ImapWire.greeted(f.ports.imap);
    const v = await ImapWire.login(f, user);
    try {
      const started = Date.now();
      const bye = await w.response(5000);
      const waited = Date.now() - started;
      assert.match(bye.text, /^\* BYE /, bye.raw);
      await w.waitClosed(5000);
      assert.ok(waited >= 800 && waited < 3000, `BYE after ${waited} ms`);
      await sleep(Math.max(0, 1500 - (Date.now() - started)));
      assert.equal((await v.command('NOOP')).status, 'OK', 'the logged-in session is alive after the login timeout');
    } finally {
      w.close();
      v.close();
    }
  });
});

test('AUTHENTICATE with garbage base64, a bad length, "*" and an unknown mechanism: BAD or NO, then a real login works', async () => {
  const user = await newUser('sasl');
  const w = await ImapWire.greeted(f.ports.imaps, { tls: true });
  try {
    await expectBad(w, 'Q1 AUTHENTICATE PLAIN !!!!', 'Q1');
    await expectBad(w, 'Q2 AUTHENTICATE PLAIN AAA', 'Q2');
    await expectBad(w, `Q3 AUTHENTICATE PLAIN ${Buffer.from('no nuls here').toString('base64')}`, 'Q3');
    w.write('Q4 AUTHENTICATE PLAIN\r\n');
    assert.equal((await w.continuation()).text, '+ ');
    await expectBad(w, '%%% not base64 %%%', 'Q4');
    w.write('Q5 AUTHENTICATE PLAIN\r\n');
    await w.continuation();
    await expectBad(w, '*', 'Q5', /cancel/i);
    w.write('Q6 AUTHENTICATE LOGIN\r\n');
    assert.equal((await w.continuation()).text, `+ ${Buffer.from('Username:').toString('base64')}`);
    await expectBad(w, '@@@@', 'Q6');
    const unknown = await w.command('AUTHENTICATE FROB');
    assert.equal(unknown.status, 'NO', unknown.tagged.raw);
    const ok = await w.command(`AUTHENTICATE PLAIN ${Buffer.from(`\0${user}\0secret`).toString('base64')}`);
    assert.equal(ok.status, 'OK', ok.tagged.raw);
  } finally {
    w.close();
  }
});

test('a line the framer refuses while AUTHENTICATE or IDLE waits (too long, bare CR, a literal): a tagged BAD ends the command; the next command runs', async () => {
  const user = await newUser('contline', 1);
  const w = await ImapWire.greeted(f.ports.imaps, { tls: true });
  try {
    for (const [tag, bad] of [['K1', `${'Q'.repeat(70_000)}`], ['K2', 'abc\rdef'], ['K3', 'AAAA {5}']] as const) {
      w.write(`${tag} AUTHENTICATE PLAIN\r\n`);
      await w.continuation();
      const r = await w.raw(bad);
      assert.match(r.text, new RegExp(`^${tag} BAD `), `${tag}: the AUTHENTICATE gets its tagged BAD at once: ${r.raw}`);
      const next = await w.command('NOOP');
      assert.equal(next.status, 'OK', `${tag}: the next command is a command, not a SASL response`);
      assert.deepEqual(next.lines, []);
    }
    const login = await w.command(`AUTHENTICATE PLAIN ${Buffer.from(`\0${user}\0secret`).toString('base64')}`);
    assert.equal(login.status, 'OK');
    assert.equal((await w.command('SELECT INBOX')).status, 'OK');
    for (const [tag, bad] of [['J1', `${'D'.repeat(70_000)}`], ['J2', 'DO\rNE'], ['J3', 'DONE {5}']] as const) {
      w.write(`${tag} IDLE\r\n`);
      await w.continuation();
      const r = await w.raw(bad);
      assert.match(r.text, new RegExp(`^${tag} BAD `), `${tag}: IDLE ends with its tagged BAD: ${r.raw}`);
      const next = await w.command('NOOP');
      assert.equal(next.status, 'OK', `${tag}: the next command runs`);
    }
  } finally {
    w.close();
  }
});

test('IDLE: anything but DONE after the continuation gets BAD and is not run; DONE ends IDLE', async () => {
  const user = await newUser('idle', 1);
  const w = await ImapWire.login(f, user, 'secret', 'INBOX');
  try {
    w.write('I1 IDLE\r\n');
    await w.continuation();
    const r = await w.raw('I2 LOGOUT');
    assert.match(r.text, /^I1 BAD /, r.raw);
    await assertUsable(w, 'IDLE ended by LOGOUT');
    w.write('I3 IDLE\r\n');
    await w.continuation();
    const r2 = await w.raw('DONE and more');
    assert.match(r2.text, /^I3 BAD /, r2.raw);
    await assertUsable(w, 'IDLE ended by "DONE and more"');
    w.write('I4 IDLE\r\n');
    await w.continuation();
    await deliver(f, [user], 'Subject: while idle\r\n\r\nx\r\n');
    assert.equal((await w.response()).text, '* 2 EXISTS');
    const done = await w.raw('DONE');
    assert.equal(done.text, 'I4 OK IDLE terminated');
    await assertUsable(w, 'IDLE ended by DONE');
  } finally {
    w.close();
  }
});

test('COMPRESS DEFLATE: commands and literals both ways work compressed; a second COMPRESS is refused', async () => {
  const user = await newUser('deflate', 2);
  const w = await ImapWire.login(f, user);
  try {
    const c = await w.compress();
    assert.equal(`${c.status} ${c.text}`, 'OK DEFLATE active');
    const sel = await w.command('SELECT INBOX');
    assert.equal(sel.status, 'OK');
    assert.ok(sel.lines.includes('* 2 EXISTS'));
    const body = await w.command('FETCH 2 (BODY.PEEK[TEXT])');
    assert.equal(body.untagged[0]!.literals[0]!.toString(), 'body 2\r\n');
    const message = `Subject: compressed\r\n\r\n${'compressible '.repeat(5000)}\r\n`;
    const a = await w.append('INBOX', message);
    assert.equal(a.status, 'OK', a.tagged.raw);
    const back = await w.command('FETCH 3 (BODY.PEEK[])');
    assert.equal(back.lines.at(-1), `* 3 FETCH (BODY[] {${message.length}})`);
    assert.equal(back.untagged.at(-1)!.literals[0]!.toString(), message);
    assert.equal((await w.command('FROB')).status, 'BAD');
    const again = await w.command('COMPRESS DEFLATE');
    assert.equal(head(again), `${again.tag} NO [COMPRESSIONACTIVE]`);
    const cap = await w.command('CAPABILITY');
    assert.doesNotMatch(cap.lines[0]!, /COMPRESS=DEFLATE/);
    await assertUsable(w, 'compressed');
  } finally {
    w.close();
  }
});

test('COMPRESS DEFLATE with a compressed command in the same packet: it is inflated and run', async () => {
  const user = await newUser('deflatepipe', 1);
  const w = await ImapWire.login(f, user);
  try {
    const c = await w.compress({ pipelined: 'Z1 SELECT INBOX\r\n' });
    assert.equal(c.status, 'OK', c.tagged.raw);
    const sel = await w.until('Z1');
    assert.equal(sel.status, 'OK', sel.tagged.raw);
    assert.ok(sel.lines.includes('* 1 EXISTS'));
    await assertUsable(w, 'pipelined compressed');
  } finally {
    w.close();
  }
});

test('COMPRESS DEFLATE then invalid deflate data: * BYE or close, and the server lives on', async () => {
  const user = await newUser('deflatebad');
  const w = await ImapWire.login(f, user);
  try {
    const c = await w.command('COMPRESS DEFLATE');
    assert.equal(c.status, 'OK');
    w.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0x02]));
    await w.waitClosed(5000);
  } finally {
    w.close();
  }
  const v = await ImapWire.login(f, user);
  await assertUsable(v, 'a new connection');
  v.close();
});

test('COMPRESS DEFLATE bomb (200 MB of NULs in 200 KB): one BAD for the endless line, server RSS bounded, the session goes on', async (t) => {
  const user = await newUser('bomb');
  const pid = f.child!.pid!;
  const w = await ImapWire.login(f, user);
  try {
    assert.equal((await w.compress()).status, 'OK');
    const before = rssKb(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssKb(pid))), 20);
    const started = Date.now();
    try {
      w.write('Y1 NOOP ');
      const zeros = Buffer.alloc(10 * 1024 * 1024);
      for (let i = 0; i < 20; i++) w.write(zeros);
      w.write('\r\n');
      const bad = await w.response(60_000);
      assert.match(bad.text, /^Y1 BAD Line too long/, bad.raw);
      const r = await w.command('NOOP', { timeoutMs: 60_000 });
      assert.equal(r.status, 'OK', r.tagged.raw);
      assert.deepEqual(r.lines, []);
    } finally {
      clearInterval(sampler);
    }
    t.diagnostic(`200 MB inflated and skipped in ${Date.now() - started} ms; server RSS ${Math.round(before / 1024)} MB -> peak ${Math.round(peak / 1024)} MB`);
    assert.ok(peak - before < 64 * 1024, `server RSS grew by ${Math.round((peak - before) / 1024)} MB`);
  } finally {
    w.close();
  }
});

// ---- fuzz

/** xorshift32: the fuzz is reproducible from its seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const FRAGMENTS = [
  'A1 ', 'UID ', 'FETCH ', 'STORE ', 'SEARCH ', 'SELECT ', 'EXAMINE ', 'LIST ', 'STATUS ', 'APPEND ', 'COPY ', 'MOVE ', 'EXPUNGE',
  'IDLE', 'DONE', 'NOOP', 'CREATE ', 'RENAME ', 'DELETE ', 'ENABLE ', 'UTF8=ACCEPT', 'QRESYNC', 'CONDSTORE', 'NAMESPACE', 'ID ',
  'CLOSE', 'UNSELECT', 'GETQUOTAROOT ', 'AUTHENTICATE ', 'PLAIN', 'BODY[', 'BODY.PEEK[', 'HEADER.FIELDS (', 'TEXT]', 'MIME', ']',
  '<0.10>', '(', ')', '"', '\\', '*', '%', '1:*', '$', '0', '4294967295', '4294967296', '1,2:3', ':', ',', '{5}', '{3+}', '~{2}',
  '{0}', '\r\n', '\n', '\r', ' ', 'INBOX', '"../x"', 'NIL', 'FLAGS', '+FLAGS.SILENT ', '(\\Seen \\Deleted)', 'RETURN (ALL SAVE)',
  'CHARSET UTF-8 ', 'OR ', 'NOT ', 'SINCE 1-Jan-2020', 'MODSEQ 1', '(CHANGEDSINCE 1 VANISHED)', 'BINARY[1]', 'BODYSTRUCTURE',
  'ENVELOPE', 'RFC822', '&AOk-', '&', '\u00e9', '\0',
];

test('random bytes and IMAP fragments for 3 s on logged-in, selected connections: no crash, no internal error', { timeout: 600_000 }, async (t) => {
  const user = await newUser('fuzz', 3);
  const seed = Number(process.env.IMAP_FUZZ_SEED ?? Date.now() % 1_000_000);
  const duration = Number(process.env.IMAP_FUZZ_MS ?? 3000);
  t.diagnostic(`seed ${seed} (IMAP_FUZZ_SEED to replay), ${duration} ms (IMAP_FUZZ_MS)`);
  const rand = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
  const errorsBefore = f.events('imap.internal_error').length;
  const deadline = Date.now() + duration;
  let connections = 0;
  let bytes = 0;
  while (Date.now() < deadline) {
    const w = connections % 4 === 3 ? await ImapWire.greeted(f.ports.imap) : await ImapWire.login(f, user, 'secret', 'INBOX');
    connections++;
    const until = Math.min(deadline, Date.now() + 300);
    while (Date.now() < until && !w.isClosed) {
      const parts: Buffer[] = [];
      for (let i = 0; i < 20; i++) {
        const r = rand();
        if (r < 0.6) parts.push(Buffer.from(pick(FRAGMENTS)));
        else if (r < 0.8) parts.push(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 8) }, () => Math.floor(rand() * 256))));
        else parts.push(Buffer.from(`${Math.floor(rand() * 100)}`));
      }
      if (rand() < 0.5) parts.push(Buffer.from('\r\n'));
      const data = Buffer.concat(parts);
      bytes += data.length;
      w.write(data);
      await sleep(2);
      // Keep our side from filling up; what the server says is not checked here.
      w.pending.length > 1 << 20 && (await w.drain(0));
    }
    w.close();
  }
  t.diagnostic(`${connections} connections, ${bytes} bytes sent`);
  await sleep(200);
  assert.equal(f.child?.exitCode, null, 'the server is running');
  const errors = f.events('imap.internal_error').slice(errorsBefore);
  assert.deepEqual(errors.map((e) => JSON.stringify(e).slice(0, 500)), [], 'no internal error was logged');
  const v = await ImapWire.login(f, user, 'secret', 'INBOX');
  try {
    await assertUsable(v, 'after the fuzz');
    const r = await v.command('UID SEARCH ALL');
    assert.equal(r.status, 'OK');
  } finally {
    v.close();
  }
});
