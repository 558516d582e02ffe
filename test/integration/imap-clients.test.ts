/**
 * IMAP with clients we did not write: mbsync (isync 1.4, over IMAPS and over STARTTLS on 143)
 * syncing every mailbox both ways with a Maildir, and curl (imaps:// and imap:// with
 * --ssl-reqd) listing, fetching by UID and section, examining, searching and appending.
 *
 * One server for the file; each test adds its own account and its own client folder. The
 * checks read the server's side over IMAP (ImapWire) or from the store, and the client's side
 * from its Maildir.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FulmarProcess } from './harness.js';
import { ImapWire, listedNames, quote } from './imap-wire.js';
import { deliver, storedInbox } from './pop3-wire.js';
import { Admin, sleep, startServer, stopServer, unique } from './smtp-wire.js';

const DOMAIN = 'imap-clients.test';
let f: FulmarProcess;
let admin: Admin;
const folders: string[] = [];

before(async () => ({ f, admin } = await startServer(DOMAIN)));
after(async () => {
  for (const d of folders) rmSync(d, { recursive: true, force: true });
  await stopServer(f, admin);
});

const hasMbsync = spawnSync('mbsync', ['--version'], { encoding: 'utf8' }).error === undefined;
const noMbsync = hasMbsync ? false : 'mbsync is not installed (.ci/run installs isync)';

async function newUser(prefix: string): Promise<string> {
  const user = `${unique(prefix)}@${DOMAIN}`;
  await admin.addUsers([user]);
  return user;
}

function message(to: string, subject: string, body: string): string {
  return `From: <sender@far.example>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${body}`;
}

/** Bodies with 8-bit text, lines that need dot-stuffing in SMTP, and trailing spaces. */
const BODIES = ['Grüße aus Köln — ünïcödé.\r\n.\r\n..two dots\r\n.leading dot\r\ntrailing space \r\n', 'Second message.\r\n\r\n-- \r\nsignature\r\n'];

const lf = (b: Buffer | string): string => b.toString().replace(/\r\n/g, '\n');
const crlf = (s: string): string => s.replace(/\r?\n/g, '\r\n');

/**
 * mbsync adds an `X-TUID:` header to every message it propagates (its transaction id, which
 * lets it find a message again after an interrupted run), on both sides. Everything else is
 * copied as is.
 */
const TUID = /^X-TUID: [A-Za-z0-9+/]{12}\r?\n/m;
function withoutTuid(text: string): string {
  assert.match(text, TUID, `mbsync's X-TUID header:\n${text}`);
  return text.replace(TUID, '');
}

// ---- the server's side, over IMAP

interface ServerMessage {
  uid: number;
  flags: string[];
  body: Buffer;
}

async function withImap<T>(user: string, fn: (w: ImapWire) => Promise<T>): Promise<T> {
  const w = await ImapWire.login(f, user);
  try {
    return await fn(w);
  } finally {
    w.close();
  }
}

/** Every message of a mailbox, by UID, with flags and bytes (EXAMINE: nothing changes). */
async function serverMessages(user: string, box: string): Promise<ServerMessage[]> {
  return withImap(user, async (w) => {
    const ex = await w.command(`EXAMINE ${quote(box)}`);
    assert.equal(ex.status, 'OK', ex.tagged.raw);
    if (ex.lines.includes('* 0 EXISTS')) return [];
    const r = await w.command('UID FETCH 1:* (UID FLAGS BODY.PEEK[])');
    assert.equal(r.status, 'OK', r.tagged.raw);
    return r.untagged
      .filter((u) => / FETCH /.test(u.text))
      .map((u) => {
        const uid = Number(/UID (\d+)/.exec(u.text)![1]);
        const flags = /FLAGS \(([^)]*)\)/.exec(u.text)![1]!.split(' ').filter(Boolean).sort();
        return { uid, flags, body: u.literals[0]! };
      });
  });
}

/** Each mailbox with MESSAGES, UIDNEXT, UIDVALIDITY and HIGHESTMODSEQ: any change shows here. */
async function serverState(user: string): Promise<Record<string, string>> {
  return withImap(user, async (w) => {
    const names = listedNames(await w.command('LIST "" "*"'));
    const state: Record<string, string> = {};
    for (const name of names) {
      const s = await w.command(`STATUS ${quote(name)} (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)`);
      state[name] = s.lines[0]!.replace(/^\* STATUS \S+ /, '');
    }
    return state;
  });
}

// ---- mbsync and its Maildir

interface Mbsync {
  dir: string;
  maildir: string;
  run: (extra?: string[]) => { status: number; output: string };
}

