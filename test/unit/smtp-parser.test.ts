import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LineReader } from '../../src/net/line-reader.js';
import { type ParseOptions, type ParseResult, decodeXtext, encodeXtext, parseCommand } from '../../src/smtp/server/parser.js';

function ok(line: string, options?: ParseOptions) {
  const r = parseCommand(line, options);
  assert.ok(r.ok, `${line}: ${r.ok ? '' : JSON.stringify(r.reply)}`);
  return r.command;
}

function err(line: string, code: number, enhanced: string, options?: ParseOptions) {
  const r = parseCommand(line, options);
  assert.ok(!r.ok, `${line} should fail`);
  assert.equal(r.reply.code, code, `${line}: ${r.reply.text}`);
  assert.equal(r.reply.enhanced, enhanced, `${line}: ${r.reply.text}`);
  return r;
}

describe('parseCommand: verbs', () => {
  it('recognises verbs case-insensitively', () => {
    assert.deepEqual(ok('data'), { verb: 'DATA' });
    assert.deepEqual(ok('Quit'), { verb: 'QUIT' });
    assert.deepEqual(ok('RSET'), { verb: 'RSET' });
    assert.deepEqual(ok('starttls'), { verb: 'STARTTLS' });
    assert.deepEqual(ok('NOOP'), { verb: 'NOOP', text: '' });
    assert.deepEqual(ok('NOOP hello there'), { verb: 'NOOP', text: 'hello there' });
    assert.deepEqual(ok('HELP'), { verb: 'HELP', topic: '' });
    assert.deepEqual(ok('HELP MAIL'), { verb: 'HELP', topic: 'MAIL' });
    assert.deepEqual(ok('VRFY postmaster'), { verb: 'VRFY', text: 'postmaster' });
    assert.deepEqual(ok('EXPN list'), { verb: 'EXPN', text: 'list' });
  });

  it('rejects unknown verbs with 500 5.5.2', () => {
    const r = err('FOO bar', 500, '5.5.2');
    assert.equal(r.verb, null);
    assert.equal(r.reply.text, 'Unrecognized command');
    err('', 500, '5.5.2');
    err('GET / HTTP/1.1', 500, '5.5.2');
    err('MAILFROM:<a@b>', 500, '5.5.2');
  });

  it('rejects parameters where none are allowed, and control characters', () => {
    assert.equal(err('DATA now', 501, '5.5.4').verb, 'DATA');
    err('STARTTLS x', 501, '5.5.4');
    err('QUIT now', 501, '5.5.4');
    err('RSET x', 501, '5.5.4');
    err('VRFY', 501, '5.5.4');
    err('NOOP \x00', 501, '5.5.2');
    err('EHLO a\tb', 501, '5.5.2');
    err('EHLO \ufffd', 501, '5.5.2');
  });
});

describe('parseCommand: EHLO/HELO', () => {
  it('parses domains and address literals', () => {
    assert.deepEqual(ok('EHLO Mail.Example.COM'), {
      verb: 'EHLO',
      host: { kind: 'domain', domain: 'mail.example.com', raw: 'Mail.Example.COM' },
    });
    const v4 = ok('EHLO [192.0.2.1]');
    assert.ok(v4.verb === 'EHLO' && v4.host.kind === 'address-literal' && v4.host.literal.family === 'ipv4');
    const v6 = ok('ehlo [IPv6:2001:db8::1]');
    assert.ok(v6.verb === 'EHLO' && v6.host.kind === 'address-literal' && v6.host.literal.value === '2001:db8::1');
    assert.equal(ok('HELO localhost').verb, 'HELO');
  });

  it('marks what real clients send that is not a domain, and needs an argument', () => {
    const c = ok('EHLO my_pc');
    assert.ok(c.verb === 'EHLO' && c.host.kind === 'nonconforming' && c.host.raw === 'my_pc');
    const bad = ok('EHLO [300.1.1.1]');
    assert.ok(bad.verb === 'EHLO' && bad.host.kind === 'nonconforming');
    err('EHLO', 501, '5.5.4');
    err('HELO ', 501, '5.5.4');
  });
});

