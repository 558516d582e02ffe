/**
 * The SMTP client's reply parser (src/smtp/client/reply.ts): single and multi-line replies,
 * enhanced status codes, EHLO keywords, limits, and the same result however the bytes are split.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ReplyReader,
  ehloAuthMechanisms,
  ehloSizeLimit,
  formatClientReply,
  parseEhlo,
  parseReplyLine,
  replyStatus,
  type ReplyResult,
  type SmtpClientReply,
} from '../../src/smtp/client/reply.js';

function readAll(input: string | Buffer, options = {}): ReplyResult[] {
  const reader = new ReplyReader(options);
  reader.push(Buffer.isBuffer(input) ? input : Buffer.from(input, 'utf8'));
  const out: ReplyResult[] = [];
  for (let r = reader.next(); r !== null; r = reader.next()) {
    out.push(r);
    if (!r.ok) break;
  }
  return out;
}

function replies(input: string): SmtpClientReply[] {
  return readAll(input).map((r) => {
    assert.ok(r.ok, `unexpected error ${JSON.stringify(r)}`);
    return r.reply;
  });
}

test('a single-line reply with an enhanced status code', () => {
  assert.deepEqual(replies('250 2.1.0 Ok\r\n'), [{ code: 250, enhanced: '2.1.0', lines: ['Ok'] }]);
});

test('a reply without enhanced code, and one with only a code', () => {
  assert.deepEqual(replies('220 mx.example ESMTP ready\r\n354\r\n'), [
    { code: 220, enhanced: null, lines: ['mx.example ESMTP ready'] },
    { code: 354, enhanced: null, lines: [''] },
  ]);
});

test('multi-line replies end at the line with a space; each line loses its status code', () => {
  const r = replies('550-5.1.1 The email account that you tried to reach does not exist.\r\n550-5.1.1 Please try\r\n550 5.1.1 double-checking. x1si\r\n');
  assert.equal(r.length, 1);
  assert.equal(r[0]!.code, 550);
  assert.equal(r[0]!.enhanced, '5.1.1');
  assert.deepEqual(r[0]!.lines, ['The email account that you tried to reach does not exist.', 'Please try', 'double-checking. x1si']);
  assert.equal(formatClientReply(r[0]!), '550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking. x1si');
});

test('pipelined replies come out one by one, in order', () => {
  const r = replies('250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <b@x>: no\r\n354 End data with <CR><LF>.<CR><LF>\r\n');
  assert.deepEqual(
    r.map((x) => x.code),
    [250, 250, 550, 354],
  );
});

test('an enhanced code of another class than the reply code is text, not a status', () => {
  const [r] = replies('550 2.0.0 odd\r\n');
  assert.equal(r!.enhanced, null);
  assert.deepEqual(r!.lines, ['2.0.0 odd']);
  assert.equal(replyStatus(r!), '5.0.0');
  assert.equal(formatClientReply(r!), '550 5.0.0 2.0.0 odd');
});

test('status codes are normalised (leading zeros) and need a space or the end after them', () => {
  assert.equal(replies('451 4.07.001 later\r\n')[0]!.enhanced, '4.7.1');
  assert.equal(replies('451 4.7.1\r\n')[0]!.enhanced, '4.7.1');
  assert.equal(replies('451 4.7.1x later\r\n')[0]!.enhanced, null);
  assert.equal(replies('451 4.7.1234 later\r\n')[0]!.enhanced, null);
});

test('bare LF line ends are accepted', () => {
  assert.deepEqual(replies('250-a\n250 b\n'), [{ code: 250, enhanced: null, lines: ['a', 'b'] }]);
});

test('control characters in text become spaces; invalid UTF-8 becomes U+FFFD', () => {
  const r = readAll(Buffer.concat([Buffer.from('250 a\x01b\tc '), Buffer.from([0xff]), Buffer.from('\r\n')]));
  assert.ok(r[0]!.ok);
  assert.equal(r[0]!.reply.lines[0], 'a b c \ufffd');
});

test('malformed lines are errors, and the reader stays failed', () => {
  const reader = new ReplyReader();
  reader.push(Buffer.from('hello there\r\n250 ok\r\n'));
  const first = reader.next();
  assert.deepEqual(first && !first.ok && first.error, 'bad-syntax');
  assert.deepEqual(reader.next(), first);
  for (const bad of ['25 ok\r\n', '250ok\r\n', '650 no\r\n', '199 no\r\n', '2500 x\r\n', '\r\n']) {
    const r = readAll(bad);
    assert.equal(r.length, 1, bad);
    assert.ok(!r[0]!.ok && r[0]!.error === 'bad-syntax', bad);
  }
});

test('a continuation line with another code is an error', () => {
  const r = readAll('250-a\r\n251 b\r\n');
  assert.ok(!r[0]!.ok && r[0]!.error === 'code-mismatch');
});

test('line length and line count are bounded', () => {
  const long = readAll(`250 ${'x'.repeat(5000)}\r\n`);
  assert.ok(!long[0]!.ok && long[0]!.error === 'too-long');
  const ok = readAll(`250 ${'x'.repeat(100)}\r\n`, { maxLineLength: 104 });
  assert.ok(ok[0]!.ok);
  const many = readAll('250-x\r\n'.repeat(101) + '250 x\r\n');
  assert.ok(!many[0]!.ok && many[0]!.error === 'too-long');
  const hundred = readAll('250-x\r\n'.repeat(99) + '250 x\r\n');
  assert.ok(hundred[0]!.ok && hundred[0]!.reply.lines.length === 100);
  // A line without an end is refused as soon as it is too long, not buffered.
  const reader = new ReplyReader({ maxLineLength: 10 });
  reader.push(Buffer.from('250 abcdefghijklmnop'));
  const r = reader.next();
  assert.ok(r !== null && !r.ok && r.error === 'too-long');
});

test('the same replies however the bytes are split', () => {
  const input = Buffer.from(
    '220-mx.example ESMTP\r\n220 hello\r\n250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n550-5.1.1 a\r\n550 5.1.1 b\n354 go\r\n',
  );
  const whole = readAll(input);
  assert.equal(whole.length, 4);
  for (let i = 1; i < input.length; i++) {
    for (const j of [i, Math.min(input.length - 1, i + 3)]) {
      const reader = new ReplyReader();
      const out: ReplyResult[] = [];
      for (const part of [input.subarray(0, i), input.subarray(i, j), input.subarray(j)]) {
        reader.push(part);
        for (let r = reader.next(); r !== null; r = reader.next()) out.push(r);
      }
      assert.deepEqual(out, whole, `split at ${i}/${j}`);
    }
  }
  // Byte by byte.
  const reader = new ReplyReader();
  const out: ReplyResult[] = [];
  for (const byte of input) {
    reader.push(Buffer.from([byte]));
    for (let r = reader.next(); r !== null; r = reader.next()) out.push(r);
  }
  assert.deepEqual(out, whole);
});

test('parseReplyLine', () => {
  assert.deepEqual(parseReplyLine('250-PIPELINING'), { code: 250, last: false, text: 'PIPELINING' });
  assert.deepEqual(parseReplyLine('250 '), { code: 250, last: true, text: '' });
  assert.deepEqual(parseReplyLine('250'), { code: 250, last: true, text: '' });
  assert.equal(parseReplyLine('250x'), null);
});

test('EHLO keywords, parameters, the old AUTH= form, SIZE', () => {
  const [r] = replies(
    '250-mx.example.org Hello client [192.0.2.1]\r\n250-SIZE 35882577\r\n250-8bitmime\r\n250-PIPELINING\r\n250-AUTH LOGIN PLAIN XOAUTH2\r\n250-AUTH=LOGIN CRAM-MD5\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n',
  );
  const info = parseEhlo(r!);
  assert.equal(info.serverName, 'mx.example.org');
  assert.deepEqual([...info.keywords.keys()], ['SIZE', '8BITMIME', 'PIPELINING', 'AUTH', 'ENHANCEDSTATUSCODES', 'DSN', 'STARTTLS', 'SMTPUTF8']);
  assert.equal(ehloSizeLimit(info), 35882577);
  assert.deepEqual(ehloAuthMechanisms(info), ['LOGIN', 'PLAIN', 'XOAUTH2', 'CRAM-MD5']);
  const sizes = (line: string): number | null => ehloSizeLimit(parseEhlo(replies(`250-x\r\n250 ${line}\r\n`)[0]!));
  assert.equal(sizes('SIZE'), null);
  assert.equal(sizes('SIZE 0'), null);
  assert.equal(sizes('SIZE abc'), null);
  assert.equal(sizes('SIZE 1000'), 1000);
  assert.equal(sizes('NOSIZE'), null);
  // A one-line EHLO reply offers nothing.
  assert.equal(parseEhlo(replies('250 mx.example\r\n')[0]!).keywords.size, 0);
});