function mbsyncFolder(user: string, mode: 'IMAPS' | 'STARTTLS'): Mbsync {
  const dir = mkdtempSync(join(tmpdir(), 'fulmar-mbsync-'));
  folders.push(dir);
  const maildir = join(dir, 'mail');
  mkdirSync(maildir);
  const rc = join(dir, 'mbsyncrc');
  // isync 1.4: SSLType (1.5 renamed it TLSType); the self-signed certificate as a host certificate.
  writeFileSync(
    rc,
    [
      'IMAPAccount fulmar',
      'Host 127.0.0.1',
      `Port ${mode === 'IMAPS' ? f.ports.imaps : f.ports.imap}`,
      `User ${user}`,
      'Pass secret',
      `SSLType ${mode}`,
      `CertificateFile ${join(f.dataDir, 'tls', 'self-signed-cert.pem')}`,
      'SystemCertificates no',
      '',
      'IMAPStore remote',
      'Account fulmar',
      '',
      'MaildirStore local',
      `Path ${maildir}/`,
      `Inbox ${maildir}/INBOX`,
      'SubFolders Verbatim',
      '',
      'Channel all',
      'Far :remote:',
      'Near :local:',
      'Patterns *',
      'Create Both',
      'Expunge Both',
      'SyncState *',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const run = (extra: string[] = []): { status: number; output: string } => {
    const r = spawnSync('mbsync', ['-c', rc, '-V', ...extra, 'all'], { encoding: 'utf8', env: { ...process.env, HOME: dir }, timeout: 60_000 });
    return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
  };
  return { dir, maildir, run };
}

interface LocalMessage {
  /** Path relative to the mailbox folder: `new/x` or `cur/x`. */
  file: string;
  uid: number | null;
  /** Maildir flags (`FRST`...), after `:2,`. */
  flags: string;
  text: string;
}

function localMessages(maildir: string, box: string): LocalMessage[] {
  const out: LocalMessage[] = [];
  for (const sub of ['new', 'cur']) {
    const d = join(maildir, box, sub);
    if (!existsSync(d)) continue;
    for (const name of readdirSync(d).sort()) {
      const uid = /,U=(\d+)/.exec(name);
      const flags = /:2,([A-Za-z]*)$/.exec(name);
      out.push({ file: `${sub}/${name}`, uid: uid ? Number(uid[1]) : null, flags: flags ? flags[1]! : '', text: readFileSync(join(d, name), 'utf8') });
    }
  }
  return out.sort((a, b) => (a.uid ?? Infinity) - (b.uid ?? Infinity));
}

/** Every file under the Maildir (names only), for "nothing changed" checks. */
function maildirListing(maildir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(join(d, e.name), p);
      else out.push(p);
    }
  };
  walk(maildir, '');
  return out.sort();
}

/** Sets the Maildir flags of a local message (moving it to cur/, as a mail reader does). */
function setLocalFlags(maildir: string, box: string, m: LocalMessage, flags: string): void {
  const base = m.file.slice(4).replace(/:2,[A-Za-z]*$/, '');
  renameSync(join(maildir, box, m.file), join(maildir, box, 'cur', `${base}:2,${flags}`));
}

function newMaildirFolder(maildir: string, box: string): void {
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, box, sub), { recursive: true });
}