describe('parseCommand: MAIL FROM', () => {
  it('parses a path and normalises the domain', () => {
    const c = ok('MAIL FROM:<John.Doe@Example.COM>');
    assert.ok(c.verb === 'MAIL');
    assert.deepEqual(c.from, {
      localPart: 'John.Doe',
      domain: 'example.com',
      address: 'John.Doe@example.com',
      raw: 'John.Doe@Example.COM',
      utf8: false,
    });
    assert.deepEqual(c.params, { smtputf8: false });
  });

  it('accepts the null reverse-path, lower-case keywords and one space after the colon', () => {
    const c = ok('mail from:<>');
    assert.ok(c.verb === 'MAIL' && c.from === null);
    const d = ok('MAIL FROM: <a@b.c>');
    assert.ok(d.verb === 'MAIL' && d.from?.address === 'a@b.c');
    err('MAIL FROM:  <a@b.c>', 501, '5.1.7');
    err('MAIL FROM:a@b.c', 501, '5.1.7');
    err('MAIL  FROM:<a@b.c>', 501, '5.5.4');
    err('MAIL FROM <a@b.c>', 501, '5.5.4');
    err('MAIL FROM:<a@b.c> ', 501, '5.5.4');
    err('MAIL FROM:<a@b.c>x', 501, '5.5.4');
    err('MAIL', 501, '5.5.4');
  });

  it('strips source routes (rfc5321 4.1.1.3, appendix C)', () => {
    const c = ok('MAIL FROM:<@relay1.example,@relay2.example:user@final.example>');
    assert.ok(c.verb === 'MAIL' && c.from !== null);
    assert.equal(c.from.address, 'user@final.example');
    assert.equal(c.from.raw, '@relay1.example,@relay2.example:user@final.example');
    err('MAIL FROM:<@relay1.example user@final.example>', 501, '5.1.7');
    err('MAIL FROM:<@bad_domain:user@final.example>', 501, '5.1.7');
  });

  it('handles quoted local parts and address literals', () => {
    const q = ok('MAIL FROM:<"john doe"@example.com>');
    assert.ok(q.verb === 'MAIL' && q.from !== null);
    assert.equal(q.from.localPart, 'john doe');
    assert.equal(q.from.address, '"john doe"@example.com');
    const unneeded = ok('MAIL FROM:<"john"@example.com>');
    assert.ok(unneeded.verb === 'MAIL' && unneeded.from?.address === 'john@example.com');
    const gt = ok('MAIL FROM:<"a>b"@example.com>');
    assert.ok(gt.verb === 'MAIL' && gt.from?.localPart === 'a>b');
    const lit = ok('MAIL FROM:<user@[192.0.2.7]>');
    assert.ok(lit.verb === 'MAIL' && lit.from?.domain === '[192.0.2.7]');
    const v6 = ok('MAIL FROM:<user@[IPv6:2001:DB8::1]>');
    assert.ok(v6.verb === 'MAIL' && v6.from?.domain === '[IPv6:2001:db8::1]');
  });

  it('rejects bad syntax with 501 5.1.7 and over-long parts with 553', () => {
    err('MAIL FROM:<a..b@example.com>', 501, '5.1.7');
    err('MAIL FROM:<.a@example.com>', 501, '5.1.7');
    err('MAIL FROM:<a@-example.com>', 501, '5.1.7');
    err('MAIL FROM:<a@example..com>', 501, '5.1.7');
    err('MAIL FROM:<a@example.com.>', 501, '5.1.7');
    err('MAIL FROM:<a>', 501, '5.1.7');
    err('MAIL FROM:<a@>', 501, '5.1.7');
    err('MAIL FROM:<a b@example.com>', 501, '5.1.7');
    err('MAIL FROM:<a@b.c', 501, '5.1.7');
    err('MAIL FROM:<"unterminated@example.com>', 501, '5.1.7');
    err(`MAIL FROM:<${'a'.repeat(65)}@example.com>`, 553, '5.1.7');
    ok(`MAIL FROM:<${'a'.repeat(64)}@example.com>`);
    const longDomain = `${'a'.repeat(60)}.`.repeat(4) + 'com'; // 247 octets
    ok(`MAIL FROM:<a@${longDomain}>`);
    err(`MAIL FROM:<${'a'.repeat(10)}@${longDomain}>`, 501, '5.1.7'); // path over 256
    err(`MAIL FROM:<a@${'b'.repeat(64)}.com>`, 501, '5.1.7'); // label over 63
  });

  it('parses MAIL parameters', () => {
    const c = ok('MAIL FROM:<a@b.c> SIZE=12345 BODY=8bitmime SMTPUTF8 AUTH=<> RET=HDRS ENVID=QQ+2B1');
    assert.ok(c.verb === 'MAIL');
    assert.deepEqual(c.params, { size: 12345, body: '8BITMIME', smtputf8: true, auth: null, ret: 'HDRS', envid: 'QQ+1' });
    const a = ok('MAIL FROM:<a@b.c> AUTH=user+40example.com');
    assert.ok(a.verb === 'MAIL' && a.params.auth === 'user@example.com');
    const big = ok('MAIL FROM:<a@b.c> SIZE=99999999999999999999');
    assert.ok(big.verb === 'MAIL' && big.params.size === Number.MAX_SAFE_INTEGER);
    assert.ok(ok('MAIL FROM:<> BODY=BINARYMIME').verb === 'MAIL');
  });

  it('rejects unknown parameters with 555 and bad values with 501', () => {
    err('MAIL FROM:<a@b.c> FOO=bar', 555, '5.5.4');
    err('MAIL FROM:<a@b.c> XYZ', 555, '5.5.4');
    err('MAIL FROM:<a@b.c> NOTIFY=NEVER', 555, '5.5.4');
    err('MAIL FROM:<a@b.c> SIZE=abc', 501, '5.5.4');
    err('MAIL FROM:<a@b.c> SIZE', 501, '5.5.4');
    err('MAIL FROM:<a@b.c> SIZE=1 SIZE=2', 501, '5.5.4');
    err('MAIL FROM:<a@b.c> BODY=9BIT', 501, '5.5.4');
    err('MAIL FROM:<a@b.c> SMTPUTF8=yes', 501, '5.5.4');
    err('MAIL FROM:<a@b.c> RET=ALL', 501, '5.5.4');
    err('MAIL FROM:<a@b.c> ENVID=a+zz', 501, '5.5.4');
    err(`MAIL FROM:<a@b.c> ENVID=${'x'.repeat(101)}`, 501, '5.5.4');
    err('MAIL FROM:<a@b.c> AUTH=a=b', 501, '5.5.4');
    err('MAIL FROM:<a@b.c>  SIZE=1', 501, '5.5.4');
    err('MAIL FROM:<a@b.c> =1', 501, '5.5.4');
  });

  it('allows UTF-8 only with SMTPUTF8 (rfc6531)', () => {
    err('MAIL FROM:<jöhn@exämple.com>', 553, '5.6.7');
    const c = ok('MAIL FROM:<jöhn@Exämple.com> SMTPUTF8');
    assert.ok(c.verb === 'MAIL' && c.from !== null);
    assert.equal(c.from.utf8, true);
    assert.equal(c.from.domain, 'exämple.com');
    assert.equal(c.from.localPart, 'jöhn');
  });
});

