/**
 * POP3 with two more clients we did not write: fetchmail (over implicit TLS on the POP3S port and
 * over STLS on the plain port, keeping mail with UIDL tracking and deleting it, delivering to an
 * MDA and to a BSMTP file) and curl (pop3s:// and pop3:// with --ssl-reqd).
 *
 * One server for the file; each test adds its own accounts and its own fetchmail folder.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FulmarProcess } from './harness.js';
import { deliver, expectedUidl, storedInbox } from './pop3-wire.js';
import { Admin, sleep, startServer, stopServer, unique } from './smtp-wire.js';

const DOMAIN = 'clients.test';
let f: FulmarProcess;
let admin: Admin;
const folders: string[] = [];

before(async () => ({ f, admin } = await startServer(DOMAIN)));
after(async () => {
  for (const d of folders) rmSync(d, { recursive: true, force: true });
  await stopServer(f, admin);
});

const hasFetchmail = spawnSync('fetchmail', ['--version'], { encoding: 'utf8' }).error === undefined;
const noFetchmail = hasFetchmail ? false : 'fetchmail is not installed (.ci/run installs it)';

async function newUser(prefix: string, password = 'secret'): Promise<string> {
  const user = `${unique(prefix)}@${DOMAIN}`;
  await admin.addUsers([user], password);
  return user;
}

function message(to: string, subject: string, body: string): string {
  return `From: <sender@far.example>\r\nTo: <${to}>\r\nSubject: ${subject}\r\n\r\n${body}`;
}

/** Bodies with lines that need dot-stuffing, so the clients' unstuffing is checked too. */
const BODIES = ['Hello.\r\n.\r\n..two dots\r\n.leading dot\r\nlast line\r\n', 'Second message.\r\n\r\n-- \r\nsignature\r\n'];

async function storedBytes(user: string): Promise<Buffer[]> {
  return (await storedInbox(f, user)).messages.map((m) => m.bytes);
}

// ---- fetchmail

interface FetchmailRun {
  status: number;
  output: string;
}

/** A fetchmail folder: an rc file (mode 0600) with the account, an idfile, a place for the mail. */
function fetchmailFolder(user: string): { dir: string; run: (args: string[]) => FetchmailRun } {
  const dir = mkdtempSync(join(tmpdir(), 'fulmar-fetchmail-'));
  folders.push(dir);
  const rc = join(dir, 'fetchmailrc');
  writeFileSync(rc, `poll 127.0.0.1 protocol pop3\n  user "${user}" there with password "secret" is "${process.env.USER ?? 'root'}" here\n`, {
    mode: 0o600,
  });
  const run = (args: string[]): FetchmailRun => {
    const r = spawnSync('fetchmail', ['-f', rc, '--idfile', join(dir, 'fetchids'), '--pidfile', join(dir, 'pid'), '--nosyslog', ...args], {
      encoding: 'utf8',
      env: { ...process.env, HOME: dir, FETCHMAILHOME: dir },
      timeout: 60_000,
    });
    return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
  };
  return { dir, run };
}

/** fetchmail's own trace header, which it adds to each message it passes on. */
const FETCHMAIL_RECEIVED = /Received: from 127\.0\.0\.1 \[127\.0\.0\.1\]\n\tby \S+ with POP3 \(fetchmail-[\d.]+\)\n\tfor <[^>\n]+> \(single-drop\); [^\n]+\n/g;

/** What an MDA receives from fetchmail: the message with LF line ends and fetchmail's Received header. */
function withoutFetchmailHeaders(text: string, expected: number): string {
  const found = text.match(FETCHMAIL_RECEIVED) ?? [];
  assert.equal(found.length, expected, `one fetchmail Received header per message:\n${text}`);
  return text.replace(FETCHMAIL_RECEIVED, '');
}

const lf = (b: Buffer): string => b.toString('utf8').replace(/\r\n/g, '\n');

