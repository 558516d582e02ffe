import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { foldHeader, formatDate, formatReceived, parseHeaderBlock, unfold } from '../../src/message/header.js';

describe('foldHeader / unfold', () => {
  it('leaves short fields alone', () => {
    assert.equal(foldHeader('Subject', 'Hello'), 'Subject: Hello');
  });

  it('folds at whitespace, keeps lines within the limit, and unfolds back', () => {
    const value = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
    const folded = foldHeader('Subject', value);
    for (const line of folded.split('\r\n')) assert.ok(line.length <= 78, line);
    assert.ok(folded.split('\r\n').slice(1).every((l) => l.startsWith(' ')));
    assert.equal(unfold(folded), `Subject: ${value}`);
  });

  it('never breaks a word; a word longer than the limit stays whole', () => {
    const long = 'x'.repeat(120);
    const folded = foldHeader('References', `<a@b> ${long} <c@d>`);
    assert.deepEqual(folded.split('\r\n'), ['References: <a@b>', ` ${long}`, ' <c@d>']);
    assert.equal(foldHeader('X', long), `X: ${long}`);
  });

  it('respects a custom limit and keeps the first word on the first line', () => {
    assert.equal(foldHeader('To', 'a@b.c, d@e.f, g@h.i', 12), 'To: a@b.c,\r\n d@e.f,\r\n g@h.i');
    assert.equal(foldHeader('Subject', 'averyveryverylongfirstword second', 10), 'Subject: averyveryverylongfirstword\r\n second');
  });

  it('turns CR and LF that are not folds into spaces (no header injection)', () => {
    const folded = foldHeader('Subject', 'hi\r\nBcc: victim@example.com');
    assert.ok(!/\r\n(?![ \t])/.test(folded));
    assert.equal(unfold(folded), 'Subject: hi Bcc: victim@example.com');
    assert.equal(foldHeader('Subject', 'a\r\n b'), 'Subject: a b');
  });

  it('unfold removes CRLF and bare LF before whitespace only', () => {
    assert.equal(unfold('a\r\n b\r\n\tc'), 'a b\tc');
    assert.equal(unfold('a\n b'), 'a b');
    assert.equal(unfold('a\r\nb'), 'a\r\nb');
  });
});

describe('parseHeaderBlock', () => {
  const message =
    'Return-Path: <a@b.c>\r\n' +
    'Subject: a folded\r\n  subject\r\n' +
    'From: =?utf-8?q?J=C3=B6?= <j@x.y>\r\n' +
    'X-Empty:\r\n' +
    'Obs-Space : value\r\n' +
    'Ünïcödé: skipped\r\n' +
    'To: ü@x.y\n' +
    '\r\n' +
    'Body: not a header\r\n';
  const buf = Buffer.from(message, 'utf8');

  it('splits fields with byte offsets and finds the body', () => {
    const block = parseHeaderBlock(buf);
    assert.equal(block.complete, true);
    assert.equal(buf.subarray(block.headerLength).toString(), 'Body: not a header\r\n');
    assert.deepEqual(
      block.fields.map((f) => [f.name, f.value]),
      [
        ['Return-Path', '<a@b.c>'],
        ['Subject', 'a folded  subject'],
        ['From', '=?utf-8?q?J=C3=B6?= <j@x.y>'],
        ['X-Empty', ''],
        ['Obs-Space', 'value'],
        ['To', 'ü@x.y'],
      ],
    );
    for (const f of block.fields) {
      const raw = buf.subarray(f.offset, f.offset + f.length).toString('utf8');
      assert.ok(raw.startsWith(f.name), raw);
      assert.ok(raw.endsWith('\n'), raw);
    }
  });

  it('is streaming-friendly: every prefix gives a prefix of the fields (split at every offset)', () => {
    const full = parseHeaderBlock(buf);
    for (let i = 0; i <= buf.length; i++) {
      const part = parseHeaderBlock(buf.subarray(0, i));
      if (part.complete) {
        assert.deepEqual(part, full, `prefix ${i}`);
        continue;
      }
      assert.deepEqual(part.fields, full.fields.slice(0, part.fields.length), `prefix ${i}`);
      assert.ok(part.headerLength <= i);
      // Resuming from headerLength with the rest gives the remaining fields.
      const resumed = parseHeaderBlock(buf.subarray(part.headerLength));
      assert.deepEqual(
        resumed.fields.map((f) => ({ ...f, offset: f.offset + part.headerLength })),
        full.fields.slice(part.fields.length),
        `resume at ${i}`,
      );
    }
  });

  it('handles a header with no body (final) and an empty header', () => {
    const noBody = Buffer.from('Subject: x\r\nTo: y');
    assert.equal(parseHeaderBlock(noBody).complete, false);
    const fin = parseHeaderBlock(noBody, { final: true });
    assert.equal(fin.complete, true);
    assert.equal(fin.headerLength, noBody.length);
    assert.deepEqual(fin.fields.map((f) => f.value), ['x', 'y']);
    const empty = parseHeaderBlock(Buffer.from('\r\nbody'));
    assert.deepEqual(empty, { fields: [], headerLength: 2, complete: true });
    assert.deepEqual(parseHeaderBlock(Buffer.from('\nbody')), { fields: [], headerLength: 1, complete: true });
  });

  it('skips mbox From lines and stray continuation lines', () => {
    const block = parseHeaderBlock(Buffer.from('From someone Tue\r\n stray\r\nSubject: s\r\n\r\n'));
    assert.deepEqual(block.fields.map((f) => f.name), ['Subject']);
  });
});

