import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command, FetchAttribute, SearchKey, SequenceSet } from '../../src/imap/ast.js';
import { CommandFramer, type Segment } from '../../src/imap/framer.js';
import { MAX_SEARCH_DEPTH, isSupportedCharset, parseCommand } from '../../src/imap/parser.js';

/** Frame `input` (CRLF added, literals buffered) and parse the one command it holds. */
function segmentsOf(input: string | Buffer): Segment[] {
  const f = new CommandFramer({ maxLineLength: 1 << 20, maxCommandBytes: 1 << 24, maxLiteralInMemory: 1 << 22 });
  f.push(Buffer.concat([typeof input === 'string' ? Buffer.from(input, 'utf8') : input, Buffer.from('\r\n')]));
  for (;;) {
    const e = f.next();
    assert.ok(e !== null, 'the framer wants more input');
    if (e.type === 'literal') f.acceptLiteral('buffer');
    else if (e.type === 'command') return e.segments;
    else assert.fail(`framer event ${JSON.stringify(e)}`);
  }
}

function parse(input: string | Buffer, utf8 = false) {
  return parseCommand(segmentsOf(input), { utf8 });
}

function ok(input: string | Buffer, utf8 = false): Command {
  const r = parse(input, utf8);
  assert.ok(r.ok, `${JSON.stringify(input.toString())}: ${r.ok ? '' : r.error}`);
  return r.command;
}

/** Fails to parse; returns the error (and checks the tag). */
function bad(input: string | Buffer, tag: string | null = 'a1', utf8 = false): string {
  const r = parse(input, utf8);
  assert.ok(!r.ok, `${JSON.stringify(input.toString())} should fail, got ${JSON.stringify(r.ok ? r.command : null)}`);
  assert.equal(r.tag, tag, `tag of ${JSON.stringify(input.toString())}`);
  assert.ok(r.error.length > 0 && r.error.length < 200 && !/[\r\n]/.test(r.error));
  return r.error;
}

const seqs = (...ranges: Array<[number | '*', number | '*'] | number | '*'>): SequenceSet => ({
  kind: 'set',
  ranges: ranges.map((r) => (Array.isArray(r) ? { from: r[0], to: r[1] } : { from: r, to: r })),
});

function fetchAttrs(input: string): FetchAttribute[] {
  const c = ok(`a1 FETCH 1 ${input}`);
  assert.equal(c.name, 'FETCH');
  return c.name === 'FETCH' ? c.attributes : [];
}

function search(keys: string, charset = ''): SearchKey[] {
  const c = ok(`a1 SEARCH ${charset}${keys}`);
  assert.ok(c.name === 'SEARCH' && c.program.criteria.kind === 'and');
  return c.name === 'SEARCH' && c.program.criteria.kind === 'and' ? c.program.criteria.keys : [];
}

describe('parseCommand: tag and command name', () => {
  it('accepts any ASTRING-CHAR except "+" in a tag', () => {
    for (const tag of ['a1', 'A001', '1', 'x.y-z', 'a]b', '~!#$&\'', 'tag:with/odd=chars']) {
      const r = parse(`${tag} NOOP`);
      assert.ok(r.ok, tag);
      assert.equal(r.tag, tag);
    }
  });

  it('refuses other tags, without echoing them', () => {
    for (const line of ['+ NOOP', 'a+b NOOP', '* NOOP', 'a%b NOOP', 'a"b NOOP', 'a\\b NOOP', 'a(b NOOP', 'a)b NOOP', 'a{b NOOP', '\x01a NOOP', 'é NOOP', ' NOOP', '']) {
      assert.equal(bad(line, null), 'Invalid tag', JSON.stringify(line));
    }
  });

  it('a tag needs a command after a single space', () => {
    assert.equal(bad('a1'), 'Missing command');
    assert.equal(bad('a1 '), 'Missing command');
    assert.equal(bad('a1  NOOP'), 'Missing command');
  });

  it('command names are case-insensitive; unknown ones are named', () => {
    assert.deepEqual(ok('a1 noop'), { name: 'NOOP' });
    assert.deepEqual(ok('a1 NoOp'), { name: 'NOOP' });
    assert.match(bad('a1 FOO'), /^Unknown command FOO$/);
    assert.match(bad('a1 constructor'), /^Unknown command/);
    assert.match(bad('a1 __proto__'), /^Unknown command/);
    assert.match(bad('a1 UID FOO 1'), /^Unknown command UID FOO$/);
    assert.match(bad('a1 UID'), /Missing command after UID/);
    assert.match(bad('a1 UID LOGIN a b'), /Unknown command UID LOGIN/);
    assert.equal(bad('a1 NOOP(x)'), 'Invalid command name');
  });

  it('commands without arguments refuse arguments', () => {
    for (const name of ['CAPABILITY', 'NOOP', 'LOGOUT', 'STARTTLS', 'NAMESPACE', 'IDLE', 'CHECK', 'CLOSE', 'UNSELECT', 'EXPUNGE'] as const) {
      assert.deepEqual(ok(`a1 ${name}`), { name });
      assert.equal(bad(`a1 ${name} x`), `${name}: Unexpected extra arguments`);
    }
    assert.equal(bad('a1 NOOP '), 'NOOP: Unexpected extra arguments');
  });
});

