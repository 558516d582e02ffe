import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  decodedParam,
  HEADER_BLOCK_LIMIT,
  MAX_DEPTH,
  MAX_PARTS,
  MimeStructureParser,
  parseContentType,
  parseMimeStructure,
  walkParts,
  type MimePart,
} from '../../src/message/mime.js';
import { buildEnvelope, parseEnvelopeAddresses } from '../../src/message/envelope.js';
import { parseHeaderBlock } from '../../src/message/header.js';

const dir = new URL('../fixtures/mime/', import.meta.url);
const fixtures = readdirSync(dir).filter((name) => name.endsWith('.eml')).sort();
const fixture = (name: string): Buffer => readFileSync(new URL(name, dir));
const parse = (text: string): MimePart => parseMimeStructure(Buffer.from(text, 'utf8'));
const crlf = (text: string): string => text.replace(/\r?\n/g, '\r\n');

/** The invariants every tree must keep, whatever the input. */
function assertWellFormed(root: MimePart, size: number): void {
  assert.equal(root.headerStart, 0);
  assert.equal(root.end, size);
  walkParts(root, (part) => {
    assert.ok(part.headerStart <= part.bodyStart && part.bodyStart <= part.end, JSON.stringify(part));
    assert.ok(part.bodyLines >= 0 && part.bodyLines <= part.end - part.bodyStart);
    for (const child of part.parts) {
      assert.ok(child.headerStart >= part.bodyStart && child.end <= part.end, 'child inside its parent body');
    }
    for (let i = 1; i < part.parts.length; i++) assert.ok(part.parts[i]!.headerStart >= part.parts[i - 1]!.end);
  });
}

test('a simple message: offsets, lines, defaults, envelope', () => {
  const msg = crlf('From: Ann <ann@example.org>\nSubject: Hi\n\nline 1\nline 2\n');
  const root = parse(msg);
  assert.equal(root.headerStart, 0);
  assert.equal(root.bodyStart, msg.indexOf('line 1'));
  assert.equal(root.end, msg.length);
  assert.equal(root.bodyLines, 2);
  assert.equal(root.type, 'text');
  assert.equal(root.subtype, 'plain');
  assert.deepEqual(root.params, [['charset', 'us-ascii']]);
  assert.equal(root.encoding, '7bit');
  assert.deepEqual(root.parts, []);
  assert.equal(root.envelope?.subject, 'Hi');
  assert.deepEqual(root.envelope?.from, [{ name: 'Ann', adl: null, mailbox: 'ann', host: 'example.org' }]);
  assert.deepEqual(root.envelope?.sender, root.envelope?.from);
  assert.equal(root.envelope?.to, null);
});

test('multipart offsets: the CRLF before a boundary belongs to the boundary (rfc2046 5.1.1)', () => {
  const msg = crlf('Content-Type: multipart/mixed; boundary=b\n\npre\n--b\nX: 1\n\none\n--b\n\ntwo\n\n--b--\nepi\n');
  const root = parse(msg);
  assert.equal(root.parts.length, 2);
  const [a, b] = root.parts as [MimePart, MimePart];
  assert.equal(msg.slice(a.headerStart, a.bodyStart), 'X: 1\r\n\r\n');
  assert.equal(msg.slice(a.bodyStart, a.end), 'one');
  assert.equal(a.bodyLines, 0);
  assert.equal(msg.slice(b.headerStart, b.bodyStart), '\r\n');
  assert.equal(msg.slice(b.bodyStart, b.end), 'two\r\n');
  assert.equal(b.bodyLines, 1);
  assert.equal(msg.slice(root.bodyStart, root.end), 'pre\r\n--b\r\nX: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n\r\n--b--\r\nepi\r\n');
  assert.equal(root.bodyLines, 11);
});