describe('parseCommand: RCPT TO', () => {
  it('parses paths and parameters', () => {
    const c = ok('RCPT TO:<Bob@Example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+40Example.org');
    assert.ok(c.verb === 'RCPT');
    assert.equal(c.to.address, 'Bob@example.org');
    assert.deepEqual(c.params, {
      notify: { never: false, success: true, failure: true, delay: false },
      orcpt: { addrType: 'rfc822', address: 'Bob@Example.org' },
    });
    const n = ok('rcpt to: <b@c.d> notify=never');
    assert.ok(n.verb === 'RCPT' && n.params.notify?.never === true);
    const u = ok('RCPT TO:<b@c.d> ORCPT=utf-8;j\\x{00F6}hn@c.d');
    assert.ok(u.verb === 'RCPT' && u.params.orcpt?.address === 'jöhn@c.d');
  });

  it('accepts <postmaster> without a domain, and a source route', () => {
    const c = ok('RCPT TO:<Postmaster>');
    assert.ok(c.verb === 'RCPT');
    assert.equal(c.to.domain, '');
    assert.equal(c.to.localPart, 'Postmaster');
    const d = ok('RCPT TO:<@hop.example:u@final.example>');
    assert.ok(d.verb === 'RCPT' && d.to.address === 'u@final.example');
    err('RCPT TO:<user>', 501, '5.1.3');
  });

  it('rejects bad recipients with 501/553 5.1.3, and NOTIFY/ORCPT errors', () => {
    err('RCPT TO:<>', 501, '5.1.3');
    err('RCPT TO:<a@@b>', 501, '5.1.3');
    err(`RCPT TO:<${'x'.repeat(65)}@b.c>`, 553, '5.1.3');
    err('RCPT TO:<b@c.d> NOTIFY=NEVER,SUCCESS', 501, '5.5.4');
    err('RCPT TO:<b@c.d> NOTIFY=SUCCESS,SUCCESS', 501, '5.5.4');
    err('RCPT TO:<b@c.d> NOTIFY=', 501, '5.5.4');
    err('RCPT TO:<b@c.d> ORCPT=rfc822', 501, '5.5.4');
    err('RCPT TO:<b@c.d> ORCPT=;a@b', 501, '5.5.4');
    err('RCPT TO:<b@c.d> SIZE=1', 555, '5.5.4');
    err('RCPT TO:b@c.d', 501, '5.1.3');
  });

  it('takes UTF-8 only when the transaction has SMTPUTF8', () => {
    err('RCPT TO:<ü@c.d>', 553, '5.6.7');
    const c = ok('RCPT TO:<ü@c.d>', { smtputf8: true });
    assert.ok(c.verb === 'RCPT' && c.to.utf8);
  });
});