test('mbsync over IMAPS (with COMPRESS) syncs every mailbox both ways: mail, uploads, flags, expunges, new folders; a second run changes nothing', { skip: noMbsync }, async (t) => {
  const user = await newUser('mbsync');
  for (const [i, b] of BODIES.entries()) await deliver(f, [user], message(user, `delivered ${i + 1}`, b));
  const stored = (await storedInbox(f, user)).messages;
  const mb = mbsyncFolder(user, 'IMAPS');
  const { maildir } = mb;
  const sync = (what: string, extra: string[] = []): string => {
    const r = mb.run(extra);
    assert.equal(r.status, 0, `${what}: mbsync failed:\n${r.output}`);
    return r.output;
  };

  await t.test('mail delivered by SMTP appears in the Maildir, and every mailbox is created there', async () => {
    // -Dn: mbsync prints the IMAP conversation.
    const out = sync('first sync', ['-Dn']);
    assert.match(out, /^(?:F: )?>>> \d+ COMPRESS DEFLATE$/m, 'mbsync asked for COMPRESS=DEFLATE');
    assert.match(out, /^(?:F: )?\d+ OK DEFLATE active$/m);
    assert.match(out, /^(?:F: )?>>> \d+ UID FETCH \d+ \(BODY\.PEEK\[\]\)$/m, 'and fetched the messages through it');
    const local = localMessages(maildir, 'INBOX');
    assert.deepEqual(local.map((m) => m.uid), stored.map((m) => m.record.uid));
    // mbsync keeps Maildir files with LF line ends.
    local.forEach((m, i) => assert.equal(withoutTuid(m.text), lf(stored[i]!.bytes), `message ${i + 1} byte for byte (LF)`));
    assert.deepEqual(local.map((m) => m.flags), ['', '']);
    for (const box of ['Archive', 'Drafts', 'Junk', 'Sent', 'Trash']) assert.ok(existsSync(join(maildir, box, 'cur')), `${box} created locally`);
  });

  const uploaded = `From: <${user}>\nTo: <friend@far.example>\nSubject: written offline\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\nDraft body — ✓\n.\nend\n`;
  const sent = `From: <${user}>\nTo: <friend@far.example>\nSubject: sent offline\n\nSent body\n`;

  await t.test('messages placed in the Maildir are uploaded with APPEND, byte for byte (CRLF), with their flags', async () => {
    writeFileSync(join(maildir, 'INBOX', 'new', `1700000000.local1.host`), uploaded);
    writeFileSync(join(maildir, 'Sent', 'cur', `1700000001.local2.host:2,S`), sent);
    sync('upload');
    const inbox = await serverMessages(user, 'INBOX');
    assert.equal(inbox.length, 3);
    assert.equal(withoutTuid(inbox[2]!.body.toString()), crlf(uploaded));
    assert.deepEqual(inbox[2]!.flags, []);
    const sentBox = await serverMessages(user, 'Sent');
    assert.equal(sentBox.length, 1);
    assert.equal(withoutTuid(sentBox[0]!.body.toString()), crlf(sent));
    assert.deepEqual(sentBox[0]!.flags, ['\\Seen']);
    // mbsync learned the UIDs (UIDPLUS APPENDUID) and put them in the file names.
    assert.deepEqual(localMessages(maildir, 'INBOX').map((m) => m.uid), inbox.map((m) => m.uid));
    assert.deepEqual(localMessages(maildir, 'Sent').map((m) => m.uid), [sentBox[0]!.uid]);
  });

  await t.test('flags set locally reach the server; flags set on the server reach the Maildir', async () => {
    const [m1, m2] = localMessages(maildir, 'INBOX');
    setLocalFlags(maildir, 'INBOX', m1!, 'S');
    setLocalFlags(maildir, 'INBOX', m2!, 'FS');
    await withImap(user, async (w) => {
      await w.command('SELECT INBOX');
      assert.equal((await w.command('UID STORE 3 +FLAGS.SILENT (\\Answered)')).status, 'OK');
    });
    sync('flags');
    const inbox = await serverMessages(user, 'INBOX');
    assert.deepEqual(inbox.map((m) => m.flags), [['\\Seen'], ['\\Flagged', '\\Seen'], ['\\Answered']]);
    assert.deepEqual(localMessages(maildir, 'INBOX').map((m) => m.flags), ['S', 'FS', 'R']);
  });

  await t.test('a message flagged \\Deleted and expunged on the server disappears locally; one trashed locally disappears from the server', async () => {
    await withImap(user, async (w) => {
      await w.command('SELECT INBOX');
      assert.equal((await w.command('UID STORE 1 +FLAGS.SILENT (\\Deleted)')).status, 'OK');
      const e = await w.command('EXPUNGE');
      assert.deepEqual(e.lines, ['* 1 EXPUNGE']);
    });
    const trashed = localMessages(maildir, 'INBOX').find((m) => m.uid === 3)!;
    setLocalFlags(maildir, 'INBOX', trashed, 'RT');
    sync('expunge');
    assert.deepEqual(localMessages(maildir, 'INBOX').map((m) => m.uid), [2]);
    assert.deepEqual((await serverMessages(user, 'INBOX')).map((m) => m.uid), [2]);
  });

  await t.test('folders created locally are created on the server (with their mail); one created on the server appears locally', async () => {
    newMaildirFolder(maildir, 'Projects');
    newMaildirFolder(maildir, 'Projects/2024');
    writeFileSync(join(maildir, 'Projects/2024', 'new', '1700000002.local3.host'), 'Subject: nested\n\nin a new folder\n');
    // isync 1.4 passes mailbox names through as they are (modified UTF-7 conversion came with
    // isync 1.5): a local "R&D" or "Entwürfe" would reach the server as invalid modified UTF-7
    // and be refused (BAD, as Dovecot refuses it), so only the server side uses such a name.
    await withImap(user, async (w) => {
      assert.equal((await w.command('CREATE "Reports/Q1"')).status, 'OK');
      assert.equal((await w.command('CREATE "Caf&AOk-"')).status, 'OK');
    });
    sync('folders');
    const names = await withImap(user, async (w) => listedNames(await w.command('LIST "" "*"')));
    assert.deepEqual(names, ['Archive', 'Caf&AOk-', 'Drafts', 'INBOX', 'Junk', 'Projects', 'Projects/2024', 'Reports', 'Reports/Q1', 'Sent', 'Trash']);
    assert.ok(existsSync(join(maildir, 'Caf&AOk-', 'cur')), 'Café created locally (under its wire name, by isync 1.4)');
    const nested = await serverMessages(user, 'Projects/2024');
    assert.deepEqual(nested.map((m) => withoutTuid(m.body.toString())), ['Subject: nested\r\n\r\nin a new folder\r\n']);
    assert.ok(existsSync(join(maildir, 'Reports', 'Q1', 'cur')), 'Reports/Q1 created locally');
  });

  await t.test('a second sync with no changes changes nothing on either side', async () => {
    sync('settle');
    const serverBefore = await serverState(user);
    const localBefore = maildirListing(maildir).filter((p) => !p.endsWith('.mbsyncstate') && !p.includes('.mbsyncstate.'));
    const out = sync('no-op');
    assert.deepEqual(await serverState(user), serverBefore, 'no mailbox changed on the server (MESSAGES, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ)');
    assert.deepEqual(
      maildirListing(maildir).filter((p) => !p.endsWith('.mbsyncstate') && !p.includes('.mbsyncstate.')),
      localBefore,
      'no file changed in the Maildir',
    );
    assert.doesNotMatch(out, /Error|error|warning/i, out);
  });
});