test('fetchmail over POP3S (--ssl --nosslcertck) with --keep --uidl into an MDA: everything once, then nothing new, then only the new message', { skip: noFetchmail }, async () => {
  const user = await newUser('fmkeep');
  for (const [i, b] of BODIES.entries()) await deliver(f, [user], message(user, `keep ${i + 1}`, b));
  const stored = await storedBytes(user);
  assert.equal(stored.length, 2);
  const { dir, run } = fetchmailFolder(user);
  const mbox = join(dir, 'delivered');
  const args = ['--service', String(f.ports.pop3s), '--ssl', '--nosslcertck', '--keep', '--uidl', '--mda', `cat >> ${mbox}`];

  const first = run(args);
  assert.equal(first.status, 0, first.output);
  const sizes = stored.map((b) => b.length);
  assert.ok(first.output.includes(`2 messages for ${user} at 127.0.0.1 (${sizes[0]! + sizes[1]!} octets).`), first.output);
  assert.match(first.output, new RegExp(`reading message ${user.replace(/\./g, '\\.')}@127\\.0\\.0\\.1:1 of 2 \\(${sizes[0]} octets\\) not flushed`));
  assert.equal(withoutFetchmailHeaders(readFileSync(mbox, 'utf8'), 2), stored.map(lf).join(''), 'the MDA got every message byte for byte');
  assert.equal((await storedBytes(user)).length, 2, '--keep leaves the mail on the server');
  const ids = readFileSync(join(dir, 'fetchids'), 'utf8');
  const { uidValidity, messages } = await storedInbox(f, user);
  for (const m of messages) assert.ok(ids.includes(`${user}@127.0.0.1 ${expectedUidl(m.record.uid, uidValidity)}`), ids);

  const second = run(args);
  assert.equal(second.status, 1, `exit 1 = no new mail: ${second.output}`);
  assert.ok(second.output.includes(`2 messages (2 seen) for ${user} at 127.0.0.1`), second.output);
  assert.equal(withoutFetchmailHeaders(readFileSync(mbox, 'utf8'), 2), stored.map(lf).join(''), 'nothing was fetched again');

  await deliver(f, [user], message(user, 'keep 3', 'Third.\r\n'));
  const third = run(args);
  assert.equal(third.status, 0, third.output);
  assert.ok(third.output.includes(`3 messages (2 seen) for ${user} at 127.0.0.1`), third.output);
  const all = await storedBytes(user);
  assert.equal(all.length, 3);
  assert.equal(withoutFetchmailHeaders(readFileSync(mbox, 'utf8'), 3), all.map(lf).join(''), 'only the new message was added');
});

test('fetchmail without --keep over POP3S into an MDA: all mail fetched and deleted; the next run finds none', { skip: noFetchmail }, async () => {
  const user = await newUser('fmflush');
  for (const [i, b] of BODIES.entries()) await deliver(f, [user], message(user, `flush ${i + 1}`, b));
  const stored = await storedBytes(user);
  const { dir, run } = fetchmailFolder(user);
  const mbox = join(dir, 'delivered');
  const args = ['--service', String(f.ports.pop3s), '--ssl', '--nosslcertck', '--mda', `cat >> ${mbox}`];

  const first = run(args);
  assert.equal(first.status, 0, first.output);
  assert.match(first.output, new RegExp(`reading message ${user.replace(/\./g, '\\.')}@127\\.0\\.0\\.1:2 of 2 \\(${stored[1]!.length} octets\\) flushed`));
  assert.equal(withoutFetchmailHeaders(readFileSync(mbox, 'utf8'), 2), stored.map(lf).join(''));
  assert.deepEqual(await storedBytes(user), [], 'the mailbox is empty after a run without --keep');

  const second = run(args);
  assert.equal(second.status, 1, second.output);
  assert.ok(second.output.includes(`No mail for ${user} at 127.0.0.1`), second.output);
});