describe('parseCommand: strings', () => {
  it('LOGIN with atoms, quoted strings and literals (rfc3501 6.2.3)', () => {
    assert.deepEqual(ok('a001 LOGIN SMITH SESAME'), { name: 'LOGIN', username: 'SMITH', password: 'SESAME' });
    assert.deepEqual(ok('a1 LOGIN "fred foobar" "pass\\"word\\\\"'), { name: 'LOGIN', username: 'fred foobar', password: 'pass"word\\' });
    assert.deepEqual(ok('a1 LOGIN {5}\r\nalice {3}\r\np w'), { name: 'LOGIN', username: 'alice', password: 'p w' });
    assert.deepEqual(ok('a1 LOGIN "" {0}\r\n'), { name: 'LOGIN', username: '', password: '' });
    assert.deepEqual(ok('a1 LOGIN a]b x'), { name: 'LOGIN', username: 'a]b', password: 'x' });
    assert.deepEqual(ok('a1 LOGIN "jürgen" "pässwörd"'), { name: 'LOGIN', username: 'jürgen', password: 'pässwörd' });
    assert.deepEqual(ok('a1 LOGIN {7+}\r\njürgen pw'), { name: 'LOGIN', username: 'jürgen', password: 'pw' });
  });

  it('refuses broken strings', () => {
    assert.match(bad('a1 LOGIN "abc'), /Unterminated quoted string/);
    assert.match(bad('a1 LOGIN "a\\bc" x'), /Invalid escape/);
    assert.match(bad('a1 LOGIN a%b x'), /LOGIN: /);
    assert.match(bad('a1 LOGIN {3}\r\na\0b x'), /NUL in literal/);
    assert.match(bad('a1 LOGIN ~{3}\r\nabc x'), /literal8 not allowed/);
    assert.match(bad('a1 LOGIN alice'), /Missing password/);
    assert.match(bad('a1 LOGIN'), /Missing user name/);
    assert.match(bad('a1 LOGIN alice pw extra'), /Unexpected extra arguments/);
    assert.match(bad('a1 LOGIN (alice) pw'), /Expected a user name/);
  });

  it('a streamed literal where a string is expected is an error', () => {
    const r = parseCommand(
      [
        { kind: 'text', bytes: Buffer.from('a1 LOGIN ') },
        { kind: 'streamed', id: 1, size: 5, binary: false },
        { kind: 'text', bytes: Buffer.from(' pw') },
      ],
      { utf8: false },
    );
    assert.deepEqual(r, { ok: false, tag: 'a1', error: 'LOGIN: Literal too large here' });
  });

  it('takes segments in any shape (adjacent texts, a literal first or last)', () => {
    const r = parseCommand([{ kind: 'text', bytes: Buffer.from('a1 LOG') }, { kind: 'text', bytes: Buffer.from('IN ') }, { kind: 'literal', bytes: Buffer.from('u'), binary: false }, { kind: 'literal', bytes: Buffer.from('p'), binary: false }], { utf8: false });
    assert.deepEqual(r, { ok: false, tag: 'a1', error: 'LOGIN: Missing password' });
    assert.deepEqual(parseCommand([], { utf8: false }), { ok: false, tag: null, error: 'Invalid tag' });
    assert.deepEqual(parseCommand([{ kind: 'literal', bytes: Buffer.from('x'), binary: false }], { utf8: false }), { ok: false, tag: null, error: 'Invalid tag' });
  });
});

describe('parseCommand: AUTHENTICATE, ENABLE, ID, COMPRESS', () => {
  it('AUTHENTICATE with and without an initial response (rfc4959)', () => {
    assert.deepEqual(ok('a1 AUTHENTICATE plain'), { name: 'AUTHENTICATE', mechanism: 'PLAIN', initialResponse: null });
    assert.deepEqual(ok('a1 AUTHENTICATE PLAIN AGFsaWNlAHB3'), { name: 'AUTHENTICATE', mechanism: 'PLAIN', initialResponse: 'AGFsaWNlAHB3' });
    assert.deepEqual(ok('a1 AUTHENTICATE PLAIN AGFsaWNlAHB3eA=='), { name: 'AUTHENTICATE', mechanism: 'PLAIN', initialResponse: 'AGFsaWNlAHB3eA==' });
    assert.deepEqual(ok('a1 AUTHENTICATE EXTERNAL ='), { name: 'AUTHENTICATE', mechanism: 'EXTERNAL', initialResponse: '' });
    assert.deepEqual(ok('a1 AUTHENTICATE SCRAM-SHA-256'), { name: 'AUTHENTICATE', mechanism: 'SCRAM-SHA-256', initialResponse: null });
    for (const ir of ['AGFsaWNl!', 'abc', 'ab=c', '====', '']) assert.match(bad(`a1 AUTHENTICATE PLAIN ${ir}`), /Invalid initial response/, ir);
    assert.match(bad('a1 AUTHENTICATE'), /Missing mechanism/);
  });

  it('ENABLE takes one or more capabilities', () => {
    assert.deepEqual(ok('a1 ENABLE CONDSTORE qresync UTF8=ACCEPT'), { name: 'ENABLE', capabilities: ['CONDSTORE', 'QRESYNC', 'UTF8=ACCEPT'] });
    assert.match(bad('a1 ENABLE'), /ENABLE: Missing capability/);
  });

  it('ID with NIL or field/value pairs (rfc2971)', () => {
    assert.deepEqual(ok('a1 ID NIL'), { name: 'ID', params: null });
    assert.deepEqual(ok('a1 ID nil'), { name: 'ID', params: null });
    assert.deepEqual(ok('a1 ID ("name" "sodr" "version" "19.34" "vendor" NIL)'), {
      name: 'ID',
      params: [
        ['name', 'sodr'],
        ['version', '19.34'],
        ['vendor', null],
      ],
    });
    assert.deepEqual(ok('a1 ID ("name" {4}\r\nx\r\ny)'), { name: 'ID', params: [['name', 'x\r\ny']] });
    assert.deepEqual(ok('a1 ID ()'), { name: 'ID', params: [] });
    assert.match(bad('a1 ID ("name")'), /ID: /);
    assert.match(bad('a1 ID (name "x")'), /ID: Expected an ID field name/);
    assert.match(bad('a1 ID'), /ID: /);
  });

  it('COMPRESS', () => {
    assert.deepEqual(ok('a1 COMPRESS deflate'), { name: 'COMPRESS', mechanism: 'DEFLATE' });
    assert.match(bad('a1 COMPRESS'), /COMPRESS: /);
  });
});