test('message/rfc822: the encapsulated message is the one child, with its envelope', () => {
  const bytes = fixture('rfc822.eml');
  const root = parseMimeStructure(bytes);
  const rfc822 = root.parts[1]!;
  assert.equal(rfc822.type, 'message');
  assert.equal(rfc822.parts.length, 1);
  const inner = rfc822.parts[0]!;
  assert.equal(inner.headerStart, rfc822.bodyStart);
  assert.equal(inner.end, rfc822.end);
  assert.equal(inner.envelope?.subject, 'inner');
  assert.deepEqual(inner.envelope?.from, [{ name: 'Carl, Jr.', adl: null, mailbox: 'carl', host: 'example.net' }]);
  assert.equal(inner.type, 'multipart');
  assert.equal(inner.parts.length, 2);
  assert.equal(bytes.subarray(inner.parts[0]!.bodyStart, inner.parts[0]!.end).toString(), 'inner plain\r\nline 2');
  assert.equal(root.parts[0]!.envelope, null);
});

test('multipart/digest children default to message/rfc822 (rfc2046 5.1.5)', () => {
  const root = parseMimeStructure(fixture('digest.eml'));
  assert.deepEqual(
    root.parts.map((p) => `${p.type}/${p.subtype}`),
    ['message/rfc822', 'message/rfc822', 'text/plain'],
  );
  assert.equal(root.parts[0]!.parts[0]!.envelope?.subject, 'one');
});

test('missing boundaries: unclosed parts end with the parent; no boundary param or none seen: a leaf', () => {
  const missing = parseMimeStructure(fixture('missing-close.eml'));
  assert.equal(missing.parts.length, 2);
  assert.equal(missing.parts[1]!.end, missing.end);
  for (const name of ['no-boundary-param.eml', 'boundary-never.eml']) {
    const root = parseMimeStructure(fixture(name));
    assert.equal(root.type, 'multipart');
    assert.deepEqual(root.parts, []);
  }
});

test('a boundary that is a prefix of the inner one: the innermost matches first', () => {
  const root = parseMimeStructure(fixture('prefix-boundary.eml'));
  assert.equal(root.parts.length, 2);
  assert.equal(root.parts[0]!.parts.length, 2);
});

test('bare LF and mixed line ends', () => {
  const bytes = fixture('bare-lf.eml');
  const root = parseMimeStructure(bytes);
  assert.equal(root.parts.length, 2);
  assert.equal(bytes.subarray(root.parts[0]!.bodyStart, root.parts[0]!.end).toString(), 'one\ntwo');
  assert.equal(root.parts[0]!.bodyLines, 1);
  const mixed = parseMimeStructure(fixture('crlf-mix.eml'));
  assert.equal(mixed.parts.length, 1);
});

test('Content-Type parameters: order, case and duplicates kept, comments dropped, RFC 2231 merged', () => {
  assert.deepEqual(parseContentType('Application/X-Foo (c) ; a=1 ; b="two words" (c) ; A=3'), {
    type: 'application',
    subtype: 'x-foo',
    writtenType: 'Application',
    writtenSubtype: 'X-Foo',
    params: [['a', '1'], ['b', 'two words'], ['A', '3']],
  });
  assert.deepEqual(parseContentType('multipart/mixed; boundary=----=_Part_1_2.3'), {
    type: 'multipart',
    subtype: 'mixed',
    writtenType: 'multipart',
    writtenSubtype: 'mixed',
    params: [['boundary', '----=_Part_1_2.3']],
  });
  assert.equal(parseContentType('text'), null);
  assert.equal(parseContentType('image/'), null);
  assert.equal(parseContentType(''), null);
  const root = parseMimeStructure(fixture('rfc2231.eml'));
  const att = root.parts[0]!;
  assert.deepEqual(att.params, [['name*', "utf-8''%E2%82%AC%20rates.txt"]]);
  assert.equal(decodedParam(att.params, 'name'), '€ rates.txt');
  assert.equal(decodedParam(att.disposition!.params, 'FILENAME'), '€ rates.txt');
  assert.equal(decodedParam(root.parts[1]!.disposition!.params, 'filename'), 'naïve.txt');
  assert.equal(decodedParam(root.parts[1]!.params, 'title'), 'This is ***fun***');
  assert.equal(decodedParam([['name', '=?utf-8?q?caf=C3=A9?=']], 'name'), 'café');
  assert.equal(decodedParam([], 'name'), null);
});

