/**
 * Hostile and sloppy clients against the real server, over raw sockets: SMTP smuggling, commands
 * injected after STARTTLS, pipelined groups, bare LF and invalid UTF-8 in commands, wrong states,
 * an endless line; and swaks (a client we did not write) with --pipeline, --tls and --tlsc.
 *
 * One server for the file; each test adds its own accounts.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type FulmarProcess, swaks } from './harness.js';
import { Admin, codes, rssKb, sleep, SmtpWire, unique, startServer, stopServer } from './smtp-wire.js';

const DOMAIN = 'hostile.test';
let f: FulmarProcess;
let admin: Admin;

before(async () => ({ f, admin } = await startServer(DOMAIN)));
after(() => stopServer(f, admin));

async function inbox(address: string): Promise<string[]> {
  const store = await f.openStore();
  try {
    const account = await store.directory.getAccount(address);
    assert.ok(account, address);
    const box = await store.mail.getMailbox(account.id, 'INBOX');
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

async function session(port = f.ports.smtp): Promise<SmtpWire> {
  const w = await SmtpWire.greeted(port);
  await w.ehlo();
  return w;
}

/** The attacker's payload after a fake end of data: a second transaction to another recipient. */
function smuggled(victim: string): string {
  return `MAIL FROM:<admin@${DOMAIN}>\r\nRCPT TO:<${victim}>\r\nDATA\r\nFrom: admin@${DOMAIN}\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n`;
}

const FAKE_ENDS: Array<[string, string]> = [
  ['LF.LF', '\n.\n'],
  ['CRLF.LF', '\r\n.\n'],
  ['LF.CRLF', '\n.\r\n'],
  ['CR.CR', '\r.\r'],
];

test('SMTP smuggling: "\\n.\\n", "\\r\\n.\\n", "\\n.\\r\\n", "\\r.\\r" never end DATA; each attempt is one message', async () => {
  const rcpt = `${unique('target')}@${DOMAIN}`;
  const victim = `${unique('victim')}@${DOMAIN}`;
  await admin.addUsers([rcpt, victim]);
  const w = await session();
  try {
    for (const [name, end] of FAKE_ENDS) {
      const message = `Subject: smuggle ${name}\r\n\r\nbefore the fake end${end}${smuggled(victim)}`;
      // The whole transaction in one write, as an attacker's MTA would send it.
      w.write(`MAIL FROM:<sender@far.example>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n${message}.\r\n`);
      const replies = await w.readN(4);
      assert.deepEqual(replies.map(codes), ['250 2.1.0', '250 2.1.5', '354', '250 2.0.0'], `${name}: ${replies.map((r) => r.raw).join('')}`);
      // No reply is left over: nothing after the fake end was run as a command.
      assert.equal(codes(await w.cmd('NOOP')), '250 2.0.0');
      assert.equal(w.pending, 0, `${name}: no extra replies`);
    }
    // The same with the fake end split across packets.
    w.write(`MAIL FROM:<sender@far.example>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\nSubject: smuggle split\r\n\r\nbefore the fake end\n`);
    await sleep(50);
    w.write('.');
    await sleep(50);
    w.write(`\n${smuggled(victim)}`);
    await sleep(50);
    w.write('.\r\n');
    assert.deepEqual((await w.readN(4)).map(codes), ['250 2.1.0', '250 2.1.5', '354', '250 2.0.0']);
    assert.equal(codes(await w.cmd('NOOP')), '250 2.0.0');
    assert.equal(w.pending, 0);
  } finally {
    w.close();
  }
  assert.deepEqual(await inbox(victim), [], 'the smuggled transaction was never run');
  const got = await inbox(rcpt);
  assert.equal(got.length, FAKE_ENDS.length + 1, 'one message per attempt');
  for (const [i, text] of got.entries()) {
    const name = i < FAKE_ENDS.length ? FAKE_ENDS[i]![0] : 'split';
    assert.ok(text.includes(`Subject: smuggle ${name}\r\n`), text);
    assert.ok(text.includes('before the fake end'), text);
    assert.ok(text.includes(`RCPT TO:<${victim}>`), `${name}: the smuggled lines are part of the body`);
    assert.ok(text.endsWith('smuggled body\r\n'), `${name}: the message runs to the real end of data`);
    // The default policy (normalize): no bare CR or LF is stored.
    assert.doesNotMatch(text, /\r(?!\n)|(?<!\r)\n/, `${name}: bare CR/LF normalised`);
  }
});

