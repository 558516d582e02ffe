import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  isDomainName,
  isDotString,
  isValidAddrSpec,
  normalizeAddress,
  parseAddressList,
  parseAddressLiteral,
  parseMailbox,
  quoteLocalPart,
  splitAddress,
} from '../../src/message/address.js';

describe('parseMailbox (rfc5321)', () => {
  it('parses dot-strings, quoted strings and literals', () => {
    assert.deepEqual(parseMailbox('User.Name+tag@Example.COM', { utf8: false }), {
      ok: true,
      mailbox: { localPart: 'User.Name+tag', domain: 'example.com', address: 'User.Name+tag@example.com' },
    });
    const q = parseMailbox('"a\\"b c"@x.org', { utf8: false });
    assert.ok(q.ok);
    assert.equal(q.mailbox.localPart, 'a"b c');
    assert.equal(q.mailbox.address, '"a\\"b c"@x.org');
    const lit = parseMailbox('x@[10.0.0.1]', { utf8: false });
    assert.ok(lit.ok && lit.mailbox.domain === '[10.0.0.1]');
  });

  it('reports the reason of a failure', () => {
    const reason = (s: string, utf8 = false) => {
      const r = parseMailbox(s, { utf8 });
      return r.ok ? 'ok' : r.reason;
    };
    assert.equal(reason('a..b@x.org'), 'syntax');
    assert.equal(reason('@x.org'), 'syntax');
    assert.equal(reason('a@'), 'syntax');
    assert.equal(reason('a@x_y.org'), 'syntax');
    assert.equal(reason('a@[1.2.3]'), 'syntax');
    assert.equal(reason(`${'a'.repeat(65)}@x.org`), 'local-part-too-long');
    assert.equal(reason(`a@${'b.'.repeat(128)}org`), 'domain-too-long');
    assert.equal(reason('ä@x.org'), 'non-ascii');
    assert.equal(reason('ä@x.org', true), 'ok');
    assert.equal(reason('a@bücher.de', true), 'ok');
    assert.equal(reason('"\u0001"@x.org'), 'syntax');
  });
});

describe('address helpers', () => {
  it('isDotString and isDomainName', () => {
    assert.ok(isDotString("a!#$%&'*+-/=?^_`{|}~z"));
    assert.ok(!isDotString('a.'));
    assert.ok(!isDotString(''));
    assert.ok(isDomainName('xn--bcher-kva.de'));
    assert.ok(!isDomainName('bücher.de'));
    assert.ok(isDomainName('bücher.de', true));
    assert.ok(!isDomainName('-a.de'));
    assert.ok(isDomainName('a-b.de'));
    assert.ok(isDomainName('3com.com'));
  });

  it('parseAddressLiteral', () => {
    assert.equal(parseAddressLiteral('[127.0.0.1]')?.family, 'ipv4');
    assert.equal(parseAddressLiteral('[256.0.0.1]'), null);
    assert.equal(parseAddressLiteral('[IPv6:::1]')?.family, 'ipv6');
    assert.equal(parseAddressLiteral('[IPv6:fe80::1%eth0]'), null);
    assert.equal(parseAddressLiteral('[IPv6:1.2.3.4]'), null);
    assert.equal(parseAddressLiteral('[x-tag:stuff]')?.family, 'general');
    assert.equal(parseAddressLiteral('127.0.0.1'), null);
  });

  it('splitAddress and normalizeAddress', () => {
    assert.deepEqual(splitAddress('"a@b"@c.d'), { localPart: '"a@b"', domain: 'c.d' });
    assert.deepEqual(splitAddress('postmaster'), { localPart: 'postmaster', domain: '' });
    assert.equal(normalizeAddress('John@EXAMPLE.Com'), 'John@example.com');
    assert.equal(normalizeAddress('"john"@Example.com'), 'john@example.com');
    assert.equal(normalizeAddress('"john doe"@Example.com'), '"john doe"@example.com');
    assert.equal(normalizeAddress('a@XN--BCHER-KVA.DE'), 'a@xn--bcher-kva.de');
    assert.equal(normalizeAddress('postmaster'), 'postmaster');
    assert.equal(quoteLocalPart('a b'), '"a b"');
    assert.equal(quoteLocalPart('a.b'), 'a.b');
  });

  it('isValidAddrSpec (rfc5322, strict)', () => {
    assert.ok(isValidAddrSpec('a@b.c'));
    assert.ok(isValidAddrSpec('"a b"@c'));
    assert.ok(isValidAddrSpec('a@[1.2.3.4]'));
    assert.ok(!isValidAddrSpec('a@'));
    assert.ok(!isValidAddrSpec('a b@c'));
    assert.ok(!isValidAddrSpec('abc'));
  });
});