test('fetchmail over STLS on the plain port (--sslproto auto) into a BSMTP file, without --keep', { skip: noFetchmail }, async () => {
  const user = await newUser('fmstls');
  for (const [i, b] of BODIES.entries()) await deliver(f, [user], message(user, `stls ${i + 1}`, b));
  const stored = await storedBytes(user);
  const { dir, run } = fetchmailFolder(user);
  const bsmtp = join(dir, 'batch.bsmtp');
  const r = run(['--service', String(f.ports.pop3), '--sslproto', 'auto', '--nosslcertck', '--bsmtp', bsmtp]);
  assert.equal(r.status, 0, r.output);
  assert.ok(existsSync(bsmtp), r.output);
  const batch = readFileSync(bsmtp, 'utf8');
  // Each message: MAIL FROM, RCPT TO, DATA, the message (dot-stuffed again for SMTP), a lone dot.
  const transactions = batch.split(/^MAIL FROM:/m).slice(1);
  assert.equal(transactions.length, 2, batch);
  transactions.forEach((t, i) => {
    const m = /^<([^>]*)>[^\r\n]*\r?\nRCPT TO:<([^>]+)>\r?\nDATA\r?\n([\s\S]*?)^\.\r?\n/m.exec(t);
    assert.ok(m, `a BSMTP transaction: ${t}`);
    assert.equal(m[1], 'sender@far.example', 'the envelope sender comes from Return-Path');
    const body = m[3]!.replace(/\r\n/g, '\n').replace(/^\./gm, '');
    const expected = lf(stored[i]!);
    assert.ok(expected.startsWith('Return-Path: <sender@far.example>\n'));
    // fetchmail turns Return-Path into MAIL FROM and leaves the header out of the batch.
    assert.equal(withoutFetchmailHeaders(body, 1), expected.slice(expected.indexOf('\n') + 1), `message ${i + 1}`);
  });
  assert.deepEqual(await storedBytes(user), []);
  // The session really used STLS: the server logged the upgrade for the session that logged in.
  await sleep(100);
  const login = f.events('pop3.login').find((e) => e.login === user);
  assert.ok(login, 'logged in');
  assert.ok(f.events('pop3.stls').some((e) => e.sid === login.sid), 'the session that logged in had done STLS');
});

// ---- curl

function curl(args: string[]): { status: number; stdout: Buffer; stderr: string } {
  const r = spawnSync('curl', ['-sS', '-k', '--max-time', '20', ...args], { timeout: 30_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
}

test('curl pop3s://: list, RETR byte for byte, UIDL, TOP, DELE; wrong password is refused', async () => {
  const user = await newUser('curl');
  for (const [i, b] of BODIES.entries()) await deliver(f, [user], message(user, `curl ${i + 1}`, b));
  const { uidValidity, messages } = await storedInbox(f, user);
  const base = `pop3s://127.0.0.1:${f.ports.pop3s}`;
  const auth = ['--user', `${user}:secret`];

  const list = curl([...auth, `${base}/`]);
  assert.equal(list.status, 0, list.stderr);
  assert.equal(list.stdout.toString(), messages.map((m, i) => `${i + 1} ${m.record.size}\r\n`).join(''));

  for (const [i, m] of messages.entries()) {
    const retr = curl([...auth, `${base}/${i + 1}`]);
    assert.equal(retr.status, 0, retr.stderr);
    assert.ok(retr.stdout.equals(m.bytes), `message ${i + 1} byte for byte:\n${retr.stdout.toString()}`);
  }

  const uidl = curl([...auth, '-X', 'UIDL', `${base}/`]);
  assert.equal(uidl.stdout.toString(), messages.map((m, i) => `${i + 1} ${expectedUidl(m.record.uid, uidValidity)}\r\n`).join(''));

  const top = curl([...auth, '-X', 'TOP 1 0', `${base}/`]);
  const text = messages[0]!.bytes.toString('utf8');
  assert.equal(top.stdout.toString(), text.slice(0, text.indexOf('\r\n\r\n') + 4), 'TOP 1 0 is the header and the blank line');

  const dele = curl([...auth, '-X', 'DELE 1', '-I', `${base}/`]);
  assert.equal(dele.status, 0, dele.stderr);
  const after = curl([...auth, `${base}/`]);
  assert.equal(after.stdout.toString(), `1 ${messages[1]!.record.size}\r\n`, 'DELE took effect at curl’s QUIT');
  assert.equal((await storedInbox(f, user)).messages.length, 1);

  const wrong = curl(['--user', `${user}:wrong`, '--interface', '127.0.0.41', `${base}/`]);
  assert.equal(wrong.status, 67, `curl: login denied (${wrong.stderr})`);
});

test('curl pop3:// on the plain port: --ssl-reqd upgrades with STLS; without TLS the login is refused', async () => {
  const user = await newUser('curlstls');
  await deliver(f, [user], message(user, 'stls', BODIES[0]!));
  const [stored] = await storedBytes(user);
  const url = `pop3://127.0.0.1:${f.ports.pop3}/1`;

  const tls = curl(['--ssl-reqd', '--user', `${user}:secret`, url]);
  assert.equal(tls.status, 0, tls.stderr);
  assert.ok(tls.stdout.equals(stored!), 'RETR over STLS byte for byte');

  const plain = curl(['--user', `${user}:secret`, '--interface', '127.0.0.42', url]);
  assert.equal(plain.status, 67, `curl: login denied without TLS (${plain.stderr})`);
  assert.equal(plain.stdout.length, 0);
});
