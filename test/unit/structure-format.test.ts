import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  filterHeaderFields,
  findSection,
  formatBodyStructure,
  formatEnvelope,
  imapString,
  sectionRange,
} from '../../src/imap/structure-format.js';
import { parseMimeStructure } from '../../src/message/mime.js';
import { parseSexp } from './imap-sexp.js';

const dir = new URL('../fixtures/mime/', import.meta.url);
const fixture = (name: string): Buffer => readFileSync(new URL(name, dir));
const parse = (text: string): ReturnType<typeof parseMimeStructure> => parseMimeStructure(Buffer.from(text, 'utf8'));

/**
 * Answers of Dovecot 2.3.19 (FETCH BODYSTRUCTURE / BODY / ENVELOPE of each fixture APPENDed to
 * a throwaway Dovecot; see ../fixtures/mime/README.md). Compared as parsed values, so quoted
 * strings and literals are equal when they carry the same text.
 */
const answers = JSON.parse(readFileSync(new URL('dovecot-answers.json', dir), 'utf8')) as Record<
  string,
  { bodystructure: string; body: string; envelope: string }
>;

/** Where we deliberately answer otherwise, what we answer instead, and why. */
const differences: Record<string, { key: 'bodystructure' | 'body' | 'envelope'; ours: string; why: string }[]> = {
  'bare-lf.eml': [
    {
      key: 'bodystructure',
      why: 'sizes are raw octets: Dovecot counts bare LF as CRLF (8 for "one\\ntwo"), we count what is stored',
      ours: '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1 NIL NIL NIL NIL)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL) "mixed" ("boundary" "lf") NIL NIL NIL)',
    },
    {
      key: 'body',
      why: 'as above',
      ours: '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0) "mixed")',
    },
  ],
  'invalid-ctype.eml': [
    {
      key: 'bodystructure',
      why: 'rfc2045 5.2: an invalid Content-Type means text/plain; charset=us-ascii; Dovecot sends "" "" or "text" ""',
      ours: '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL)("application" "x-foo" ("a" "1" "b" "two words" "A" "3") NIL NIL "7bit" 1 NIL NIL NIL NIL) "mixed" ("boundary" "iv") NIL NIL NIL)',
    },
    {
      key: 'body',
      why: 'as above',
      ours: '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0)("application" "x-foo" ("a" "1" "b" "two words" "A" "3") NIL NIL "7bit" 1) "mixed")',
    },
  ],
  'rfc822-base64.eml': [
    {
      key: 'bodystructure',
      why: 'an encapsulated header ended by a boundary: Dovecot keeps the CRLF before the boundary in it (50 octets, 1 line); we give it to the boundary as everywhere else',
      ours: '(("message" "rfc822" NIL NIL NIL "base64" 48 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) 0 NIL NIL NIL NIL) "mixed" ("boundary" "r64") NIL NIL NIL)',
    },
    {
      key: 'body',
      why: 'as above',
      ours: '(("message" "rfc822" NIL NIL NIL "base64" 48 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) 0) "mixed")',
    },
  ],
  'groups.eml': [
    {
      key: 'envelope',
      why: 'Dovecot stops at "team: ; other@x.test" (no comma after the group); we keep other@x.test',
      ours: '(NIL "groups" ((NIL NIL "ann" "example.org")) ((NIL NIL "ann" "example.org")) ((NIL NIL "ann" "example.org")) ((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")(NIL NIL "joe" "where.test")("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL)(NIL NIL "solo" "example.com")) ((NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL)) ((NIL NIL "team" NIL)(NIL NIL NIL NIL)(NIL NIL "other" "x.test")) NIL NIL)',
    },
  ],
  'env-03.eml': [
    {
      key: 'envelope',
      why: 'Dovecot drops everything after a stray ";" outside a group ("a@b.c;, x@y.z"); we skip the ";"',
      ours: '(NIL NIL (("John Q. Public" NIL "jqp" "x.test")) (("John Q. Public" NIL "jqp" "x.test")) (("John Q. Public" NIL "jqp" "x.test")) ((NIL NIL "empty" "x.test")(NIL NIL "a" "b.c")(NIL NIL "x" "y.z")) ((NIL NIL "group" NIL)(NIL NIL "a" "b.c")(NIL NIL NIL NIL)) NIL NIL NIL)',
    },
  ],
  'env-08.eml': [
    {
      key: 'envelope',
      why: 'empty list elements ("a@b.c, , , d@e.f") are nothing (rfc5322 4.4 obs-addr-list); Dovecot makes MISSING_MAILBOX entries',
      ours: '(NIL "tab here" ((NIL "@a.test" "route" "x.test")) ((NIL "@a.test" "route" "x.test")) ((NIL "@a.test" "route" "x.test")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)(NIL NIL "x" "y.z")) ((NIL NIL "a" "b.c")(NIL NIL "d" "e.f")) NIL NIL NIL)',
    },
  ],
};

