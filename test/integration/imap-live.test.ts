/**
 * Live mailboxes, driven by Python's imaplib: two (or three) concurrent sessions on the same
 * account plus SMTP delivery, checking the untagged updates each session sees and when
 * (rfc9051 5.2, 5.5, 7.4.1 and 7.5.1; rfc2177 IDLE; rfc7162 QRESYNC).
 *
 * Each session logs in with imaplib; after that a reader thread takes every line the server sends
 * (with its arrival time), so a test can wait for an unsolicited response with a timeout, measure
 * IDLE wake-up latency, and stop reading to hold a large FETCH response in the middle while the
 * other session changes the mailbox.
 *
 * One server for the file; each test adds its own accounts. Where the server deviates from the
 * RFC, the assertion keeps the RFC-correct behaviour and names the section.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FulmarProcess } from './harness.js';
import { Admin, python3, startServer, stopServer, unique } from './smtp-wire.js';

const DOMAIN = 'imaplive.test';
let f: FulmarProcess;
let admin: Admin;

before(async () => ({ f, admin } = await startServer(DOMAIN)));
after(() => stopServer(f, admin));

const PRELUDE = String.raw`
import imaplib, smtplib, ssl, json, os, re, socket, time, threading, queue
H = '127.0.0.1'
P143 = int(os.environ['P143']); P993 = int(os.environ['P993']); P25 = int(os.environ['P25'])
U = os.environ.get('U')
def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c
def send(to, msg):
    s = smtplib.SMTP(H, P25, timeout=20)
    s.sendmail('sender@far.example', [to], msg)
    s.quit()
def msg(subject, body='body', size=0):
    return 'From: <x@far.example>\r\nSubject: %s\r\n\r\n%s%s\r\n' % (subject, body, 'x' * size)
class S:
    """An imaplib session (logged in, so imaplib did the TLS and LOGIN); then a thread reads every
    line with its arrival time, literals inlined."""
    n = 0
    def __init__(self, name, port=993, user=None):
        if port == 993:
            m = imaplib.IMAP4_SSL(H, P993, ssl_context=ctx(), timeout=30)
        else:
            m = imaplib.IMAP4(H, P143, timeout=30)
            m.starttls(ctx())
        m.login(user or U, 'secret')
        self.m = m
        self.name = name
        self.q = queue.Queue()
        self.hold = None          # a predicate: when a line matches, the reader stops ...
        self.resume = threading.Event()   # ... until this is set
        self.held = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
    def _run(self):
        m = self.m
        try:
            while True:
                line = m.readline()
                if not line:
                    self.q.put((time.time(), None))
                    return
                while True:
                    mm = re.search(rb'\{(\d+)\}\r\n$', line)
                    if not mm:
                        break
                    line += m.read(int(mm.group(1))) + m.readline()
                s = line.decode('utf-8', 'replace').rstrip('\r\n')
                self.q.put((time.time(), s))
                if self.hold and self.hold(s):
                    self.hold = None
                    self.held.set()
                    self.resume.wait(10)
        except Exception:
            self.q.put((time.time(), None))
    def get(self, timeout):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return None
    def send(self, text):
        S.n += 1
        tag = '%s%d' % (self.name, S.n)
        self.m.send(('%s %s\r\n' % (tag, text)).encode())
        return tag
    def collect(self, tag, timeout=20):
        out = []
        while True:
            got = self.get(timeout)
            if got is None:
                out.append('<TIMEOUT>')
                return out
            if got[1] is None:
                out.append('<EOF>')
                return out
            s = got[1]
            done = s.startswith(tag + ' ')
            out.append(s.replace(tag + ' ', 'TAG ', 1))
            if done:
                return out
    def cmd(self, text):
        return self.collect(self.send(text))
    def wait(self, seconds, until=None):
        """Lines that arrive within the time, up to one matching until; [(time, line)]."""
        out = []
        end = time.time() + seconds
        while True:
            left = end - time.time()
            if left <= 0:
                return out
            got = self.get(left)
            if got is None:
                return out
            out.append((got[0], got[1] if got[1] is not None else '<EOF>'))
            if got[1] is None or (until and until(got[1])):
                return out
    def idle(self):
        self.idle_tag = self.send('IDLE')
        got = self.wait(5, lambda l: l.startswith('+'))
        assert got and got[-1][1] == '+ idling', got
    def done(self):
        self.m.send(b'DONE\r\n')
        got = self.wait(5, lambda l: l.startswith(self.idle_tag + ' '))
        return [l.replace(self.idle_tag + ' ', 'TAG ', 1) for _, l in got]
    def uids(self):
        """The UIDs by sequence number, from the server (FETCH 1:* (UID))."""
        lines = self.cmd('FETCH 1:* (UID)')
        by_seq = {}
        for l in lines:
            mm = re.match(r'^\* (\d+) FETCH \(UID (\d+)\)$', l)
            if mm:
                by_seq[int(mm.group(1))] = int(mm.group(2))
        return [by_seq[k] for k in sorted(by_seq)]
def append(box, text):
    return 'APPEND %s {%d+}\r\n%s' % (box, len(text.encode()), text)
def lines_of(timed):
    return [l for _, l in timed]
def replay(uids, lines):
    """What a client makes of EXISTS, EXPUNGE and VANISHED: its list of UIDs by sequence number
    (None for a message it knows by number only)."""
    uids = list(uids)
    for l in lines:
        m = re.match(r'^\* (\d+) EXPUNGE$', l)
        if m:
            del uids[int(m.group(1)) - 1]
            continue
        m = re.match(r'^\* (\d+) EXISTS$', l)
        if m:
            uids += [None] * (int(m.group(1)) - len(uids))
            continue
        m = re.match(r'^\* VANISHED (?!\(EARLIER\))(.*)$', l)
        if m:
            gone = set()
            for part in m.group(1).split(','):
                a, _, b = part.partition(':')
                gone.update(range(int(a), int(b or a) + 1))
            uids = [u for u in uids if u not in gone]
    return uids
def fetch_items(line):
    u = re.search(r'\bUID (\d+)', line)
    fl = re.search(r'\bFLAGS \(([^)]*)\)', line)
    ms = re.search(r'\bMODSEQ \((\d+)\)', line)
    return {'uid': int(u.group(1)) if u else None, 'flags': fl.group(1).split() if fl else None, 'modseq': int(ms.group(1)) if ms else None}
out = {}
`;

function py(script: string, env: Record<string, string> = {}): Record<string, any> {
  const stdout = python3(`${PRELUDE}\n${script}\nprint(json.dumps(out))`, {
    P143: String(f.ports.imap),
    P993: String(f.ports.imaps),
    P25: String(f.ports.smtp),
    ...env,
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, any>;
}

async function newUser(prefix: string): Promise<string> {
  const user = `${unique(prefix)}@${DOMAIN}`;
  await admin.addUsers([user], 'secret');
  return user;
}

test('new mail: B sees EXISTS on its next NOOP, IDLE is woken within a second of each delivery, APPEND by A shows up on B', async () => {
  const user = await newUser('exists');
  const out = py(
    String.raw`
for i in range(2):
    send(U, msg('old %d' % i))
a = S('A', 993)
b = S('B', 143)
out['a_select'] = a.cmd('SELECT INBOX')[-1]
out['b_select'] = b.cmd('SELECT INBOX')
send(U, msg('new 1'))
out['b_noop'] = b.cmd('NOOP')
out['b_noop_again'] = b.cmd('NOOP')
b.idle()
latencies = []
pushed = []
for i in range(5):
    t0 = time.time()
    send(U, msg('idle %d' % i))
    t1 = time.time()
    got = b.wait(3, lambda l: l.endswith(' EXISTS'))
    pushed.append(lines_of(got))
    latencies.append([round((got[-1][0] - t1) * 1000, 1) if got else None, round((got[-1][0] - t0) * 1000, 1) if got else None])
out['idle_pushed'] = pushed
out['latencies'] = latencies
out['append'] = a.cmd(append('INBOX', 'Subject: appended\r\n\r\nx'))
out['idle_append'] = lines_of(b.wait(3, lambda l: l.endswith(' EXISTS')))
out['done'] = b.done()
out['b_count'] = len(b.uids())
out['a_noop'] = a.cmd('NOOP')
`,
    { U: user },
  );
  assert.equal(out.a_select, 'TAG OK [READ-WRITE] SELECT completed');
  assert.ok(out.b_select.includes('* 2 EXISTS'));
  assert.deepEqual(out.b_noop, ['* 3 EXISTS', 'TAG OK NOOP completed']);
  assert.deepEqual(out.b_noop_again, ['TAG OK NOOP completed'], 'said once');
  assert.deepEqual(out.idle_pushed, [['* 4 EXISTS'], ['* 5 EXISTS'], ['* 6 EXISTS'], ['* 7 EXISTS'], ['* 8 EXISTS']]);
  const afterReply = (out.latencies as Array<[number | null, number | null]>).map((l) => l[0]!);
  const total = (out.latencies as Array<[number | null, number | null]>).map((l) => l[1]!);
  for (const l of afterReply) assert.ok(l !== null && l < 1000, `IDLE woken ${l} ms after the delivery was acknowledged`);
  console.log(
    `# IDLE wake-up: EXISTS ${afterReply.map((l) => `${l}`).join(', ')} ms after the SMTP 250 reached the client ` +
      `(negative: before it); ${total.join(', ')} ms after the SMTP session began`,
  );
  assert.match(out.append.at(-1), /^TAG OK \[APPENDUID \d+ 9\] APPEND completed$/);
  assert.deepEqual(out.append.slice(0, -1), ['* 9 EXISTS'], 'A learns of its own APPEND in the selected mailbox');
  assert.deepEqual(out.idle_append, ['* 9 EXISTS']);
  assert.deepEqual(out.done, ['TAG OK IDLE terminated']);
  assert.equal(out.b_count, 9);
  assert.deepEqual(out.a_noop, ['TAG OK NOOP completed'], 'nothing twice for A');
});

test('flag changes by A: * n FETCH (UID FLAGS) on B at NOOP and during IDLE, with MODSEQ once B enabled CONDSTORE; \\Seen set by A\'s FETCH; a new message is announced before its flags', async () => {
  const user = await newUser('flags');
  const out = py(
    String.raw`
for i in range(4):
    send(U, msg('m%d' % i))
a = S('A')
b = S('B', 143)
c = S('C')
a.cmd('SELECT INBOX'); b.cmd('SELECT INBOX')
out['c_enable'] = c.cmd('ENABLE CONDSTORE')
c.cmd('SELECT INBOX')
out['a_store'] = a.cmd('STORE 2 +FLAGS (\\Flagged $Todo)')
out['b_noop'] = b.cmd('NOOP')
out['c_noop'] = c.cmd('NOOP')
b.idle()
a.cmd('STORE 3 FLAGS.SILENT (\\Answered)')
out['b_idle_store'] = lines_of(b.wait(2, lambda l: ' FETCH ' in l))
a.cmd('FETCH 4 (BODY[TEXT])')
out['b_idle_seen'] = lines_of(b.wait(2, lambda l: ' FETCH ' in l))
a.cmd('STORE 2 -FLAGS.SILENT ($Todo)')
a.cmd('STORE 2 +FLAGS.SILENT ($Later)')
out['b_idle_twice'] = lines_of(b.wait(2, lambda l: '$Later' in l))
out['b_done'] = b.done()
out['c_noop2'] = c.cmd('NOOP')
# A new message, flagged by A before B hears of it: B must get EXISTS before a FETCH for it.
send(U, msg('fresh'))
out['a_noop'] = a.cmd('NOOP')
a.cmd('STORE 5 +FLAGS.SILENT (\\Flagged)')
out['b_batch'] = b.cmd('NOOP')
`,
    { U: user },
  );
  assert.deepEqual(out.a_store, ['* 2 FETCH (FLAGS (\\Flagged $Todo))', 'TAG OK STORE completed']);
  assert.deepEqual(out.b_noop, ['* 2 FETCH (UID 2 FLAGS (\\Flagged $Todo))', 'TAG OK NOOP completed']);
  assert.deepEqual(out.c_enable, ['* ENABLED CONDSTORE', 'TAG OK ENABLE completed']);
  assert.match(out.c_noop[0], /^\* 2 FETCH \(UID 2 FLAGS \(\\Flagged \$Todo\) MODSEQ \(\d+\)\)$/, 'rfc7162 3.1: MODSEQ in unsolicited FETCH');
  assert.deepEqual(out.b_idle_store, ['* 3 FETCH (UID 3 FLAGS (\\Answered))']);
  assert.deepEqual(out.b_idle_seen, ['* 4 FETCH (UID 4 FLAGS (\\Seen))'], 'the \\Seen that A\'s FETCH BODY[TEXT] set');
  assert.deepEqual(out.b_idle_twice, ['* 2 FETCH (UID 2 FLAGS (\\Flagged))', '* 2 FETCH (UID 2 FLAGS (\\Flagged $Later))']);
  assert.deepEqual(out.b_done, ['TAG OK IDLE terminated']);
  const c2 = (out.c_noop2 as string[]).slice(0, -1);
  assert.deepEqual(c2.map((l) => fetchUid(l)).sort(), [2, 3, 4], 'C got each changed message once, with its latest flags');
  assert.deepEqual(out.a_noop, ['* 5 EXISTS', 'TAG OK NOOP completed']);
  const batch = out.b_batch as string[];
  assert.ok(batch.includes('* 5 EXISTS') && batch.includes('* 5 FETCH (UID 5 FLAGS (\\Flagged))'), JSON.stringify(batch));
  assert.ok(
    batch.indexOf('* 5 EXISTS') < batch.indexOf('* 5 FETCH (UID 5 FLAGS (\\Flagged))'),
    `rfc9051 2.3.1.2/7.4.1: a FETCH for sequence number 5 before the EXISTS that makes it exist: ${JSON.stringify(batch)}`,
  );
});

/** What a client makes of EXISTS, EXPUNGE and VANISHED: its UIDs by sequence number (null: known by number only). */
function replay(uids: Array<number | null>, lines: string[]): Array<number | null> {
  let out = [...uids];
  for (const l of lines) {
    let m = /^\* (\d+) EXPUNGE$/.exec(l);
    if (m) {
      out.splice(Number(m[1]) - 1, 1);
      continue;
    }
    m = /^\* (\d+) EXISTS$/.exec(l);
    if (m) {
      while (out.length < Number(m[1])) out.push(null);
      continue;
    }
    m = /^\* VANISHED (?!\(EARLIER\))(.*)$/.exec(l);
    if (m) {
      const gone = new Set<number>();
      for (const part of m[1]!.split(',')) {
        const [a, b] = part.split(':').map(Number) as [number, number | undefined];
        for (let u = a; u <= (b ?? a); u++) gone.add(u);
      }
      out = out.filter((u) => u === null || !gone.has(u));
    }
  }
  return out;
}