test('SMTP smuggling with smtp.bare_newline=reject: each attempt refused with 554 5.6.0, the session continues', async () => {
  const rcpt = `${unique('target')}@${DOMAIN}`;
  const victim = `${unique('victim')}@${DOMAIN}`;
  await admin.addUsers([rcpt, victim]);
  await admin.withSettings({ 'smtp.bare_newline': 'reject' }, async () => {
    const w = await session();
    try {
      for (const [name, end] of FAKE_ENDS) {
        const message = `Subject: smuggle ${name}\r\n\r\nbefore the fake end${end}${smuggled(victim)}`;
        w.write(`MAIL FROM:<sender@far.example>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n${message}.\r\n`);
        const replies = await w.readN(4);
        assert.deepEqual(replies.map(codes), ['250 2.1.0', '250 2.1.5', '354', '554 5.6.0'], `${name}: ${replies.map((r) => r.raw).join('')}`);
        assert.equal(codes(await w.cmd('NOOP')), '250 2.0.0');
        assert.equal(w.pending, 0, `${name}: no extra replies`);
      }
      // A clean message on the same connection is accepted.
      w.write(`MAIL FROM:<sender@far.example>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\nSubject: clean\r\n\r\nonly CRLF here\r\n.\r\n`);
      assert.deepEqual((await w.readN(4)).map(codes), ['250 2.1.0', '250 2.1.5', '354', '250 2.0.0']);
    } finally {
      w.close();
    }
  });
  assert.deepEqual(await inbox(victim), []);
  const got = await inbox(rcpt);
  assert.equal(got.length, 1);
  assert.ok(got[0]!.endsWith('Subject: clean\r\n\r\nonly CRLF here\r\n'));
});

for (const [label, portOf] of [
  ['25', () => f.ports.smtp],
  ['587', () => f.ports.submission],
] as const) {
  test(`STARTTLS on ${label}: a command pipelined in the same packet is discarded, not run after the handshake`, async () => {
    const w = await session(portOf());
    try {
      const before = f.events('smtp.starttls_pipelined').length;
      w.write('STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n');
      const r = await w.read();
      assert.equal(codes(r), '220 2.0.0', r.raw);
      await sleep(100);
      assert.equal(w.pending, 0, 'nothing but the 220 came in plain text');
      await w.upgrade();
      // The first reply after the handshake is the one to our own EHLO.
      const ehlo = await w.cmd('EHLO client.example');
      assert.equal(ehlo.code, 250, ehlo.raw);
      assert.match(ehlo.lines[0]!, /^mx\.fulmar\.test Hello client\.example/);
      assert.ok(ehlo.lines.includes('PIPELINING'));
      assert.ok(!ehlo.lines.includes('STARTTLS'));
      // The injected MAIL did not open a transaction: RCPT is out of sequence.
      assert.equal(codes(await w.cmd(`RCPT TO:<nobody@${DOMAIN}>`)), '503 5.5.1');
      assert.equal(codes(await w.cmd('NOOP')), '250 2.0.0');
      assert.equal(w.pending, 0);
      assert.equal(f.events('smtp.starttls_pipelined').length, before + 1, 'the discard is logged');
    } finally {
      w.close();
    }
  });
}