describe('parseCommand: mailbox names', () => {
  it('INBOX is case-insensitive; other names keep their case', () => {
    assert.deepEqual(ok('a1 SELECT inbox'), { name: 'SELECT', mailbox: { name: 'INBOX', raw: 'inbox' }, params: { condstore: false, qresync: null } });
    assert.deepEqual(ok('a1 DELETE "InBoX"'), { name: 'DELETE', mailbox: { name: 'INBOX', raw: 'InBoX' } });
    assert.deepEqual(ok('a1 DELETE Inbox/Sub'), { name: 'DELETE', mailbox: { name: 'Inbox/Sub', raw: 'Inbox/Sub' } });
    assert.deepEqual(ok('a1 SUBSCRIBE Archive'), { name: 'SUBSCRIBE', mailbox: { name: 'Archive', raw: 'Archive' } });
    assert.deepEqual(ok('a1 UNSUBSCRIBE "a b"'), { name: 'UNSUBSCRIBE', mailbox: { name: 'a b', raw: 'a b' } });
  });

  it('names are decoded from modified UTF-7', () => {
    assert.deepEqual(ok('a1 DELETE Entw&APw-rfe'), { name: 'DELETE', mailbox: { name: 'Entwürfe', raw: 'Entw&APw-rfe' } });
    assert.deepEqual(ok('a1 DELETE R&-D'), { name: 'DELETE', mailbox: { name: 'R&D', raw: 'R&-D' } });
    assert.match(bad('a1 DELETE R&D'), /DELETE: Mailbox name is not valid modified UTF-7/);
    assert.match(bad('a1 DELETE "Entwürfe"'), /not valid modified UTF-7/);
    assert.match(bad('a1 DELETE &AGE-'), /not valid modified UTF-7/);
  });

  it('with UTF8=ACCEPT, names are UTF-8 and "&" is an ordinary character', () => {
    assert.deepEqual(ok('a1 DELETE "Entwürfe"', true), { name: 'DELETE', mailbox: { name: 'Entwürfe', raw: 'Entwürfe' } });
    assert.deepEqual(ok('a1 DELETE R&D', true), { name: 'DELETE', mailbox: { name: 'R&D', raw: 'R&D' } });
    assert.deepEqual(ok('a1 DELETE Entw&APw-rfe', true), { name: 'DELETE', mailbox: { name: 'Entw&APw-rfe', raw: 'Entw&APw-rfe' } });
    assert.match(bad(Buffer.from('a1 DELETE "Entw\xfcrfe"', 'latin1'), 'a1', true), /DELETE: Mailbox name is not valid UTF-8/);
    assert.match(bad('a1 DELETE {3}\r\na\tb', 'a1', true), /control character/);
  });

  it('CREATE, with special-use attributes (rfc6154 5.2)', () => {
    assert.deepEqual(ok('a1 CREATE owatagusiam/'), { name: 'CREATE', mailbox: { name: 'owatagusiam/', raw: 'owatagusiam/' }, specialUse: [] });
    assert.deepEqual(ok('a1 CREATE MySpecial (USE (\\drafts \\Sent \\X-Custom))'), {
      name: 'CREATE',
      mailbox: { name: 'MySpecial', raw: 'MySpecial' },
      specialUse: ['\\Drafts', '\\Sent', '\\X-Custom'],
    });
    assert.deepEqual(ok('a1 CREATE x (USE ())'), { name: 'CREATE', mailbox: { name: 'x', raw: 'x' }, specialUse: [] });
    assert.match(bad('a1 CREATE x (FOO)'), /Unknown CREATE parameter FOO/);
    assert.match(bad('a1 CREATE x (USE (Drafts))'), /Invalid special-use attribute/);
  });

  it('RENAME', () => {
    assert.deepEqual(ok('a1 RENAME blurdybloop sarasoop'), { name: 'RENAME', from: { name: 'blurdybloop', raw: 'blurdybloop' }, to: { name: 'sarasoop', raw: 'sarasoop' } });
    assert.match(bad('a1 RENAME a'), /RENAME: Missing new mailbox name/);
  });

  it('STATUS (rfc9051 6.3.11, rfc8438, rfc7162, rfc7889)', () => {
    assert.deepEqual(ok('A042 STATUS blurdybloop (UIDNEXT MESSAGES)'), { name: 'STATUS', mailbox: { name: 'blurdybloop', raw: 'blurdybloop' }, items: ['UIDNEXT', 'MESSAGES'] });
    assert.deepEqual(ok('a1 STATUS INBOX (messages recent uidnext uidvalidity unseen deleted size highestmodseq appendlimit)'), {
      name: 'STATUS',
      mailbox: { name: 'INBOX', raw: 'INBOX' },
      items: ['MESSAGES', 'RECENT', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'DELETED', 'SIZE', 'HIGHESTMODSEQ', 'APPENDLIMIT'],
    });
    assert.match(bad('a1 STATUS INBOX ()'), /Empty list of status items/);
    assert.match(bad('a1 STATUS INBOX (FOO)'), /Unknown status item FOO/);
    assert.match(bad('a1 STATUS INBOX MESSAGES'), /Expected a list of status items/);
  });

  it('GETQUOTA, GETQUOTAROOT, SETQUOTA (rfc9208)', () => {
    assert.deepEqual(ok('a1 GETQUOTA ""'), { name: 'GETQUOTA', root: '' });
    assert.deepEqual(ok('a1 GETQUOTAROOT inbox'), { name: 'GETQUOTAROOT', mailbox: { name: 'INBOX', raw: 'inbox' } });
    assert.deepEqual(ok('a1 SETQUOTA "" (STORAGE 512 message 1000)'), { name: 'SETQUOTA', root: '', limits: [['STORAGE', 512], ['MESSAGE', 1000]] });
    assert.deepEqual(ok('a1 SETQUOTA "" ()'), { name: 'SETQUOTA', root: '', limits: [] });
    assert.match(bad('a1 SETQUOTA "" (STORAGE)'), /SETQUOTA: /);
  });
});

describe('parseCommand: SELECT / EXAMINE parameters', () => {
  it('CONDSTORE (rfc7162 3.1.8)', () => {
    assert.deepEqual(ok('a1 EXAMINE INBOX (CONDSTORE)'), { name: 'EXAMINE', mailbox: { name: 'INBOX', raw: 'INBOX' }, params: { condstore: true, qresync: null } });
  });

  it('QRESYNC in its forms (rfc7162 3.2.5)', () => {
    const q = (s: string) => {
      const c = ok(`A02 SELECT INBOX (QRESYNC ${s})`);
      return c.name === 'SELECT' ? c.params.qresync : null;
    };
    assert.deepEqual(q('(67890007 20050715194045000)'), { uidValidity: 67890007, modSeq: Number.MAX_SAFE_INTEGER, knownUids: null, seqMatch: null });
    assert.deepEqual(q('(67890007 20050715194045000 41,43:211,214:541)'), {
      uidValidity: 67890007,
      modSeq: Number.MAX_SAFE_INTEGER,
      knownUids: seqs(41, [43, 211], [214, 541]),
      seqMatch: null,
    });
    assert.deepEqual(q('(67890007 90060115194045000 41:211,214:541 (1:15,20:30 41:55,60:70))'), {
      uidValidity: 67890007,
      modSeq: Number.MAX_SAFE_INTEGER, // above 2^53-1: clamped
      knownUids: seqs([41, 211], [214, 541]),
      seqMatch: { seqs: seqs([1, 15], [20, 30]), uids: seqs([41, 55], [60, 70]) },
    });
    assert.deepEqual(q('(67890007 715194045000)')?.modSeq, 715194045000);
    assert.deepEqual(q('(1 2 (3 4))'), { uidValidity: 1, modSeq: 2, knownUids: null, seqMatch: { seqs: seqs(3), uids: seqs(4) } });
    assert.match(bad('a1 SELECT INBOX (QRESYNC (1 2 1:*))'), /"\*" not allowed here/);
    assert.match(bad('a1 SELECT INBOX (QRESYNC (0 2))'), /UIDVALIDITY must not be 0/);
    assert.match(bad('a1 SELECT INBOX (QRESYNC (1 0))'), /Mod-sequence must not be 0/);
    assert.match(bad('a1 SELECT INBOX (QRESYNC (1 99999999999999999999))'), /Mod-sequence out of range/);
    assert.match(bad('a1 SELECT INBOX (QRESYNC 1 2)'), /Invalid QRESYNC parameter/);
    assert.match(bad('a1 SELECT INBOX (FOO)'), /Unknown SELECT parameter FOO/);
  });

  it('both parameters together, and an empty list', () => {
    const c = ok('a1 SELECT INBOX (CONDSTORE QRESYNC (1 2))');
    assert.ok(c.name === 'SELECT' && c.params.condstore && c.params.qresync?.uidValidity === 1);
    assert.deepEqual(ok('a1 SELECT INBOX ()'), { name: 'SELECT', mailbox: { name: 'INBOX', raw: 'INBOX' }, params: { condstore: false, qresync: null } });
  });
});