test('Content-* fields: disposition, language, location, id, md5, description; the first of repeated fields wins', () => {
  const root = parseMimeStructure(fixture('nested-mixed.eml'));
  const pdf = root.parts[1]!;
  assert.deepEqual(pdf.disposition, { type: 'attachment', params: [['filename', 'doc.pdf'], ['size', '768']] });
  assert.deepEqual(pdf.language, ['en', 'de']);
  assert.equal(pdf.location, 'http://example.org/doc.pdf');
  assert.equal(pdf.id, '<part2@example.org>');
  assert.equal(pdf.md5, 'Q2hlY2sgSW50ZWdyaXR5IQ==');
  assert.equal(pdf.description, 'A document');
  assert.equal(pdf.encoding, 'base64');
  const dup = parseMimeStructure(fixture('duplicate-ctype.eml'));
  assert.equal(dup.type, 'multipart');
  assert.equal(dup.encoding, 'base64');
});

test('envelope: groups as rfc3501 7.4.2, routes, comments as names, placeholders, raw encoded words', () => {
  assert.deepEqual(parseEnvelopeAddresses('A Group:Ed Jones <c@a.test>,joe@where.test;, solo@x.test (Solo)'), [
    { name: null, adl: null, mailbox: 'A Group', host: null },
    { name: 'Ed Jones', adl: null, mailbox: 'c', host: 'a.test' },
    { name: null, adl: null, mailbox: 'joe', host: 'where.test' },
    { name: null, adl: null, mailbox: null, host: null },
    { name: 'Solo', adl: null, mailbox: 'solo', host: 'x.test' },
  ]);
  assert.deepEqual(parseEnvelopeAddresses('<@r1,@r2:u@h>, nodomain, Bob <>'), [
    { name: null, adl: '@r1,@r2', mailbox: 'u', host: 'h' },
    { name: null, adl: null, mailbox: 'nodomain', host: 'MISSING_DOMAIN' },
    { name: 'Bob', adl: null, mailbox: 'MISSING_MAILBOX', host: 'MISSING_DOMAIN' },
  ]);
  assert.deepEqual(parseEnvelopeAddresses('"=?utf-8?q?B=C3=B6b?=" <b@x>, "a \\"q\\"" <"quoted local"@x>'), [
    { name: '=?utf-8?q?B=C3=B6b?=', adl: null, mailbox: 'b', host: 'x' },
    { name: 'a "q"', adl: null, mailbox: 'quoted local', host: 'x' },
  ]);
  assert.deepEqual(parseEnvelopeAddresses('unclosed: a@b'), [
    { name: null, adl: null, mailbox: 'unclosed', host: null },
    { name: null, adl: null, mailbox: 'a', host: 'b' },
    { name: null, adl: null, mailbox: null, host: null },
  ]);
  assert.deepEqual(parseEnvelopeAddresses(''), []);
  const header = Buffer.from('From: a@b\r\nSender:\r\nTo: x@y\r\nTo: z@w\r\nSubject: one\r\nSubject: two\r\n\r\n');
  const env = buildEnvelope(parseHeaderBlock(header).fields);
  assert.deepEqual(env.sender, env.from);
  assert.deepEqual(env.replyTo, env.from);
  assert.equal(env.to?.length, 2);
  assert.equal(env.subject, 'two');
  const words = parseMimeStructure(fixture('encoded-words.eml')).envelope!;
  assert.equal(words.subject, '=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= and =?UTF-8?B?8J+Ygg==?=');
  assert.equal(words.from?.[0]?.name, '=?UTF-8?B?w4RubmUgRXhhbXBsZQ==?=');
});

test('the tree is plain JSON and survives a round trip', () => {
  for (const name of fixtures) {
    const root = parseMimeStructure(fixture(name));
    assert.deepEqual(JSON.parse(JSON.stringify(root)), root, name);
  }
});

test('every fixture gives a well-formed tree', () => {
  for (const name of fixtures) {
    const bytes = fixture(name);
    assertWellFormed(parseMimeStructure(bytes), bytes.length);
  }
});