function fetchUid(line: string): number | null {
  const m = /\bUID (\d+)/.exec(line);
  return m ? Number(m[1]) : null;
}

test('expunges by A: B gets EXPUNGE with sequence numbers that replay to the right UIDs, never during its FETCH, STORE or SEARCH by number; MOVE by A shows on B and on C', async () => {
  const user = await newUser('expunge');
  const out = py(
    String.raw`
for i in range(10):
    send(U, msg('m%d' % i))
a = S('A')
b = S('B', 143)
c = S('C')
a.cmd('SELECT INBOX'); b.cmd('SELECT INBOX')
out['c_select'] = c.cmd('SELECT Archive')[-1]
b_uids = b.uids()
out['b_uids'] = b_uids
# Several expunged at once, not adjacent.
a.cmd('STORE 2,3,5,9 +FLAGS.SILENT (\\Deleted)')
out['a_expunge'] = a.cmd('EXPUNGE')
# B's FETCH, STORE and SEARCH by sequence number must not be answered with EXPUNGE (rfc9051 7.5.1).
out['b_fetch'] = b.cmd('FETCH 1:* (UID)')
out['b_store'] = b.cmd('STORE 4 +FLAGS (\\Seen)')
out['b_search'] = b.cmd('SEARCH ALL')
out['b_noop'] = b.cmd('NOOP')
out['b_replayed'] = replay(b_uids, out['b_noop'])
out['b_after'] = b.uids()
out['a_after'] = a.uids()
# After the expunges B addresses messages by the new numbers: message 3 is UID 6.
out['b_fetch3'] = b.cmd('FETCH 3 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
# An expunge waiting while B uses UID commands: those may report it (rfc9051 7.5.1).
a.cmd('STORE 1 +FLAGS.SILENT (\\Deleted)'); a.cmd('EXPUNGE')
out['b_uid_fetch'] = b.cmd('UID FETCH 4 (FLAGS)')
# MOVE by A: B sees the source messages go, C (Archive selected) sees them arrive.
out['a_move'] = a.cmd('MOVE 2:3 Archive')
out['b_move'] = b.cmd('NOOP')
out['c_move'] = c.cmd('NOOP')
out['c_uids'] = c.uids()
# Several expunged while B is in IDLE: each EXPUNGE goes out at once, numbered as B knows them.
b.idle()
a.cmd('STORE 1,3 +FLAGS.SILENT (\\Deleted)')
a.cmd('EXPUNGE')
got = []
while len([l for l in got if l.endswith(' EXPUNGE')]) < 2:
    more = lines_of(b.wait(2, lambda l: l.endswith(' EXPUNGE')))
    if not more:
        break
    got += more
out['b_idle'] = got
out['b_idle_done'] = b.done()
out['b_idle_uids'] = b.uids()
`,
    { U: user },
  );
  assert.deepEqual(out.b_uids, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(out.a_expunge, ['* 9 EXPUNGE', '* 5 EXPUNGE', '* 3 EXPUNGE', '* 2 EXPUNGE', 'TAG OK EXPUNGE completed']);
  assert.ok(!out.b_fetch.some((l: string) => l.endsWith(' EXPUNGE')), `no EXPUNGE during FETCH: ${JSON.stringify(out.b_fetch)}`);
  assert.equal(out.b_fetch.at(-1), 'TAG OK FETCH completed');
  for (const l of out.b_fetch.slice(0, -1) as string[]) {
    const m = /^\* (\d+) FETCH \(UID (\d+)\)$/.exec(l);
    assert.ok(m, l);
    assert.equal(Number(m[2]), (out.b_uids as number[])[Number(m[1]) - 1], 'still the old numbering');
  }
  assert.ok(!out.b_store.some((l: string) => l.endsWith(' EXPUNGE')), `no EXPUNGE during STORE: ${JSON.stringify(out.b_store)}`);
  assert.deepEqual(out.b_store, ['* 4 FETCH (FLAGS (\\Seen))', 'TAG OK STORE completed']);
  assert.ok(!out.b_search.some((l: string) => l.endsWith(' EXPUNGE')), `no EXPUNGE during SEARCH: ${JSON.stringify(out.b_search)}`);
  assert.deepEqual(out.b_noop.filter((l: string) => l.endsWith(' EXPUNGE')).length, 4, JSON.stringify(out.b_noop));
  assert.equal(out.b_noop.at(-1), 'TAG OK NOOP completed');
  assert.deepEqual(out.b_replayed, [1, 4, 6, 7, 8, 10], 'B\'s EXPUNGE responses, applied in order, leave the right messages');
  assert.deepEqual(out.b_after, [1, 4, 6, 7, 8, 10]);
  assert.deepEqual(out.a_after, [1, 4, 6, 7, 8, 10]);
  assert.deepEqual(out.b_fetch3, ['* 3 FETCH (UID 6 BODY[HEADER.FIELDS (SUBJECT)] {15}\r\nSubject: m5\r\n\r\n)', 'TAG OK FETCH completed']);
  assert.ok(
    JSON.stringify(out.b_uid_fetch) === JSON.stringify(['* 2 FETCH (UID 4 FLAGS (\\Seen))', '* 1 EXPUNGE', 'TAG OK FETCH completed']) ||
      JSON.stringify(out.b_uid_fetch) === JSON.stringify(['* 1 EXPUNGE', '* 1 FETCH (UID 4 FLAGS (\\Seen))', 'TAG OK FETCH completed']) ||
      JSON.stringify(out.b_uid_fetch) === JSON.stringify(['* 2 FETCH (UID 4 FLAGS (\\Seen))', 'TAG OK FETCH completed']),
    `UID FETCH with an expunge pending: ${JSON.stringify(out.b_uid_fetch)}`,
  );
  assert.match(out.a_move[0], /^\* OK \[COPYUID \d+ 6:7 1:2\] Moved$/);
  assert.deepEqual(out.a_move.slice(1), ['* 3 EXPUNGE', '* 2 EXPUNGE', 'TAG OK MOVE completed']);
  assert.deepEqual(replay([4, 6, 7, 8, 10], out.a_move), [4, 8, 10]);
  const bKnown = out.b_uid_fetch.includes('* 1 EXPUNGE') ? [4, 6, 7, 8, 10] : [1, 4, 6, 7, 8, 10];
  assert.deepEqual(replay(bKnown, out.b_move), [4, 8, 10], `B after A's MOVE: ${JSON.stringify(out.b_move)}`);
  assert.equal(out.c_select, 'TAG OK [READ-WRITE] SELECT completed');
  assert.deepEqual(out.c_move, ['* 2 EXISTS', 'TAG OK NOOP completed']);
  assert.deepEqual(out.c_uids, [1, 2]);
  const idle = (out.b_idle as string[]).filter((l) => l.endsWith(' EXPUNGE'));
  assert.equal(idle.length, 2, JSON.stringify(out.b_idle));
  assert.deepEqual(replay([4, 8, 10], idle), [8], `EXPUNGE during IDLE: ${JSON.stringify(out.b_idle)}`);
  assert.deepEqual(out.b_idle_done, ['TAG OK IDLE terminated']);
  assert.deepEqual(out.b_idle_uids, [8]);
});

test('an expunge by A while B\'s FETCH of a large range is being sent is held back until B\'s NOOP', async () => {
  const user = await newUser('midfetch');
  const out = py(
    String.raw`
a = S('A')
b = S('B', 143)
body = ('y' * 998 + '\r\n') * 400
one = ('Subject: big\r\n\r\n' + body).encode()
cmd = b'APPEND INBOX' + b''.join(b' {%d+}\r\n' % len(one) + one for _ in range(20))
tag = a.send(cmd.decode())
out['append'] = a.collect(tag)[-1]
a.cmd('SELECT INBOX')
b.cmd('SELECT INBOX')
b_uids = b.uids()
# B asks for 8 MB; its reader stops after the first message and its receive buffer is kept small
# (a fixed SO_RCVBUF turns off autotuning), so the server is still writing the FETCH response,
# blocked on a full socket, when A expunges.
b.m.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
b.hold = lambda l: l.startswith('* 1 FETCH')
b.resume.clear()
tag = b.send('FETCH 1:* (UID BODY.PEEK[])')
out['held'] = b.held.wait(10)
a.cmd('STORE 1:5 +FLAGS.SILENT (\\Deleted)')
out['a_expunge'] = a.cmd('EXPUNGE')
b.resume.set()
fetched = b.collect(tag, 30)
out['b_fetch_lines'] = len(fetched)
out['b_fetch_expunges'] = [l for l in fetched if l.endswith(' EXPUNGE')]
out['b_fetch_last'] = fetched[-1]
out['b_fetch_numbers'] = [int(re.match(r'^\* (\d+) FETCH', l).group(1)) for l in fetched if re.match(r'^\* \d+ FETCH', l)]
out['b_noop'] = b.cmd('NOOP')
out['b_replayed'] = replay(b_uids, out['b_noop'])
out['b_after'] = b.uids()
`,
    { U: user },
  );
  assert.match(out.append, /^TAG OK \[APPENDUID \d+ 1:20\] APPEND completed$/);
  assert.equal(out.held, true);
  assert.deepEqual(out.a_expunge.at(-1), 'TAG OK EXPUNGE completed');
  assert.deepEqual(out.b_fetch_expunges, [], 'rfc9051 7.5.1: no EXPUNGE while a FETCH by sequence number runs');
  assert.equal(out.b_fetch_last, 'TAG OK FETCH completed');
  const numbers = out.b_fetch_numbers as number[];
  assert.deepEqual(numbers.filter((n) => n > 5), Array.from({ length: 15 }, (_, i) => i + 6), 'every message not expunged, by its old number');
  assert.ok(numbers[0] === 1, 'the message being sent when A expunged it');
  assert.equal(out.b_noop.at(-1), 'TAG OK NOOP completed');
  assert.equal(out.b_noop.filter((l: string) => l.endsWith(' EXPUNGE')).length, 5);
  assert.deepEqual(out.b_replayed, Array.from({ length: 15 }, (_, i) => i + 6));
  assert.deepEqual(out.b_after, Array.from({ length: 15 }, (_, i) => i + 6));
});

test('QRESYNC: VANISHED instead of EXPUNGE on B (NOOP and IDLE); after a disconnect, SELECT (QRESYNC (uidvalidity modseq)) gives VANISHED (EARLIER) and the changed flags with MODSEQ', async () => {
  const user = await newUser('qresync');
  const out = py(
    String.raw`
for i in range(8):
    send(U, msg('m%d' % i))
a = S('A')
b = S('B', 143)
a.cmd('SELECT INBOX')
out['b_enable'] = b.cmd('ENABLE QRESYNC')
sel = b.cmd('SELECT INBOX')
out['b_select'] = sel
uidvalidity = int(re.search(r'UIDVALIDITY (\d+)', ' '.join(sel)).group(1))
modseq = int(re.search(r'HIGHESTMODSEQ (\d+)', ' '.join(sel)).group(1))
a.cmd('STORE 2 +FLAGS.SILENT (\\Deleted)'); a.cmd('EXPUNGE')
out['b_noop'] = b.cmd('NOOP')
b.idle()
a.cmd('STORE 3,5 +FLAGS.SILENT (\\Deleted)'); a.cmd('EXPUNGE')
out['b_idle'] = lines_of(b.wait(2, lambda l: l.startswith('* VANISHED') and '6' in l))
out['b_done'] = b.done()
out['b_uids'] = b.uids()
out['b_logout'] = b.cmd('LOGOUT')
# While B is away: A flags one message, expunges another, and a new one arrives.
out['a_flag'] = a.cmd('STORE 1 +FLAGS (\\Flagged $Seen2)')
a.cmd('STORE 2 +FLAGS.SILENT (\\Deleted)'); a.cmd('EXPUNGE')
send(U, msg('later'))
b = S('B', 143)
b.cmd('ENABLE QRESYNC')
out['resync'] = b.cmd('SELECT INBOX (QRESYNC (%d %d))' % (uidvalidity, modseq))
out['b_uids_after'] = b.uids()
out['unselect'] = b.cmd('UNSELECT')
out['resync_known'] = b.cmd('SELECT INBOX (QRESYNC (%d %d 1:6))' % (uidvalidity, modseq))
out['resync_wrong_uv'] = b.cmd('SELECT INBOX (QRESYNC (%d %d))' % (uidvalidity + 1, modseq))
out['changedsince'] = b.cmd('UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)' % modseq)
out['no_enable'] = S('C').cmd('SELECT INBOX (QRESYNC (%d %d))' % (uidvalidity, modseq))
`,
    { U: user },
  );
  assert.deepEqual(out.b_enable, ['* ENABLED QRESYNC', 'TAG OK ENABLE completed']);
  assert.deepEqual(out.b_noop, ['* VANISHED 2', 'TAG OK NOOP completed'], 'rfc7162 3.2.10: VANISHED, not EXPUNGE');
  assert.deepEqual(replay([1, 3, 4, 5, 6, 7, 8], out.b_idle), [1, 3, 5, 7, 8], JSON.stringify(out.b_idle));
  assert.ok(out.b_idle.every((l: string) => /^\* VANISHED \d/.test(l) || / FETCH \(UID \d+ FLAGS \(\\Deleted\) MODSEQ \(\d+\)\)$/.test(l)), JSON.stringify(out.b_idle));
  assert.deepEqual(out.b_uids, [1, 3, 5, 7, 8]);
  assert.match(out.a_flag[0], /^\* 1 FETCH \(FLAGS \(\\Flagged \$Seen2\)\)$/);
  const resync = out.resync as string[];
  assert.equal(resync.at(-1), 'TAG OK [READ-WRITE] SELECT completed');
  assert.ok(resync.includes('* 5 EXISTS'), JSON.stringify(resync));
  assert.ok(resync.includes('* VANISHED (EARLIER) 2:4,6'), `UIDs 2, 4, 6 (B saw them go) and 3 (while B was away): ${JSON.stringify(resync)}`);
  const fetches = resync.filter((l) => /^\* \d+ FETCH /.test(l));
  assert.deepEqual(fetches.map((l) => fetchUid(l)), [1, 9], 'the flag change and the new message');
  assert.match(fetches[0]!, /^\* 1 FETCH \(UID 1 FLAGS \(\\Flagged \$Seen2\) MODSEQ \(\d+\)\)$/);
  assert.deepEqual(out.b_uids_after, [1, 5, 7, 8, 9]);
  assert.deepEqual(out.unselect, ['TAG OK UNSELECT completed']);
  assert.ok((out.resync_known as string[]).includes('* VANISHED (EARLIER) 2:4,6'), JSON.stringify(out.resync_known));
  assert.deepEqual((out.resync_known as string[]).filter((l) => /^\* \d+ FETCH /.test(l)).map((l) => fetchUid(l)), [1], 'only known UIDs');
  assert.ok(!(out.resync_wrong_uv as string[]).some((l) => l.startsWith('* VANISHED') || /^\* \d+ FETCH /.test(l)), 'another UIDVALIDITY: no resync data');
  assert.equal(out.resync_wrong_uv.at(-1), 'TAG OK [READ-WRITE] SELECT completed');
  assert.deepEqual(out.changedsince.slice(0, 1), ['* VANISHED (EARLIER) 2:4,6']);
  assert.deepEqual((out.changedsince as string[]).filter((l) => /^\* \d+ FETCH /.test(l)).map((l) => fetchUid(l)), [1, 9]);
  assert.match(out.no_enable.at(-1), /^TAG BAD /, 'QRESYNC parameter without ENABLE QRESYNC');
});

test('a mailbox deleted or renamed by A while B has it selected; INBOX renamed by A while B has it selected', async () => {
  const user = await newUser('gone');
  const out = py(
    String.raw`
for i in range(3):
    send(U, msg('m%d' % i))
a = S('A')
b = S('B', 143)
c = S('C')
a.cmd('CREATE Doomed')
out['a_append'] = a.cmd(append('Doomed', 'Subject: x\r\n\r\nx'))
a.cmd('CREATE Moving')
out['b_select'] = b.cmd('SELECT Doomed')
out['c_select'] = c.cmd('SELECT Moving')[-1]
c.idle()
out['a_delete'] = a.cmd('DELETE Doomed')
out['b_next'] = b.cmd('FETCH 1 (FLAGS)')
out['b_after'] = lines_of(b.wait(1))
out['a_rename'] = a.cmd('RENAME Moving Moved')
t0 = time.time()
out['c_idle'] = lines_of(c.wait(0.5))
out['c_done'] = c.done()
out['c_after'] = lines_of(c.wait(0.2))
out['c_noop'] = c.cmd('NOOP')
out['c_after_noop'] = lines_of(c.wait(0.2))
a.cmd(append('Moved', 'Subject: y\r\n\r\ny'))
out['c_append'] = c.cmd('NOOP')
g = S('G')
a.cmd('CREATE Doomed2')
g.cmd('SELECT Doomed2')
g.idle()
a.cmd('DELETE Doomed2')
out['g_idle'] = lines_of(g.wait(1))
out['g_done'] = g.done()
out['g_after'] = lines_of(g.wait(1))
d = S('D')
e = S('E')
d.cmd('SELECT INBOX')
out['e_rename'] = e.cmd('RENAME INBOX Saved')
out['d_noop'] = d.cmd('NOOP')
out['d_status'] = d.cmd('STATUS Saved (MESSAGES)')
out['d_fetch'] = d.cmd('FETCH 1:* (UID)')
`,
    { U: user },
  );
  assert.match(out.a_append[0], /^TAG OK \[APPENDUID \d+ 1\]/);
  assert.ok(out.b_select.includes('* 1 EXISTS'), JSON.stringify(out.b_select));
  assert.deepEqual(out.a_delete, ['TAG OK DELETE completed']);
  // What happens (documented): B's next command still completes (the message is gone, so the
  // FETCH answers nothing), then the server sends BYE and closes: the client must reconnect.
  const b = [...out.b_next, ...out.b_after] as string[];
  const byeAt = b.findIndex((l) => l.startsWith('* BYE'));
  assert.ok(byeAt >= 0, `B is told with a BYE: ${JSON.stringify(b)}`);
  assert.ok(b.at(-1) === '<EOF>', `and the connection is closed: ${JSON.stringify(b)}`);
  assert.ok(b.slice(0, byeAt).some((l) => /^TAG (OK|NO)/.test(l)), `B's command got its tagged response: ${JSON.stringify(b)}`);
  console.log(`# mailbox deleted under B: B's next command -> ${JSON.stringify(b)}`);
  assert.deepEqual(out.a_rename, ['TAG OK RENAME completed']);
  console.log(`# mailbox renamed under C in IDLE: during IDLE ${JSON.stringify(out.c_idle)}; at DONE ${JSON.stringify([...out.c_done, ...out.c_after])}; then ${JSON.stringify([...out.c_noop, ...out.c_after_noop])}`);
  // A rename keeps the mailbox, its UIDVALIDITY and UIDs: C stays on it under the new name.
  assert.deepEqual(out.c_idle, [], 'nothing to say during IDLE');
  assert.deepEqual(out.c_done, ['TAG OK IDLE terminated']);
  assert.deepEqual(out.c_after, []);
  assert.deepEqual(out.c_noop, ['TAG OK NOOP completed']);
  assert.deepEqual(out.c_append, ['* 1 EXISTS', 'TAG OK NOOP completed'], 'C follows the mailbox under its new name');
  // Deleted while the client is in IDLE: the session says nothing until the client ends IDLE
  // (clients do so every 29 minutes at most, rfc2177), then BYE.
  console.log(`# mailbox deleted under G in IDLE: during IDLE ${JSON.stringify(out.g_idle)}; at DONE ${JSON.stringify([...out.g_done, ...out.g_after])}`);
  const g = [...out.g_idle, ...out.g_done, ...out.g_after] as string[];
  assert.ok(g.some((l) => l.startsWith('* BYE')) && g.at(-1) === '<EOF>', `G is told with a BYE, at the latest after DONE: ${JSON.stringify(g)}`);
  assert.deepEqual(out.e_rename, ['TAG OK RENAME completed']);
  assert.deepEqual(out.d_noop, ['* 3 EXPUNGE', '* 2 EXPUNGE', '* 1 EXPUNGE', 'TAG OK NOOP completed'], 'INBOX renamed: its messages left it (rfc3501 6.3.5)');
  assert.deepEqual(out.d_status, ['* STATUS Saved (MESSAGES 3)', 'TAG OK STATUS completed']);
  assert.match(out.d_fetch[0], /^TAG (BAD|NO) /, 'INBOX is empty now');
});