describe('parseCommand: LIST and LSUB', () => {
  const basic = (reference: string, pattern: string) => ({
    name: 'LIST',
    list: { selection: [], reference, patterns: [pattern], returnOptions: { subscribed: false, children: false, specialUse: false, status: null }, basic: true },
  });

  it('the basic form (rfc3501 6.3.8 examples)', () => {
    assert.deepEqual(ok('A101 LIST "" ""'), basic('', ''));
    assert.deepEqual(ok('A102 LIST #news.comp.mail.misc ""'), basic('#news.comp.mail.misc', ''));
    assert.deepEqual(ok('A103 LIST /usr/staff/jones ""'), basic('/usr/staff/jones', ''));
    assert.deepEqual(ok('A202 LIST ~/Mail/ %'), basic('~/Mail/', '%'));
    assert.deepEqual(ok('a1 LIST "" *'), basic('', '*'));
    assert.deepEqual(ok('a1 LIST "" INBOX.%]'), basic('', 'INBOX.%]'));
    assert.deepEqual(ok('a1 LIST "" "Entw&APw-*"'), basic('', 'Entwü*'));
    assert.deepEqual(ok('a1 LIST "" {3}\r\na*b'), basic('', 'a*b'));
    assert.deepEqual(ok('a1 LIST "" inbox'), basic('', 'inbox'), 'patterns are not case-folded');
  });

  it('the extended form (rfc5258, rfc5819, rfc6154)', () => {
    const c = ok('A01 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "Drafts" Sent/%) RETURN (CHILDREN STATUS (MESSAGES UNSEEN) SPECIAL-USE subscribed)');
    assert.deepEqual(c, {
      name: 'LIST',
      list: {
        selection: ['SUBSCRIBED', 'RECURSIVEMATCH'],
        reference: '',
        patterns: ['INBOX', 'Drafts', 'Sent/%'],
        returnOptions: { subscribed: true, children: true, specialUse: true, status: ['MESSAGES', 'UNSEEN'] },
        basic: false,
      },
    });
    const plain = (s: string) => {
      const r = ok(s);
      return r.name === 'LIST' ? r.list : null;
    };
    assert.equal(plain('a1 LIST () "" %')?.basic, false);
    assert.deepEqual(plain('a1 LIST (special-use) "" *')?.selection, ['SPECIAL-USE']);
    assert.deepEqual(plain('a1 LIST (REMOTE) "" *')?.selection, ['REMOTE']);
    assert.deepEqual(plain('a1 LIST "" % RETURN ()')?.basic, false);
    assert.deepEqual(plain('a1 LIST "" % RETURN (STATUS (SIZE))')?.returnOptions.status, ['SIZE']);
    assert.deepEqual(plain('a1 LIST "" (%)')?.patterns, ['%']);
  });

  it('refuses unknown options and RECURSIVEMATCH alone', () => {
    assert.match(bad('a1 LIST (FOO) "" %'), /Unknown LIST selection option FOO/);
    assert.match(bad('a1 LIST (RECURSIVEMATCH) "" %'), /RECURSIVEMATCH needs/);
    assert.match(bad('a1 LIST "" % RETURN (FOO)'), /Unknown LIST return option FOO/);
    assert.match(bad('a1 LIST "" % FOO (CHILDREN)'), /Expected RETURN/);
    assert.match(bad('a1 LIST "" ()'), /Empty list of mailbox patterns/);
    assert.match(bad('a1 LIST ""'), /Missing mailbox pattern/);
    assert.match(bad('a1 LIST "" "&"'), /Pattern is not valid modified UTF-7/);
  });

  it('LSUB', () => {
    assert.deepEqual(ok('A002 LSUB "#news." "comp.mail.*"'), { name: 'LSUB', reference: '#news.', pattern: 'comp.mail.*' });
    assert.deepEqual(ok('a1 LSUB "" %'), { name: 'LSUB', reference: '', pattern: '%' });
  });
});

