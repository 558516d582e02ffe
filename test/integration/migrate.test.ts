/**
 * `fulmar migrate --to postgres://...`: an embedded site with mail (flags set over IMAP, a large
 * message kept as a file, an expunge), a queued message, an alias, a collector source and
 * settings is copied into PostgreSQL; the server started on the copy shows IMAP clients the same
 * UIDVALIDITY, UIDs, flags and bytes, and POP3 the same UIDLs.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FulmarProcess, python } from './harness.js';
import { freshDatabase } from './pg-database.js';

const database = freshDatabase('fulmar_migrate');
const DATABASE = database.url;
const PASSWORD = 'migrate-pass-1';
const processes: FulmarProcess[] = [];

after(async () => {
  for (const f of processes) {
    await f.stop();
    f.cleanup();
  }
  await database.drop();
});

/** What a client sees of the site: IMAP state of every mailbox of the user, and POP3 UIDLs. */
function snapshot(f: FulmarProcess, user: string): Record<string, unknown> {
  return JSON.parse(
    python(String.raw`
import imaplib, poplib, json, hashlib, re
c = imaplib.IMAP4('127.0.0.1', ${f.ports.imap})
c.login(${JSON.stringify(user)}, ${JSON.stringify(PASSWORD)})
out = {}
for box in ('INBOX', 'Archive'):
    typ, data = c.select(box)
    st = c.status(box, '(UIDVALIDITY UIDNEXT MESSAGES)')[1][0].decode()
    typ, data = c.uid('FETCH', '1:*', '(FLAGS RFC822.SIZE BODY.PEEK[])')
    msgs = []
    for item in data:
        if isinstance(item, tuple):
            meta = item[0].decode()
            uid = re.search(r'UID (\d+)', meta).group(1)
            flags = re.search(r'FLAGS \(([^)]*)\)', meta).group(1)
            msgs.append([int(uid), flags, hashlib.sha256(item[1]).hexdigest(), len(item[1])])
    out[box] = {'status': re.sub(r'^"?[^ ]*"? ', '', st), 'messages': sorted(msgs)}
c.logout()
p = poplib.POP3('127.0.0.1', ${f.ports.pop3})
p.user(${JSON.stringify(user)}); p.pass_(${JSON.stringify(PASSWORD)})
out['uidl'] = [l.decode() for l in p.uidl()[1]]
p.quit()
print(json.dumps(out))
`),
  ) as Record<string, unknown>;
}

test('an embedded site copied into PostgreSQL: mailboxes, flags, bytes, UIDLs, queue, aliases, collectors and settings kept', async () => {
  const site = await FulmarProcess.create({ settings: { 'auth.allow_plaintext': 'true', 'smtp.max_message_size': '30MB' } });
  processes.push(site);
  site.cli('domain', 'add', 'old.test');
  site.cli('user', 'add', 'ann@old.test', '--password', PASSWORD, '--quota', '1GB', '--name', 'Ann Old');
  site.cli('user', 'add', 'bob@old.test', '--password', PASSWORD);
  site.cli('alias', 'add', 'sales@old.test', 'ann@old.test', 'bob@old.test');
  site.cli('collect', 'domainpop', 'add', 'isp', '--domain', 'old.test', '--host', '127.0.0.1', '--port', '9', '--user', 'c', '--password', 'pw', '--envelope-header', 'X-Rcpt-To');
  await site.start();
  python(String.raw`
import smtplib, imaplib
s = smtplib.SMTP('127.0.0.1', ${site.ports.smtp})
for i in range(6):
    s.sendmail('x@remote.test', ['sales@old.test'], ('Subject: m%d\r\n\r\nbody %d\r\n' % (i, i)).encode())
big = ('Subject: big\r\n\r\n' + ('y' * 76 + '\r\n') * 20000).encode()
s.sendmail('x@remote.test', ['ann@old.test'], big)
s.quit()
c = imaplib.IMAP4('127.0.0.1', ${site.ports.imap})
c.login('ann@old.test', ${JSON.stringify(PASSWORD)})
c.select('INBOX')
c.uid('STORE', '1', '+FLAGS', '(\\Seen \\Flagged)')
c.uid('STORE', '2', '+FLAGS', '($Important)')
c.uid('COPY', '3', 'Archive')
c.uid('STORE', '4', '+FLAGS', '(\\Deleted)')
c.expunge()
c.logout()
# a message for a remote address waits in the queue (no DNS in the tests)
s = smtplib.SMTP('127.0.0.1', ${site.ports.submission})
s.login('bob@old.test', ${JSON.stringify(PASSWORD)})
s.sendmail('bob@old.test', ['far@remote.test'], b'Subject: queued\r\n\r\nwaits\r\n')
s.quit()
`);
  const before = { ann: snapshot(site, 'ann@old.test'), bob: snapshot(site, 'bob@old.test') };
  const queueBefore = site.cli('queue', 'list');
  await site.stop();

  const migrate = site.cliResult('migrate', '--to', DATABASE);
  assert.equal(migrate.status, 0, migrate.stderr);
  assert.match(migrate.stdout, /copied \d+ rows and \d+ message bodies/);
  assert.match(migrate.stderr, /^messages: 13 row\(s\)$/m);
  assert.match(migrate.stderr, /row counts checked: every table matches/);
  // A second migration into the same (now full) database is refused, and changes nothing.
  const again = site.cliResult('migrate', '--to', DATABASE);
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /already holds domains/);

  const copy = await FulmarProcess.create({ database: DATABASE, settings: {} });
  processes.push(copy);
  await copy.start();
  assert.deepEqual(snapshot(copy, 'ann@old.test'), before.ann);
  assert.deepEqual(snapshot(copy, 'bob@old.test'), before.bob);
  const strip = (t: string): string => t.replace(/\s+\S+ago|\d+[smhd]\b/g, '');
  assert.equal(strip(copy.cli('queue', 'list')), strip(queueBefore));
  assert.match(copy.cli('alias', 'list'), /sales@old\.test.*ann@old\.test/s);
  assert.match(copy.cli('collect', 'domainpop', 'list'), /^isp: domain old\.test/m);
  assert.equal(copy.cli('settings', 'get', 'smtp.max_message_size').trim(), '30MB');
  assert.match(copy.cli('user', 'list'), /ann@old\.test\s+1GB\s+1\.5MB/, 'quota and usage kept');
  // The copy takes new mail after the old UIDs.
  python(String.raw`
import smtplib
s = smtplib.SMTP('127.0.0.1', ${copy.ports.smtp})
s.sendmail('x@remote.test', ['bob@old.test'], b'Subject: after\r\n\r\nnew\r\n')
s.quit()
`);
  const bobAfter = snapshot(copy, 'bob@old.test') as { INBOX: { messages: number[][] } };
  assert.deepEqual(
    bobAfter.INBOX.messages.map((m) => m[0]),
    [1, 2, 3, 4, 5, 6, 7],
  );
});