test('a pipelined group (EHLO, MAIL, RCPT x3, DATA in one write) gets every reply, in order', async () => {
  const users = [unique('pipe'), unique('pipe')].map((l) => `${l}@${DOMAIN}`);
  await admin.addUsers(users);
  const w = await SmtpWire.greeted(f.ports.smtp);
  try {
    w.write(
      `EHLO client.example\r\nMAIL FROM:<pipe@far.example>\r\nRCPT TO:<${users[0]}>\r\n` +
        `RCPT TO:<unknown-${unique('x')}@${DOMAIN}>\r\nRCPT TO:<${users[1]}>\r\nDATA\r\n`,
    );
    const replies = await w.readN(6);
    assert.equal(replies[0]!.code, 250);
    assert.ok(replies[0]!.lines.includes('PIPELINING'));
    assert.deepEqual(replies.slice(1).map(codes), ['250 2.1.0', '250 2.1.5', '550 5.1.1', '250 2.1.5', '354']);
    w.write('Subject: pipelined\r\n\r\nbody\r\n.\r\nRSET\r\nMAIL FROM:<pipe@far.example>\r\nRCPT TO:<nobody@far.example>\r\nDATA\r\nQUIT\r\n');
    const rest = await w.readN(6);
    // Relay denied for the only recipient: DATA then has no valid recipients (rfc2920 / rfc5321 3.3).
    assert.deepEqual(rest.map(codes), ['250 2.0.0', '250 2.0.0', '250 2.1.0', '554 5.7.1', '554 5.5.1', '221 2.0.0']);
    await w.waitClosed();
  } finally {
    w.close();
  }
  for (const u of users) assert.equal((await inbox(u)).length, 1);
});

test('bare LF command lines get 500 5.5.2 and are not run', async () => {
  const w = await session();
  try {
    assert.equal(codes(await w.cmd('NOOP')), '250 2.0.0');
    w.write('MAIL FROM:<lf@far.example>\n');
    assert.equal(codes(await w.read()), '500 5.5.2');
    w.write('NOOP\n');
    assert.equal(codes(await w.read()), '500 5.5.2');
    // The MAIL was not run: a proper MAIL is not "nested".
    assert.equal(codes(await w.cmd('MAIL FROM:<crlf@far.example>')), '250 2.1.0');
  } finally {
    w.close();
  }
});

test('invalid UTF-8 in a command gets 500 5.5.2; the session continues', async () => {
  const w = await session();
  try {
    w.write(Buffer.concat([Buffer.from('MAIL FROM:<'), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from('@far.example>\r\n')]));
    assert.equal(codes(await w.read()), '500 5.5.2');
    w.write(Buffer.concat([Buffer.from('EHLO '), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('\r\n')]));
    assert.equal(codes(await w.read()), '500 5.5.2');
    assert.equal(codes(await w.cmd('NOOP')), '250 2.0.0');
  } finally {
    w.close();
  }
});

test('unknown command: 500 5.5.2', async () => {
  const w = await session();
  try {
    assert.equal(codes(await w.cmd('FROBNICATE now')), '500 5.5.2');
    assert.equal(codes(await w.cmd('XEXCH50 1 2')), '500 5.5.2');
    assert.equal(codes(await w.cmd('NOOP')), '250 2.0.0');
  } finally {
    w.close();
  }
});

test('wrong state: MAIL before EHLO, RCPT before MAIL, DATA before MAIL, nested MAIL get 503 5.5.1', async () => {
  const w = await SmtpWire.greeted(f.ports.smtp);
  try {
    assert.equal(codes(await w.cmd('MAIL FROM:<a@far.example>')), '503 5.5.1', 'MAIL before EHLO');
    await w.ehlo();
    assert.equal(codes(await w.cmd(`RCPT TO:<someone@${DOMAIN}>`)), '503 5.5.1', 'RCPT before MAIL');
    assert.equal(codes(await w.cmd('DATA')), '503 5.5.1', 'DATA before MAIL');
    assert.equal(codes(await w.cmd('MAIL FROM:<a@far.example>')), '250 2.1.0');
    assert.equal(codes(await w.cmd('MAIL FROM:<a@far.example>')), '503 5.5.1', 'nested MAIL');
    assert.equal(codes(await w.cmd('NOOP')), '250 2.0.0');
  } finally {
    w.close();
  }
});

test('wrong state: DATA after MAIL but before any RCPT gets 503 5.5.1', async () => {
  const w = await session();
  try {
    assert.equal(codes(await w.cmd('MAIL FROM:<a@far.example>')), '250 2.1.0');
    const r = await w.cmd('DATA');
    assert.equal(codes(r), '503 5.5.1', `DATA before RCPT: ${r.raw}`);
  } finally {
    w.close();
  }
});