describe('parseCommand: APPEND', () => {
  it('rfc3501 6.3.11 example, with flags and date-time', () => {
    const msg = 'Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar <foobar@Blurdybloop.COM>\r\n\r\nHello Joe\r\n';
    const c = ok(`A003 APPEND saved-messages (\\Seen $Forwarded) "17-Jul-1996 02:44:25 -0700" {${msg.length}}\r\n${msg}`);
    assert.deepEqual(c, {
      name: 'APPEND',
      mailbox: { name: 'saved-messages', raw: 'saved-messages' },
      messages: [{ flags: ['\\Seen', '$Forwarded'], internalDate: new Date(Date.UTC(1996, 6, 17, 9, 44, 25)), data: Buffer.from(msg), binary: false }],
    });
  });

  it('optional parts, literal8, LITERAL+, the date with a leading space', () => {
    assert.deepEqual(ok('a1 APPEND INBOX {3}\r\nabc'), { name: 'APPEND', mailbox: { name: 'INBOX', raw: 'INBOX' }, messages: [{ flags: [], internalDate: null, data: Buffer.from('abc'), binary: false }] });
    assert.deepEqual(ok('a1 APPEND INBOX () {3+}\r\nabc'), { name: 'APPEND', mailbox: { name: 'INBOX', raw: 'INBOX' }, messages: [{ flags: [], internalDate: null, data: Buffer.from('abc'), binary: false }] });
    assert.deepEqual(ok('a1 APPEND INBOX ~{3}\r\na\0c'), { name: 'APPEND', mailbox: { name: 'INBOX', raw: 'INBOX' }, messages: [{ flags: [], internalDate: null, data: Buffer.from('a\0c'), binary: true }] });
    const c = ok('a1 APPEND INBOX " 1-Jan-2000 00:00:00 +0130" {1}\r\nx');
    assert.deepEqual(c.name === 'APPEND' && c.messages[0]!.internalDate, new Date(Date.UTC(1999, 11, 31, 22, 30, 0)));
    assert.deepEqual(ok('a1 APPEND INBOX UTF8 (~{2}\r\nhi)'), { name: 'APPEND', mailbox: { name: 'INBOX', raw: 'INBOX' }, messages: [{ flags: [], internalDate: null, data: Buffer.from('hi'), binary: false }] });
  });

  it('MULTIAPPEND: several messages (rfc3502)', () => {
    const c = ok('A003 APPEND saved-messages (\\Seen) {3}\r\none (\\Draft) "17-Jul-1996 02:44:25 -0700" {3}\r\ntwo {5}\r\nthree');
    assert.ok(c.name === 'APPEND');
    assert.deepEqual(
      c.messages.map((m) => [m.flags, m.internalDate?.toISOString() ?? null, Buffer.isBuffer(m.data) ? m.data.toString() : m.data]),
      [
        [['\\Seen'], null, 'one'],
        [['\\Draft'], '1996-07-17T09:44:25.000Z', 'two'],
        [[], null, 'three'],
      ],
    );
  });

  it('a streamed message is given by its literal id', () => {
    const r = parseCommand(
      [
        { kind: 'text', bytes: Buffer.from('a1 APPEND Drafts (\\Draft) ') },
        { kind: 'streamed', id: 7, size: 1234, binary: false },
        { kind: 'text', bytes: Buffer.from(' ') },
        { kind: 'streamed', id: 8, size: 10, binary: true },
        { kind: 'text', bytes: Buffer.alloc(0) },
      ],
      { utf8: false },
    );
    assert.deepEqual(r, {
      ok: true,
      tag: 'a1',
      command: {
        name: 'APPEND',
        mailbox: { name: 'Drafts', raw: 'Drafts' },
        messages: [
          { flags: ['\\Draft'], internalDate: null, data: { streamed: 7, size: 1234 }, binary: false },
          { flags: [], internalDate: null, data: { streamed: 8, size: 10 }, binary: true },
        ],
      },
    });
  });

  it('refuses a bad date-time, a missing literal, a quoted message', () => {
    for (const d of ['"17-Jul-1996 02:44:25"', '"7-Jul-1996 02:44:25 -0700"', '"31-Feb-1996 02:44:25 -0700"', '"17-Jux-1996 02:44:25 -0700"', '"17-Jul-1996 24:00:00 -0700"', '"17-Jul-1996 02:44:25 -07000"', '"17-Jul-96 02:44:25 -0700"', '"17-Jul-1996 02:44:25 +0799"']) {
      assert.match(bad(`a1 APPEND INBOX ${d} {1}\r\nx`), /APPEND: Invalid date-time/, d);
    }
    assert.match(bad('a1 APPEND INBOX'), /APPEND: Missing message literal/);
    assert.match(bad('a1 APPEND INBOX (\\Seen)'), /APPEND: Missing message literal/);
    assert.match(bad('a1 APPEND INBOX "hello"'), /APPEND: Invalid date-time/);
    assert.match(bad('a1 APPEND INBOX (\\Seen) x'), /APPEND: Expected a message literal/);
    assert.match(bad('a1 APPEND INBOX {1}\r\nx junk'), /APPEND: /);
    assert.match(bad('a1 APPEND INBOX (\\) {1}\r\nx'), /APPEND: Invalid flag/);
    assert.match(bad('a1 APPEND INBOX UTF8 ({2}\r\nhi)'), /UTF8 data must be a literal8/);
  });
});