test('mbsync over STARTTLS on port 143 syncs INBOX, and the session it logged in with had done STARTTLS', { skip: noMbsync }, async () => {
  const user = await newUser('mbstls');
  await deliver(f, [user], message(user, 'over starttls', BODIES[1]!));
  const stored = (await storedInbox(f, user)).messages;
  const mb = mbsyncFolder(user, 'STARTTLS');
  const r = mb.run();
  assert.equal(r.status, 0, r.output);
  const local = localMessages(mb.maildir, 'INBOX');
  assert.equal(local.length, 1);
  assert.equal(withoutTuid(local[0]!.text), lf(stored[0]!.bytes));
  writeFileSync(join(mb.maildir, 'INBOX', 'new', '1700000003.local4.host'), 'Subject: up over starttls\n\nbody\n');
  const again = mb.run();
  assert.equal(again.status, 0, again.output);
  assert.equal((await serverMessages(user, 'INBOX')).length, 2);
  await sleep(100);
  const logins = f.events('imap.login').filter((e) => e.login === user);
  assert.ok(logins.length >= 2, 'two mbsync runs logged in (plus our checks over 993)');
  const tls = new Set(f.events('imap.starttls').map((e) => e.sid));
  assert.ok(logins.filter((e) => tls.has(e.sid)).length >= 2, 'both mbsync sessions had upgraded with STARTTLS');
});

// ---- curl