describe('formatDate', () => {
  it('writes rfc5322 dates in the zone asked for', () => {
    const d = new Date(Date.UTC(2025, 10, 25, 11, 21, 5));
    assert.equal(formatDate(d, 0), 'Tue, 25 Nov 2025 11:21:05 +0000');
    assert.equal(formatDate(d, 60), 'Tue, 25 Nov 2025 12:21:05 +0100');
    assert.equal(formatDate(d, -330), 'Tue, 25 Nov 2025 05:51:05 -0530');
    assert.equal(formatDate(new Date(Date.UTC(2024, 0, 1, 0, 0, 0)), -60), 'Sun, 31 Dec 2023 23:00:00 -0100');
    assert.match(formatDate(d), /^[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/);
  });
});

describe('formatReceived', () => {
  const date = new Date(Date.UTC(2025, 10, 25, 11, 21, 0));

  it('writes Postfix-style trace fields', () => {
    const r = formatReceived({
      from: 'client.example',
      fromIp: '192.0.2.1',
      fromHostname: 'mail.client.example',
      by: 'mx.example.org',
      with: 'ESMTPSA',
      id: '4ABC',
      for: 'rcpt@example.org',
      tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', bits: 256 },
      auth: 'user@example.org',
      date,
      offsetMinutes: 0,
    });
    assert.equal(
      r,
      'Received: from client.example (mail.client.example [192.0.2.1])\r\n' +
        '\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n' +
        '\t(Authenticated sender: user@example.org)\r\n' +
        '\tby mx.example.org (Fulmar) with ESMTPSA id 4ABC\r\n' +
        '\tfor <rcpt@example.org>; Tue, 25 Nov 2025 11:21:00 +0000\r\n',
    );
    for (const line of r.split('\r\n')) assert.ok(line.length <= 78, line);
  });

  it('writes unknown reverse DNS, IPv6 literals, and the date after id without FOR', () => {
    const r = formatReceived({ from: '[IPv6:2001:db8::1]', fromIp: '2001:DB8::1', by: 'mx', with: 'ESMTP', id: 'X', date, offsetMinutes: 0 });
    assert.equal(
      r,
      'Received: from [IPv6:2001:db8::1] (unknown [IPv6:2001:db8::1])\r\n' +
        '\tby mx (Fulmar) with ESMTP id X;\r\n' +
        '\tTue, 25 Nov 2025 11:21:00 +0000\r\n',
    );
    const mapped = formatReceived({ from: 'h', fromIp: '::ffff:192.0.2.9', by: 'mx', with: 'SMTP', date, offsetMinutes: 0 });
    assert.ok(mapped.includes('(unknown [192.0.2.9])'));
  });

  it('sanitises what the client chose (HELO name, user name)', () => {
    const r = formatReceived({
      from: 'evil\r\nBcc: x (y)',
      fromIp: '192.0.2.1',
      by: 'mx',
      with: 'ESMTPA',
      auth: 'us)er\r\n(x',
      date,
      offsetMinutes: 0,
    });
    const lines = r.split('\r\n');
    assert.equal(lines.pop(), '');
    assert.ok(lines.every((l, i) => i === 0 || /^[ \t]/.test(l)), r);
    assert.ok(lines[0]!.startsWith('Received: from evil??Bcc:?x??y? (unknown [192.0.2.1])'), lines[0]);
    assert.ok(r.includes('(Authenticated sender: us\\)er\\(x)'), r);
  });

  it('folds a clause that is too long at whitespace', () => {
    const r = formatReceived({
      from: 'a',
      fromIp: '192.0.2.1',
      by: 'mx',
      with: 'ESMTPS',
      tls: { version: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384 with some extremely long annotation here' },
      date,
      offsetMinutes: 0,
    });
    const lines = r.split('\r\n').slice(0, -1);
    for (const line of lines) assert.ok(line.length <= 78, line);
    assert.ok(lines.slice(1).every((l) => /^[ \t]/.test(l)));
  });
});