describe('parseCommand: FETCH', () => {
  it('macros (rfc9051 6.4.5)', () => {
    const c = ok('a1 FETCH 1:* ALL');
    assert.deepEqual(c, {
      name: 'FETCH',
      uid: false,
      set: seqs([1, '*']),
      attributes: [{ kind: 'FLAGS' }, { kind: 'INTERNALDATE' }, { kind: 'RFC822.SIZE' }, { kind: 'ENVELOPE' }],
      modifiers: {},
      macro: 'ALL',
    });
    const fast = ok('a1 FETCH 1 fast');
    assert.ok(fast.name === 'FETCH' && fast.macro === 'FAST' && fast.attributes.length === 3);
    const full = ok('a1 FETCH 1 FULL');
    assert.ok(full.name === 'FETCH' && full.macro === 'FULL' && full.attributes.at(-1)!.kind === 'BODY');
    assert.match(bad('a1 FETCH 1 (ALL)'), /Unknown FETCH attribute ALL/);
  });

  it('simple attributes, with or without parentheses', () => {
    const names = ['ENVELOPE', 'FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'BODYSTRUCTURE', 'UID', 'MODSEQ', 'RFC822', 'RFC822.HEADER', 'RFC822.TEXT', 'SAVEDATE', 'EMAILID', 'THREADID', 'BODY'] as const;
    assert.deepEqual(fetchAttrs(`(${names.join(' ').toLowerCase()})`), names.map((kind) => ({ kind })));
    assert.deepEqual(fetchAttrs('FLAGS'), [{ kind: 'FLAGS' }]);
  });

  it('BODY sections and partials (rfc3501 6.4.5)', () => {
    const body = (section: { part?: number[]; text?: string | null; fields?: string[] }, peek = false, partial: { offset: number; length: number } | null = null) => ({
      kind: 'BODY[]',
      peek,
      section: { part: section.part ?? [], text: section.text ?? null, fields: section.fields ?? [] },
      partial,
    });
    assert.deepEqual(fetchAttrs('(FLAGS BODY[HEADER.FIELDS (DATE FROM)])'), [{ kind: 'FLAGS' }, body({ text: 'HEADER.FIELDS', fields: ['DATE', 'FROM'] })]);
    assert.deepEqual(fetchAttrs('BODY.PEEK[1.2.HEADER.FIELDS.NOT (A B)]<0.1024>'), [body({ part: [1, 2], text: 'HEADER.FIELDS.NOT', fields: ['A', 'B'] }, true, { offset: 0, length: 1024 })]);
    assert.deepEqual(fetchAttrs('body[]'), [body({})]);
    assert.deepEqual(fetchAttrs('BODY[]<5.10>'), [body({}, false, { offset: 5, length: 10 })]);
    assert.deepEqual(fetchAttrs('BODY[TEXT]'), [body({ text: 'TEXT' })]);
    assert.deepEqual(fetchAttrs('BODY[header]'), [body({ text: 'HEADER' })]);
    assert.deepEqual(fetchAttrs('BODY[1]'), [body({ part: [1] })]);
    assert.deepEqual(fetchAttrs('BODY[4.2.2.MIME]'), [body({ part: [4, 2, 2], text: 'MIME' })]);
    assert.deepEqual(fetchAttrs('BODY[3.HEADER]'), [body({ part: [3], text: 'HEADER' })]);
    assert.deepEqual(fetchAttrs('BODY[HEADER.FIELDS ({7}\r\nSubject "x-y")]'), [body({ text: 'HEADER.FIELDS', fields: ['SUBJECT', 'X-Y'] })]);
    for (const s of ['BODY[MIME]', 'BODY[0]', 'BODY[1.0]', 'BODY[FOO]', 'BODY[1.FOO]', 'BODY[HEADER.FIELDS]', 'BODY[HEADER.FIELDS ()]', 'BODY[HEADER.FIELDS (A:B)]', 'BODY[1', 'BODY[]<0.0>', 'BODY[]<0>', 'BODY[]<1.2', 'BODY.PEEK', 'BODY.PEEK[TEXT]<x.1>']) {
      bad(`a1 FETCH 1 (${s})`);
    }
  });

  it('BINARY, BINARY.PEEK and BINARY.SIZE (rfc3516)', () => {
    assert.deepEqual(fetchAttrs('(BINARY[1.2]<0.100> BINARY.PEEK[] BINARY.SIZE[1] BINARY.SIZE[])'), [
      { kind: 'BINARY', peek: false, part: [1, 2], partial: { offset: 0, length: 100 } },
      { kind: 'BINARY', peek: true, part: [], partial: null },
      { kind: 'BINARY.SIZE', part: [1] },
      { kind: 'BINARY.SIZE', part: [] },
    ]);
    bad('a1 FETCH 1 BINARY[TEXT]');
    bad('a1 FETCH 1 BINARY.SIZE[1]<0.1>');
    bad('a1 FETCH 1 BINARY');
  });

  it('modifiers: CHANGEDSINCE and VANISHED (rfc7162)', () => {
    const c = ok('s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)');
    assert.ok(c.name === 'FETCH' && c.uid);
    assert.deepEqual(c.name === 'FETCH' && c.modifiers, { changedSince: 12345, vanished: true });
    const z = ok('a1 FETCH 1 FLAGS (CHANGEDSINCE 0)');
    assert.deepEqual(z.name === 'FETCH' && z.modifiers, { changedSince: 0 });
    assert.match(bad('a1 FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)'), /VANISHED needs UID FETCH/);
    assert.match(bad('a1 UID FETCH 1 FLAGS (VANISHED)'), /VANISHED needs UID FETCH/);
    assert.match(bad('a1 FETCH 1 FLAGS (FOO)'), /Unknown FETCH modifier FOO/);
    assert.match(bad('a1 FETCH 1 FLAGS ()'), /Empty list of FETCH modifiers/);
  });

  it('sequence sets (rfc9051 9, rfc5182)', () => {
    const set = (s: string) => {
      const c = ok(`a1 FETCH ${s} FLAGS`);
      return c.name === 'FETCH' ? c.set : null;
    };
    assert.deepEqual(set('1'), seqs(1));
    assert.deepEqual(set('*'), seqs('*'));
    assert.deepEqual(set('2,4:7,9,12:*'), seqs(2, [4, 7], 9, [12, '*']));
    assert.deepEqual(set('*:4,7:5'), seqs(['*', 4], [7, 5]));
    assert.deepEqual(set('4294967295'), seqs(4294967295));
    assert.deepEqual(set('$'), { kind: 'saved' });
    for (const s of ['0', '1:0', '4294967296', '1,', ',1', '1::2', '1:', 'a', '$,1', '1,$', '$:2', '-1', '1.5']) bad(`a1 FETCH ${s} FLAGS`);
    assert.match(bad('a1 FETCH FLAGS'), /Invalid sequence set/);
    assert.match(bad('a1 FETCH 1'), /Missing FETCH attributes/);
    assert.match(bad('a1 FETCH 1 ()'), /Empty list of FETCH attributes/);
    assert.match(bad('a1 FETCH 1 (FLAGS'), /FETCH: /);
    assert.match(bad('a1 FETCH 1 (FLAGS  UID)'), /FETCH: /);
  });
});

describe('parseCommand: STORE', () => {
  const store = (s: string) => {
    const c = ok(`a1 ${s}`);
    assert.equal(c.name, 'STORE');
    return c;
  };
  it('the three modes, .SILENT, flags with or without parentheses', () => {
    assert.deepEqual(store('STORE 2:4 +FLAGS (\\Deleted)'), { name: 'STORE', uid: false, set: seqs([2, 4]), mode: 'add', silent: false, flags: ['\\Deleted'], unchangedSince: null });
    assert.deepEqual(store('UID STORE 1 -flags.silent \\seen \\DRAFT $Junk'), { name: 'STORE', uid: true, set: seqs(1), mode: 'remove', silent: true, flags: ['\\Seen', '\\Draft', '$Junk'], unchangedSince: null });
    assert.deepEqual(store('STORE 1 FLAGS ()'), { name: 'STORE', uid: false, set: seqs(1), mode: 'set', silent: false, flags: [], unchangedSince: null });
    assert.deepEqual(store('STORE 1 +FLAGS.SILENT (\\Seen \\Answered \\Flagged NonJunk \\Custom)'), {
      name: 'STORE',
      uid: false,
      set: seqs(1),
      mode: 'add',
      silent: true,
      flags: ['\\Seen', '\\Answered', '\\Flagged', 'NonJunk', '\\Custom'],
      unchangedSince: null,
    });
  });

  it('UNCHANGEDSINCE (rfc7162 3.1.3)', () => {
    assert.deepEqual(store('STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)'), {
      name: 'STORE',
      uid: false,
      set: seqs(7, 5, 9),
      mode: 'add',
      silent: true,
      flags: ['\\Deleted'],
      unchangedSince: 320162338,
    });
    assert.equal((store('STORE 1 (UNCHANGEDSINCE 0) FLAGS ()') as { unchangedSince: number }).unchangedSince, 0);
    assert.match(bad('a1 STORE 1 (FOO 1) FLAGS ()'), /Unknown STORE modifier FOO/);
  });

  it('refuses bad items and flags', () => {
    assert.match(bad('a1 STORE 1 +FLAG (\\Seen)'), /Expected FLAGS/);
    assert.match(bad('a1 STORE 1 FLAGS.LOUD (\\Seen)'), /Expected FLAGS/);
    assert.match(bad('a1 STORE 1 *FLAGS (\\Seen)'), /Expected FLAGS/);
    assert.match(bad('a1 STORE 1 +FLAGS'), /Missing flags/);
    assert.match(bad('a1 STORE 1 +FLAGS (\\Seen'), /STORE: /);
    assert.match(bad('a1 STORE 1 +FLAGS (\\*)'), /Invalid flag/);
    assert.match(bad('a1 STORE 1 +FLAGS ("x")'), /Invalid flag/);
    assert.match(bad('a1 STORE 1 +FLAGS (a]b)'), /STORE: /);
  });
});

describe('parseCommand: COPY, MOVE, UID EXPUNGE', () => {
  it('with and without UID', () => {
    assert.deepEqual(ok('A003 COPY 2:4 MEETING'), { name: 'COPY', uid: false, set: seqs([2, 4]), mailbox: { name: 'MEETING', raw: 'MEETING' } });
    assert.deepEqual(ok('a1 uid move 42 "Gel&APY-scht"'), { name: 'MOVE', uid: true, set: seqs(42), mailbox: { name: 'Gelöscht', raw: 'Gel&APY-scht' } });
    assert.deepEqual(ok('a1 UID COPY $ Trash'), { name: 'COPY', uid: true, set: { kind: 'saved' }, mailbox: { name: 'Trash', raw: 'Trash' } });
    assert.deepEqual(ok('A003 UID EXPUNGE 3000:3002'), { name: 'UID EXPUNGE', set: seqs([3000, 3002]) });
    assert.match(bad('a1 UID EXPUNGE'), /UID EXPUNGE: Missing sequence set/);
    assert.match(bad('a1 COPY 1'), /COPY: Missing mailbox name/);
  });
});

describe('parseCommand: SEARCH', () => {
  it('rfc3501 6.4.4 examples', () => {
    assert.deepEqual(search('FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"'), [
      { kind: 'flag', flag: '\\Flagged', set: true },
      { kind: 'date', which: 'internal', op: 'since', date: '1994-02-01' },
      { kind: 'not', key: { kind: 'header', field: 'FROM', value: 'Smith' } },
    ]);
    assert.deepEqual(search('TEXT "string not in mailbox"'), [{ kind: 'text', value: 'string not in mailbox' }]);
    const c = ok('A284 SEARCH CHARSET UTF-8 TEXT {12}\r\nпредложение'.replace('{12}', `{${Buffer.byteLength('предложение')}}`));
    assert.deepEqual(c, { name: 'SEARCH', uid: false, program: { returnOptions: null, charset: 'UTF-8', criteria: { kind: 'and', keys: [{ kind: 'text', value: 'предложение' }] } } });
  });

  it('every key of rfc3501 / rfc9051', () => {
    const flag = (f: string, set: boolean) => ({ kind: 'flag', flag: f, set });
    assert.deepEqual(search('ALL ANSWERED DELETED DRAFT FLAGGED SEEN UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN NEW OLD RECENT'), [
      { kind: 'all' },
      flag('\\Answered', true),
      flag('\\Deleted', true),
      flag('\\Draft', true),
      flag('\\Flagged', true),
      flag('\\Seen', true),
      flag('\\Answered', false),
      flag('\\Deleted', false),
      flag('\\Draft', false),
      flag('\\Flagged', false),
      flag('\\Seen', false),
      { kind: 'new' },
      { kind: 'old' },
      { kind: 'recent' },
    ]);
    assert.deepEqual(search('KEYWORD $Forwarded UNKEYWORD Junk'), [flag('$Forwarded', true), flag('Junk', false)]);
    assert.deepEqual(search('BCC a CC "b c" FROM {1}\r\nd SUBJECT e TO f HEADER Message-ID <x@y> HEADER "X-Spam" ""'), [
      { kind: 'header', field: 'BCC', value: 'a' },
      { kind: 'header', field: 'CC', value: 'b c' },
      { kind: 'header', field: 'FROM', value: 'd' },
      { kind: 'header', field: 'SUBJECT', value: 'e' },
      { kind: 'header', field: 'TO', value: 'f' },
      { kind: 'header', field: 'MESSAGE-ID', value: '<x@y>' },
      { kind: 'header', field: 'X-SPAM', value: '' },
    ]);
    assert.deepEqual(search('BODY hello TEXT "wor ld"'), [
      { kind: 'body', value: 'hello' },
      { kind: 'text', value: 'wor ld' },
    ]);
    assert.deepEqual(search('BEFORE 1-Feb-1994 ON "31-dec-1999" SINCE 29-Feb-2000 SENTBEFORE 01-Jan-2001 SENTON 9-Sep-2009 SENTSINCE 10-OCT-2010'), [
      { kind: 'date', which: 'internal', op: 'before', date: '1994-02-01' },
      { kind: 'date', which: 'internal', op: 'on', date: '1999-12-31' },
      { kind: 'date', which: 'internal', op: 'since', date: '2000-02-29' },
      { kind: 'date', which: 'sent', op: 'before', date: '2001-01-01' },
      { kind: 'date', which: 'sent', op: 'on', date: '2009-09-09' },
      { kind: 'date', which: 'sent', op: 'since', date: '2010-10-10' },
    ]);
    assert.deepEqual(search('LARGER 1024 SMALLER 0'), [
      { kind: 'size', op: 'larger', size: 1024 },
      { kind: 'size', op: 'smaller', size: 0 },
    ]);
    assert.deepEqual(search('UID 1:100,200 1,3:* $'), [
      { kind: 'uid', set: seqs([1, 100], 200) },
      { kind: 'seq', set: seqs(1, [3, '*']) },
      { kind: 'seq', set: { kind: 'saved' } },
    ]);
    assert.deepEqual(search('OLDER 3600 YOUNGER 60'), [
      { kind: 'older', seconds: 3600 },
      { kind: 'younger', seconds: 60 },
    ]);
  });

  it('NOT, OR and parenthesised lists nest', () => {
    assert.deepEqual(search('OR (SEEN FLAGGED) NOT OR DELETED DRAFT'), [
      {
        kind: 'or',
        a: { kind: 'and', keys: [{ kind: 'flag', flag: '\\Seen', set: true }, { kind: 'flag', flag: '\\Flagged', set: true }] },
        b: { kind: 'not', key: { kind: 'or', a: { kind: 'flag', flag: '\\Deleted', set: true }, b: { kind: 'flag', flag: '\\Draft', set: true } } },
      },
    ]);
    assert.deepEqual(search('((ALL))'), [{ kind: 'and', keys: [{ kind: 'and', keys: [{ kind: 'all' }] }] }]);
  });

  it('MODSEQ, with the optional entry name and type (rfc7162 3.1.5)', () => {
    assert.deepEqual(search('MODSEQ 620162338'), [{ kind: 'modseq', modSeq: 620162338 }]);
    assert.deepEqual(search('MODSEQ "/flags/\\\\draft" all 620162338'), [{ kind: 'modseq', modSeq: 620162338, entryName: '/flags/\\draft', entryType: 'all' }]);
    assert.deepEqual(search('MODSEQ "/flags/$Junk" PRIV 0'), [{ kind: 'modseq', modSeq: 0, entryName: '/flags/$Junk', entryType: 'priv' }]);
    assert.match(bad('a1 SEARCH MODSEQ "/foo" all 1'), /Invalid MODSEQ entry name/);
    assert.match(bad('a1 SEARCH MODSEQ "/flags/\\\\Seen" mine 1'), /Invalid MODSEQ entry type/);
    assert.match(bad('a1 SEARCH MODSEQ'), /SEARCH: /);
  });

  it('RETURN options (rfc4731, rfc5182) and CHARSET', () => {
    const prog = (s: string) => {
      const c = ok(s);
      return c.name === 'SEARCH' ? { uid: c.uid, ...c.program, criteria: undefined } : null;
    };
    assert.deepEqual(prog('a1 SEARCH RETURN (MIN MAX) ALL'), { uid: false, returnOptions: ['MIN', 'MAX'], charset: null, criteria: undefined });
    assert.deepEqual(prog('a1 UID SEARCH RETURN () ALL'), { uid: true, returnOptions: [], charset: null, criteria: undefined });
    assert.deepEqual(prog('a1 UID SEARCH return (save count all count) CHARSET us-ascii ALL'), { uid: true, returnOptions: ['SAVE', 'COUNT', 'ALL'], charset: 'US-ASCII', criteria: undefined });
    assert.deepEqual(prog('a1 SEARCH CHARSET "UTF-8" ALL'), { uid: false, returnOptions: null, charset: 'UTF-8', criteria: undefined });
    assert.match(bad('a1 SEARCH RETURN (PARTIAL 1:10) ALL'), /Unknown search return option PARTIAL/);
    assert.match(bad('a1 SEARCH RETURN (MIN)'), /SEARCH: Missing search keys/);
    assert.match(bad('a1 SEARCH CHARSET UTF-8'), /SEARCH: Missing search keys/);
  });

  it('strings are decoded with the charset when Node knows it', () => {
    const c = parse(Buffer.concat([Buffer.from('a1 SEARCH CHARSET ISO-8859-1 SUBJECT {4}\r\n'), Buffer.from([0x63, 0x61, 0x66, 0xe9])]));
    assert.ok(c.ok && c.command.name === 'SEARCH');
    assert.deepEqual(c.ok && c.command.name === 'SEARCH' && c.command.program.criteria, { kind: 'and', keys: [{ kind: 'header', field: 'SUBJECT', value: 'café' }] });
    const u = ok('a1 SEARCH CHARSET X-UNKNOWN-CHARSET SUBJECT x');
    assert.ok(u.name === 'SEARCH' && u.program.charset === 'X-UNKNOWN-CHARSET');
    assert.equal(isSupportedCharset('utf-8'), true);
    assert.equal(isSupportedCharset('ISO-8859-15'), true);
    assert.equal(isSupportedCharset('X-UNKNOWN-CHARSET'), false);
  });

  it('refuses bad keys and dates', () => {
    assert.match(bad('a1 SEARCH FOO'), /^SEARCH: Unknown search key FOO$/);
    assert.match(bad('a1 SEARCH'), /SEARCH: Missing search keys/);
    assert.match(bad('a1 SEARCH ()'), /SEARCH: /);
    assert.match(bad('a1 SEARCH (ALL'), /SEARCH: /);
    assert.match(bad('a1 SEARCH ALL)'), /SEARCH: /);
    assert.match(bad('a1 SEARCH OR ALL'), /SEARCH: /);
    assert.match(bad('a1 SEARCH NOT'), /SEARCH: /);
    assert.match(bad('a1 SEARCH KEYWORD \\Seen'), /Expected a keyword/);
    assert.match(bad('a1 SEARCH LARGER x'), /Expected size/);
    assert.match(bad('a1 SEARCH OLDER 0'), /Interval must not be 0/);
    for (const d of ['30-Feb-1994', '1-Foo-1994', '1-Feb-94', '001-Feb-1994', '1-Feb-1994x', '"1-Feb-1994', '1 Feb 1994', '0-Feb-1994']) {
      assert.match(bad(`a1 SEARCH SINCE ${d}`), /SEARCH: /, d);
    }
  });

  it('nesting is bounded, whatever the input', () => {
    const deep = (n: number, open: string, close: string) => `a1 SEARCH ${open.repeat(n)}ALL${close.repeat(n)}`;
    assert.equal(ok(deep(MAX_SEARCH_DEPTH - 1, '(', ')')).name, 'SEARCH');
    assert.match(bad(deep(MAX_SEARCH_DEPTH + 1, '(', ')')), /nested too deeply/);
    assert.equal(ok(deep(MAX_SEARCH_DEPTH - 1, 'NOT ', '')).name, 'SEARCH');
    assert.match(bad(deep(100_000, 'NOT ', '')), /nested too deeply/);
    assert.match(bad(deep(100_000, '(', ')')), /nested too deeply/);
    assert.match(bad(deep(100_000, 'OR ALL ', '')), /nested too deeply/);
  });
});

describe('parseCommand: hostile input', () => {
  it('random commands for a while: never throws, always a result', () => {
    const words = ['a1', ' ', 'UID', 'FETCH', 'STORE', 'SEARCH', 'APPEND', 'LIST', 'SELECT', 'LOGIN', 'STATUS', 'ID', 'NOT', 'OR', '(', ')', '[', ']', '<', '>', '.', '"', '\\', '*', '%', '$', '1', '0', ':', ',', '4294967296', 'BODY', 'PEEK', 'HEADER.FIELDS', 'RETURN', 'CHARSET', 'QRESYNC', '&', '-', 'é', '\0', '\r', 'NIL', '+FLAGS', '\\Seen', '{', '}', 'MODSEQ', '"/flags/\\\\Seen"', 'SINCE', '1-Feb-1994', '"17-Jul-1996 02:44:25 -0700"'];
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const deadline = Date.now() + 2000;
    let n = 0;
    while (Date.now() < deadline) {
      n++;
      const segments: Segment[] = [];
      const parts = 1 + rand(4);
      for (let p = 0; p < parts; p++) {
        let text = p === 0 ? ['a1 ', 'a1 UID ', ''][rand(3)]! : '';
        for (let i = rand(20); i > 0; i--) text += rand(10) === 0 ? String.fromCharCode(rand(256)) : words[rand(words.length)]!;
        segments.push({ kind: 'text', bytes: Buffer.from(text, rand(2) === 0 ? 'utf8' : 'latin1') });
        if (p < parts - 1) {
          const r = rand(3);
          if (r === 0) segments.push({ kind: 'streamed', id: p, size: 3, binary: false });
          else segments.push({ kind: 'literal', bytes: Buffer.from(words[rand(words.length)]!), binary: r === 2 });
        }
      }
      const res = parseCommand(segments, { utf8: rand(2) === 0 });
      assert.ok(res.ok === true || (typeof res.error === 'string' && res.error.length > 0));
    }
    assert.ok(n > 100);
  });

  it('random bytes through the framer and parser: never throws', () => {
    const f = new CommandFramer({ maxLineLength: 200, maxCommandBytes: 2000, maxLiteralInMemory: 500 });
    let seed = 7;
    const rand = (k: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % k;
    };
    const deadline = Date.now() + 1000;
    while (Date.now() < deadline) {
      const chunk = Buffer.from(Array.from({ length: rand(64) }, () => (rand(4) === 0 ? [0x0a, 0x7b, 0x7d, 0x20, 0x28, 0x22][rand(6)]! : rand(3) === 0 ? 0x31 : rand(256))));
      f.push(chunk);
      for (let e = f.next(); e !== null; e = f.next()) {
        if (e.type === 'literal') {
          if (e.literal.bufferable) f.acceptLiteral('buffer');
          else f.rejectLiteral();
        } else if (e.type === 'command') {
          parseCommand(e.segments, { utf8: false });
          parseCommand(e.segments, { utf8: true });
        }
      }
    }
  });
});