for (const [file, answer] of Object.entries(answers)) {
  test(`Dovecot oracle: BODYSTRUCTURE, BODY and ENVELOPE of ${file}`, () => {
    const root = parseMimeStructure(fixture(file));
    const ours = {
      bodystructure: formatBodyStructure(root, true),
      body: formatBodyStructure(root, false),
      envelope: formatEnvelope(root.envelope),
    };
    for (const key of ['bodystructure', 'body', 'envelope'] as const) {
      // Our output must parse as IMAP data whatever it holds.
      const got = parseSexp(ours[key]);
      const diff = differences[file]?.find((d) => d.key === key);
      if (diff !== undefined) {
        assert.notDeepEqual(parseSexp(answer[key]), got, `${file} ${key}: no longer differs, drop the entry`);
        assert.equal(ours[key], diff.ours, `${file} ${key}`);
      } else {
        assert.deepEqual(got, parseSexp(answer[key]), `${file} ${key}`);
      }
    }
  });
}

/** BODY[section] answers of the same Dovecot: section spec -> the bytes it sent. */
const sections = JSON.parse(readFileSync(new URL('dovecot-sections.json', dir), 'utf8')) as Record<string, Record<string, string>>;

test('Dovecot oracle: BODY[section] byte ranges, HEADER.FIELDS[.NOT] filters', () => {
  let checked = 0;
  for (const [file, specs] of Object.entries(sections)) {
    const bytes = fixture(file);
    const root = parseMimeStructure(bytes);
    for (const [spec, want] of Object.entries(specs)) {
      if (file === 'crlf-mix.eml' && spec === 'HEADER') continue; // Dovecot sends bare LF as CRLF; we send what is stored
      const range = sectionRange(root, spec);
      let got = range === null ? Buffer.alloc(0) : bytes.subarray(range.start, range.end);
      const fields = /HEADER\.FIELDS(\.NOT)? \((.*)\)/.exec(spec);
      if (fields !== null && range !== null) got = filterHeaderFields(got, fields[2]!.split(' '), fields[1] !== undefined);
      assert.equal(got.toString('utf8'), want, `${file} BODY[${spec}]`);
      checked++;
    }
  }
  assert.ok(checked > 100);
});

test('RFC 3501 7.4.2 example: ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)', () => {
  const line = `${'x'.repeat(30)}\r\n`; // 32 octets
  const body = line.repeat(91) + 'y'.repeat(3028 - 91 * 32 - 2) + '\r\n';
  assert.equal(body.length, 3028);
  const msg = `From: a@b.c\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\nContent-Transfer-Encoding: 7BIT\r\n\r\n${body}`;
  const root = parse(msg);
  assert.equal(formatBodyStructure(root, false), '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)');
  assert.equal(formatBodyStructure(root, true), '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92 NIL NIL NIL NIL)');
});

test('imapString: quoted with escapes, literals for CR/LF/NUL and (without UTF8=ACCEPT) 8-bit', () => {
  assert.equal(imapString('plain'), '"plain"');
  assert.equal(imapString(''), '""');
  assert.equal(imapString('a "q" \\ b'), '"a \\"q\\" \\\\ b"');
  assert.equal(imapString('two\r\nlines'), '{10}\r\ntwo\r\nlines');
  assert.equal(imapString('Grüße'), '{7}\r\nGrüße');
  assert.equal(imapString('Grüße', true), '"Grüße"');
  assert.equal(imapString('日本', true), '"日本"');
  assert.equal(imapString('a\0b'), '{2}\r\nab');
});

test('ENVELOPE with UTF8=ACCEPT sends UTF-8 quoted; subjects and names are cleaned for humans', () => {
  const root = parseMimeStructure(fixture('utf8-headers.eml'));
  const env = formatEnvelope(root.envelope, { utf8: true });
  assert.ok(env.startsWith('(NIL "Grüße € 日本" (("Jörg Müller" NIL "jörg" "exämple.org"))'), env);
  assert.ok(!env.includes('{'));
  const folded = parse('Subject: one  \r\n two\r\n\tthree\r\nFrom: "A \t  B" <a@b.c>\r\n\r\n');
  assert.equal(formatEnvelope(folded.envelope), '(NIL "one two three" (("A B" NIL "a" "b.c")) (("A B" NIL "a" "b.c")) (("A B" NIL "a" "b.c")) NIL NIL NIL NIL NIL)');
  assert.equal(formatEnvelope(null), '(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)');
});