test('5 MB without a newline in command mode: one 500, the session continues, the server memory stays bounded', async (t) => {
  const pid = f.child!.pid!;
  const w = await session();
  try {
    const rssBefore = rssKb(pid);
    let peak = rssBefore;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssKb(pid));
    }, 20);
    const chunk = Buffer.alloc(64 * 1024, 'A');
    try {
      for (let sent = 0; sent < 5 * 1024 * 1024; sent += chunk.length) await w.writeAndDrain(chunk);
      await w.writeAndDrain('\r\nNOOP\r\n');
      const replies = await w.readN(2, 20_000);
      assert.deepEqual(replies.map(codes), ['500 5.5.2', '250 2.0.0']);
      await sleep(50);
      assert.equal(w.pending, 0, 'exactly one error reply for the endless line');
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rssKb(pid));
    t.diagnostic(`server RSS before ${Math.round(rssBefore / 1024)} MB, peak ${Math.round(peak / 1024)} MB`);
    assert.ok(peak < 150 * 1024, `server RSS peaked at ${Math.round(peak / 1024)} MB (before: ${Math.round(rssBefore / 1024)} MB)`);
    assert.equal(codes(await w.cmd('MAIL FROM:<after@far.example>')), '250 2.1.0');
  } finally {
    w.close();
  }
});

test('swaks --pipeline on port 25 delivers', async () => {
  const user = `${unique('swp')}@${DOMAIN}`;
  await admin.addUsers([user]);
  const r = swaks([
    '--server', '127.0.0.1', '--port', String(f.ports.smtp),
    '--helo', 'swaks.example', '--from', 'swaks@far.example', '--to', user,
    '--header', 'Subject: swaks pipelined', '--body', 'pipelined body',
    '--pipeline',
  ]);
  assert.equal(r.status, 0, r.output);
  // swaks pipelined MAIL, RCPT and DATA: the three commands went out before the first reply.
  assert.match(r.output, / -> MAIL FROM:<swaks@far\.example>\n -> RCPT TO:<[^>]+>\n -> DATA\n<- {2}250 2\.1\.0 Ok\n<- {2}250 2\.1\.5 Ok\n<- {2}354 /);
  const got = await inbox(user);
  assert.equal(got.length, 1);
  assert.ok(got[0]!.includes('Subject: swaks pipelined'));
});

test('swaks --tls (STARTTLS) on 25 and on 587 with AUTH LOGIN delivers', async () => {
  const user = `${unique('swt')}@${DOMAIN}`;
  await admin.addUsers([user], 'swaks-pw');
  const mx = swaks([
    '--server', '127.0.0.1', '--port', String(f.ports.smtp),
    '--from', 'swaks@far.example', '--to', user, '--header', 'Subject: swaks starttls mx', '--tls',
  ]);
  assert.equal(mx.status, 0, mx.output);
  const sub = swaks([
    '--server', '127.0.0.1', '--port', String(f.ports.submission),
    '--from', user, '--to', user, '--header', 'Subject: swaks starttls submission', '--tls',
    '--auth', 'LOGIN', '--auth-user', user, '--auth-password', 'swaks-pw', '--pipeline',
  ]);
  assert.equal(sub.status, 0, sub.output);
  const got = await inbox(user);
  assert.equal(got.length, 2);
  assert.ok(got[0]!.includes('Subject: swaks starttls mx'));
  assert.match(got[0]!, /\(using TLSv1\.[23] with cipher /);
  assert.ok(got[1]!.includes('Subject: swaks starttls submission'));
  assert.ok(got[1]!.includes(`(Authenticated sender: ${user})`));
});

test('swaks --tlsc (implicit TLS) on 465 with AUTH PLAIN delivers', async () => {
  const user = `${unique('swc')}@${DOMAIN}`;
  await admin.addUsers([user], 'swaks-pw');
  const r = swaks([
    '--server', '127.0.0.1', '--port', String(f.ports.smtps),
    '--from', user, '--to', user, '--header', 'Subject: swaks tlsc', '--tlsc',
    '--auth', 'PLAIN', '--auth-user', user, '--auth-password', 'swaks-pw',
  ]);
  assert.equal(r.status, 0, r.output);
  const got = await inbox(user);
  assert.equal(got.length, 1);
  assert.ok(got[0]!.includes('Subject: swaks tlsc'));
  assert.match(got[0]!, /with ESMTPSA id /);
});