describe('parseAddressList (rfc5322, lenient)', () => {
  const cases: Array<[string, ReturnType<typeof parseAddressList>]> = [
    ['a@b.c', [{ name: '', address: 'a@b.c' }]],
    ['John Doe <john@example.com>', [{ name: 'John Doe', address: 'john@example.com' }]],
    ['"Doe, John" <john@example.com>, jane@example.com', [
      { name: 'Doe, John', address: 'john@example.com' },
      { name: '', address: 'jane@example.com' },
    ]],
    ['john@example.com (John Doe)', [{ name: 'John Doe', address: 'john@example.com' }]],
    ['=?UTF-8?B?SsO2aG4=?= <j@x.y>', [{ name: '=?UTF-8?B?SsO2aG4=?=', address: 'j@x.y' }]],
    ['Team: a@x.y, B <b@x.y>;, c@x.y', [
      { name: '', address: 'a@x.y', group: 'Team' },
      { name: 'B', address: 'b@x.y', group: 'Team' },
      { name: '', address: 'c@x.y' },
    ]],
    ['undisclosed-recipients:;', []],
    ['"a b"@example.com', [{ name: '', address: '"a b"@example.com' }]],
    ['<@route.example:user@example.com>', [{ name: '', address: 'user@example.com' }]],
    ['John Q. Public <jqp@x.y>', [{ name: 'John Q. Public', address: 'jqp@x.y' }]],
    ['john . doe @ example . com', [{ name: '', address: 'john.doe@example.com' }]],
    ['Name user@host.example', [{ name: 'Name', address: 'user@host.example' }]],
    ['a@b.c; d@e.f', [{ name: '', address: 'a@b.c' }, { name: '', address: 'd@e.f' }]],
    ['Broken <a@b.c', [{ name: 'Broken', address: 'a@b.c' }]],
    ['"Folded\r\n Name" <a@b.c>', [{ name: 'Folded Name', address: 'a@b.c' }]],
    ['(only a comment)', []],
    ['', []],
    [',,a@b.c,,', [{ name: '', address: 'a@b.c' }]],
    ['A (nested (comment)) <a@b.c>', [{ name: 'A', address: 'a@b.c' }]],
  ];
  for (const [input, expected] of cases) {
    it(JSON.stringify(input), () => {
      assert.deepEqual(parseAddressList(input), expected);
    });
  }

  it('is linear on hostile input', () => {
    const start = Date.now();
    parseAddressList('('.repeat(100000));
    parseAddressList('<'.repeat(100000));
    parseAddressList('a,'.repeat(50000));
    parseAddressList('"'.repeat(100001));
    assert.ok(Date.now() - start < 3000);
  });

  it('gives the same result however the field is folded (at every whitespace)', () => {
    const value = 'Group: "Doe, J" <j@x.y> (a comment), k@x.y;, =?utf-8?q?A?= <a@b.c>, x@y.z (Ex Why)';
    const whole = parseAddressList(value);
    assert.equal(whole.length, 4);
    for (let i = 0; i < value.length; i++) {
      if (value[i] !== ' ') continue;
      const folded = `${value.slice(0, i)}\r\n${value.slice(i)}`; // rfc5322 2.2.3: CRLF before WSP
      assert.deepEqual(parseAddressList(folded), whole, `folded at ${i}`);
    }
  });
});