test('message/global is an encapsulated message only for UTF-8 clients (rfc9051); basic otherwise, as Dovecot 2.3', () => {
  const root = parseMimeStructure(fixture('message-global.eml'));
  assert.equal(formatBodyStructure(root, false), '(("message" "global" NIL NIL NIL "7bit" 51) "mixed")');
  assert.equal(
    formatBodyStructure(root, false, { utf8: true }),
    '(("message" "global" NIL NIL NIL "7bit" 51 (NIL "inner global" ((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0) 3) "mixed")',
  );
});

test('multipart without children (no boundary, boundary never seen) gets an empty text/plain part', () => {
  for (const file of ['no-boundary-param.eml', 'boundary-never.eml']) {
    const out = formatBodyStructure(parseMimeStructure(fixture(file)), true);
    assert.ok(out.startsWith('(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" '), out);
    assert.equal(findSection(parseMimeStructure(fixture(file)), [1]), null);
  }
});

test('findSection: part numbering through multiparts and message/rfc822 (rfc3501 6.4.5)', () => {
  const root = parseMimeStructure(fixture('rfc822.eml'));
  assert.equal(findSection(root, []), root);
  assert.equal(findSection(root, [1]), root.parts[0]);
  assert.equal(findSection(root, [2]), root.parts[1]);
  assert.equal(findSection(root, [2, 1]), root.parts[1]!.parts[0]!.parts[0]);
  assert.equal(findSection(root, [2, 2]), root.parts[1]!.parts[0]!.parts[1]);
  // As Dovecot: a leaf reached through a multipart answers to a further ".1" (itself)...
  assert.equal(findSection(root, [2, 1, 1]), root.parts[1]!.parts[0]!.parts[0]);
  assert.equal(findSection(root, [1, 1]), root.parts[0]);
  assert.equal(findSection(root, [1, 2]), null);
  assert.equal(findSection(root, [3]), null);
  assert.equal(findSection(root, [0]), null);
  const simple = parseMimeStructure(fixture('simple.eml'));
  assert.equal(findSection(simple, [1]), simple);
  assert.equal(findSection(simple, [2]), null);
  assert.equal(findSection(simple, [1, 1]), null); // ...but a non-multipart message's part 1 does not
  const top = parseMimeStructure(fixture('toplevel-rfc822.eml'));
  assert.equal(findSection(top, [1]), top);
  assert.equal(findSection(top, [1, 1]), top.parts[0]);
});

test('sectionRange: specs, case, field lists, and sections that do not apply', () => {
  const bytes = fixture('rfc822.eml');
  const root = parseMimeStructure(bytes);
  const text = (spec: string): string | null => {
    const r = sectionRange(root, spec);
    return r === null ? null : bytes.subarray(r.start, r.end).toString();
  };
  assert.equal(text('2.header'), text('2.HEADER'));
  assert.equal(text('HEADER.FIELDS (From)'), text('HEADER'));
  assert.equal(text('2.1.HEADER'), null); // not a message/rfc822 part
  assert.equal(text('MIME'), null);
  assert.equal(text('2.BOGUS'), null);
  assert.equal(text('9'), null);
  assert.equal(text('2.1'), 'inner plain\r\nline 2');
  assert.equal(text(''), bytes.toString());
});

test('filterHeaderFields keeps folds, drops non-fields, ends with the empty line', () => {
  const header = Buffer.from('From ann Tue\r\nSubject: a\r\n b\r\nTo: x@y\r\nX-A: 1\r\nsubject: again\r\n\r\n');
  assert.equal(filterHeaderFields(header, ['SUBJECT'], false).toString(), 'Subject: a\r\n b\r\nsubject: again\r\n\r\n');
  assert.equal(filterHeaderFields(header, ['subject', 'x-a'], true).toString(), 'To: x@y\r\n\r\n');
  assert.equal(filterHeaderFields(header, ['none'], false).toString(), '\r\n');
  assert.equal(filterHeaderFields(Buffer.from('To: x@y'), ['to'], false).toString(), 'To: x@y\r\n\r\n');
});