function curl(args: string[]): { status: number; stdout: Buffer; stderr: string } {
  const r = spawnSync('curl', ['-sS', '-k', '--max-time', '20', ...args], { timeout: 30_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
}

function headerOf(b: Buffer): Buffer {
  return b.subarray(0, b.indexOf('\r\n\r\n') + 4);
}

function textOf(b: Buffer): Buffer {
  return b.subarray(b.indexOf('\r\n\r\n') + 4);
}

test('curl imaps://: LIST, UID fetch byte for byte, ;SECTION=TEXT and HEADER, EXAMINE, SEARCH, upload; a wrong password is refused', async () => {
  const user = await newUser('curl');
  const word = unique('needle');
  await deliver(f, [user], message(user, 'first', BODIES[0]!));
  await deliver(f, [user], message(user, `the ${word} subject`, BODIES[1]!));
  const { messages } = await storedInbox(f, user);
  const base = `imaps://127.0.0.1:${f.ports.imaps}`;
  const auth = ['-u', `${user}:secret`];

  const list = curl([...auth, `${base}/`]);
  assert.equal(list.status, 0, list.stderr);
  assert.equal(
    list.stdout.toString(),
    [
      '* LIST (\\HasNoChildren) "/" INBOX',
      '* LIST (\\HasNoChildren \\Archive) "/" Archive',
      '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
      '* LIST (\\HasNoChildren \\Junk) "/" Junk',
      '* LIST (\\HasNoChildren \\Sent) "/" Sent',
      '* LIST (\\HasNoChildren \\Trash) "/" Trash',
      '',
    ].join('\r\n'),
  );

  for (const m of messages) {
    // Both URL forms of rfc5092 that curl takes.
    for (const url of [`${base}/INBOX;UID=${m.record.uid}`, `${base}/INBOX/;UID=${m.record.uid}`]) {
      const r = curl([...auth, url]);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(r.stdout.equals(m.bytes), `${url} byte for byte:\n${r.stdout.toString()}`);
    }
  }
  const m1 = messages[0]!;
  const text = curl([...auth, `${base}/INBOX/;UID=${m1.record.uid}/;SECTION=TEXT`]);
  assert.equal(text.status, 0, text.stderr);
  assert.ok(text.stdout.equals(textOf(m1.bytes)), `TEXT:\n${text.stdout.toString()}`);
  const header = curl([...auth, `${base}/INBOX;UID=${m1.record.uid};SECTION=HEADER`]);
  assert.ok(header.stdout.equals(headerOf(m1.bytes)), `HEADER:\n${header.stdout.toString()}`);
  const field = curl([...auth, `${base}/INBOX;UID=${m1.record.uid};SECTION=HEADER.FIELDS%20(SUBJECT)`]);
  assert.equal(field.stdout.toString(), 'Subject: first\r\n\r\n');

  const examine = curl([...auth, '-X', 'EXAMINE INBOX', `${base}/`]);
  assert.equal(examine.status, 0, examine.stderr);
  const lines = examine.stdout.toString().split('\r\n');
  assert.ok(lines.includes('* 2 EXISTS'), examine.stdout.toString());
  assert.ok(lines.includes('* OK [PERMANENTFLAGS ()] Read-only mailbox'));
  assert.ok(lines.some((l) => /^\* OK \[UIDVALIDITY \d+\]/.test(l)));
  assert.ok(lines.some((l) => l.startsWith('* OK [UIDNEXT 3]')));

  const search = curl([...auth, `${base}/INBOX?SUBJECT%20${word}`]);
  assert.equal(search.status, 0, search.stderr);
  assert.equal(search.stdout.toString(), '* SEARCH 2\r\n');
  const none = curl([...auth, `${base}/INBOX?SUBJECT%20nothing-${word}`]);
  assert.equal(none.stdout.toString(), '* SEARCH\r\n');

  // curl -T uploads with APPEND.
  const dir = mkdtempSync(join(tmpdir(), 'fulmar-curl-'));
  folders.push(dir);
  const upload = Buffer.from(`Subject: uploaded by curl\r\nFrom: <${user}>\r\n\r\nline one\r\n.\r\nÜmlaut\r\n`);
  writeFileSync(join(dir, 'upload.eml'), upload);
  const up = curl([...auth, '-T', join(dir, 'upload.eml'), `${base}/Drafts`]);
  assert.equal(up.status, 0, up.stderr);
  const drafts = await serverMessages(user, 'Drafts');
  assert.equal(drafts.length, 1);
  assert.ok(drafts[0]!.body.equals(upload), 'the upload is stored byte for byte');
  assert.deepEqual(drafts[0]!.flags, ['\\Seen'], 'curl appends with \\Seen');

  const wrong = curl(['-u', `${user}:wrong`, `${base}/`]);
  assert.equal(wrong.status, 67, `curl: login denied (${wrong.stderr})`);
  assert.equal(wrong.stdout.length, 0);
});

test('curl imap:// on port 143: --ssl-reqd upgrades with STARTTLS; without TLS the login is refused (LOGINDISABLED)', async () => {
  const user = await newUser('curlstls');
  await deliver(f, [user], message(user, 'stls', BODIES[0]!));
  const [m] = (await storedInbox(f, user)).messages;
  const url = `imap://127.0.0.1:${f.ports.imap}/INBOX;UID=${m!.record.uid}`;

  const tls = curl(['--ssl-reqd', '-u', `${user}:secret`, url]);
  assert.equal(tls.status, 0, tls.stderr);
  assert.ok(tls.stdout.equals(m!.bytes), 'UID FETCH over STARTTLS byte for byte');

  const plain = curl(['-u', `${user}:secret`, url]);
  assert.equal(plain.status, 67, `curl: login denied without TLS (${plain.stderr})`);
  assert.equal(plain.stdout.length, 0);
});