describe('parseCommand: BDAT and AUTH', () => {
  it('parses BDAT', () => {
    assert.deepEqual(ok('BDAT 1000'), { verb: 'BDAT', size: 1000, last: false });
    assert.deepEqual(ok('bdat 0 last'), { verb: 'BDAT', size: 0, last: true });
    assert.deepEqual(ok('BDAT 007 LAST'), { verb: 'BDAT', size: 7, last: true });
    err('BDAT', 501, '5.5.4');
    err('BDAT -1', 501, '5.5.4');
    err('BDAT 10 FIRST', 501, '5.5.4');
    err('BDAT 10  LAST', 501, '5.5.4');
    err('BDAT 1234567890123456', 501, '5.5.4');
  });

  it('parses AUTH', () => {
    assert.deepEqual(ok('AUTH plain'), { verb: 'AUTH', mechanism: 'PLAIN', initialResponse: null });
    assert.deepEqual(ok('AUTH PLAIN AGpvaG4Ac2VjcmV0'), { verb: 'AUTH', mechanism: 'PLAIN', initialResponse: 'AGpvaG4Ac2VjcmV0' });
    assert.deepEqual(ok('AUTH PLAIN ='), { verb: 'AUTH', mechanism: 'PLAIN', initialResponse: '=' });
    err('AUTH', 501, '5.5.4');
    err('AUTH PLAIN a b', 501, '5.5.4');
    err('AUTH THIS-NAME-IS-WAY-TOO-LONG x', 501, '5.5.4');
    err('AUTH PLAIN not*base64', 501, '5.5.2');
    err('AUTH PLAIN abc', 501, '5.5.2');
  });
});

describe('xtext', () => {
  it('decodes and encodes rfc3461 xtext', () => {
    assert.equal(decodeXtext('a+2Bb+3Dc'), 'a+b=c');
    assert.equal(decodeXtext('a+2b'), null);
    assert.equal(decodeXtext('a=b'), null);
    assert.equal(decodeXtext('a b'), null);
    assert.equal(decodeXtext('+C3+A9'), 'é');
    assert.equal(encodeXtext('a+b=c d'), 'a+2Bb+3Dc+20d');
    assert.equal(decodeXtext(encodeXtext('jöhn+x@y')), 'jöhn+x@y');
  });
});

describe('parseCommand through the LineReader: split at every offset', () => {
  const lines = [
    'EHLO client.example',
    'MAIL FROM:<"quoted local"@Example.com> SIZE=100 BODY=8BITMIME',
    'RCPT TO:<@route.example:user@example.com> NOTIFY=DELAY ORCPT=rfc822;user+40example.com',
    'RCPT TO:<Postmaster>',
    'BDAT 42 LAST',
    'AUTH PLAIN AHVzZXIAcGFzcw==',
    'MAIL FROM:<bad..dots@example.com>',
    'XYZZY',
  ];
  const input = Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'utf8');

  function parseAll(chunks: Buffer[]): ParseResult[] {
    const reader = new LineReader({ maxLineLength: 510 });
    const out: ParseResult[] = [];
    for (const c of chunks) {
      reader.push(c);
      for (let r = reader.next(); r !== null; r = reader.next()) {
        assert.ok(!r.tooLong && r.crlf);
        out.push(parseCommand(r.line.toString('utf8')));
      }
    }
    return out;
  }

  it('gives the same commands however the bytes arrive', () => {
    const whole = parseAll([input]);
    assert.equal(whole.length, lines.length);
    assert.deepEqual(
      whole.map((r) => r.ok),
      [true, true, true, true, true, true, false, false],
    );
    for (let i = 0; i <= input.length; i++) {
      assert.deepEqual(parseAll([input.subarray(0, i), input.subarray(i)]), whole, `split at ${i}`);
    }
  });
});