test('split points: two chunks split at every offset, and one byte at a time, give the same tree', () => {
  for (const name of fixtures) {
    const bytes = fixture(name);
    const whole = JSON.stringify(parseMimeStructure(bytes));
    for (let at = 0; at <= bytes.length; at++) {
      const parser = new MimeStructureParser();
      parser.write(bytes.subarray(0, at));
      parser.write(bytes.subarray(at));
      assert.equal(JSON.stringify(parser.end()), whole, `${name} split at ${at}`);
    }
    const bytewise = new MimeStructureParser();
    for (let i = 0; i < bytes.length; i++) bytewise.write(bytes.subarray(i, i + 1));
    assert.equal(JSON.stringify(bytewise.end()), whole, `${name} byte by byte`);
  }
});

test('the parser keeps no reference to a chunk: reusing the buffer changes nothing', () => {
  const bytes = fixture('nested-mixed.eml');
  const whole = JSON.stringify(parseMimeStructure(bytes));
  const parser = new MimeStructureParser();
  const scratch = Buffer.alloc(7);
  for (let i = 0; i < bytes.length; i += 7) {
    const n = bytes.copy(scratch, 0, i, i + 7);
    parser.write(scratch.subarray(0, n));
    scratch.fill(0x41);
  }
  assert.equal(JSON.stringify(parser.end()), whole);
});

test('limits: nesting beyond MAX_DEPTH becomes leaves, without deep recursion', () => {
  let msg = '';
  for (let i = 0; i < 300; i++) msg += `Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\n`;
  msg += 'Content-Type: text/plain\r\n\r\ndeep\r\n';
  const root = parse(msg);
  let depth = 0;
  walkParts(root, (_part, d) => {
    depth = Math.max(depth, d);
  });
  assert.equal(depth, MAX_DEPTH);
  assertWellFormed(root, Buffer.byteLength(msg));
  let rfc = '';
  for (let i = 0; i < 300; i++) rfc += 'Content-Type: message/rfc822\r\n\r\n';
  assertWellFormed(parse(rfc), Buffer.byteLength(rfc));
});

test('limits: after MAX_PARTS parts, boundaries start no new part', () => {
  const msg = `Content-Type: multipart/mixed; boundary=x\r\n\r\n${'--x\r\n\r\np\r\n'.repeat(MAX_PARTS + 500)}--x--\r\n`;
  const root = parse(msg);
  let count = 0;
  walkParts(root, () => count++);
  assert.equal(count, MAX_PARTS);
  assertWellFormed(root, msg.length);
});

test('limits: a header block larger than HEADER_BLOCK_LIMIT is skipped past, not stored', () => {
  const big = `X-Big: ${'a'.repeat(HEADER_BLOCK_LIMIT * 3)}\r\n`;
  const msg = `Subject: first\r\n${big}Content-Type: text/html\r\n\r\nbody\r\n`;
  const root = parse(msg);
  assert.equal(root.bodyStart, msg.indexOf('body'));
  assert.equal(root.envelope?.subject, 'first');
  assert.equal(root.type, 'text'); // the Content-Type after the limit is not seen
  assert.equal(root.subtype, 'plain');
  assertWellFormed(root, msg.length);
});

test('a long line without line end, NUL bytes and random bytes never throw', () => {
  const long = Buffer.concat([Buffer.from('Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\n'), Buffer.alloc(3_000_000, 0x41)]);
  assertWellFormed(parseMimeStructure(long), long.length);
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = Buffer.from('-\r\n:;=\" bxz/\t');
  for (let round = 0; round < 300; round++) {
    const base = fixture(fixtures[rand(fixtures.length)]!);
    const bytes = Buffer.from(base);
    for (let k = 0; k < 10; k++) bytes[rand(bytes.length)] = rand(2) === 0 ? rand(256) : alphabet[rand(alphabet.length)]!;
    assertWellFormed(parseMimeStructure(bytes), bytes.length);
  }
  assertWellFormed(parseMimeStructure(Buffer.alloc(0)), 0);
  const parser = new MimeStructureParser();
  parser.write(Buffer.from('a'));
  const first = parser.end();
  parser.write(Buffer.from('more'));
  assert.equal(parser.end(), first);
});
