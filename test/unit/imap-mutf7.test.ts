import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeMailboxName, encodeMailboxName } from '../../src/imap/mutf7.js';

describe('modified UTF-7 (rfc3501 5.1.3)', () => {
  const pairs: Array<[string, string]> = [
    ['INBOX', 'INBOX'],
    ['', ''],
    ['&', '&-'],
    ['R&D', 'R&-D'],
    ['&&', '&-&-'],
    ['~peter/mail/台北/日本語', '~peter/mail/&U,BTFw-/&ZeVnLIqe-'], // rfc3501 5.1.3 example
    ['Entwürfe', 'Entw&APw-rfe'],
    ['Gelöschte Elemente', 'Gel&APY-schte Elemente'],
    ['Отправленные', '&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-'],
    ['😀', '&2D3eAA-'], // a surrogate pair
    ['a😀b€c', 'a&2D3eAA-b&IKw-c'],
    ['\u00e9\u00e9\u00e9', '&AOkA6QDp-'],
    ['tab\there', 'tab&AAk-here'], // control characters are encoded
    ['~/%*"\\', '~/%*"\\'],
  ];
  for (const [name, wire] of pairs) {
    it(`${JSON.stringify(name)} <-> ${wire}`, () => {
      assert.equal(encodeMailboxName(name), wire);
      assert.equal(decodeMailboxName(wire), name);
    });
  }

  it('rejects what is not canonical modified UTF-7', () => {
    for (const bad of [
      '&', // unterminated
      'a&AOk', // unterminated run
      '&AOk!-', // not base64
      '&AOk/-', // "/" is "," in modified base64
      '&AOk=-', // no padding
      '&AGE-', // "a" encoded: printable ASCII must represent itself
      '&ACY-', // "&" encoded instead of "&-"
      '&AOkA6Q-&AOk-', // two adjacent runs: the canonical form merges them
      '&AOl-', // non-zero padding bits
      '&AOkA-', // a partial UTF-16 unit (odd octets)
      '&2D0-', // a lone high surrogate
      '&3gA-', // a lone low surrogate
      'caf\u00e9', // 8-bit character on the wire
      'a\tb', // control character on the wire
      'a\x7fb',
    ]) {
      assert.equal(decodeMailboxName(bad), null, JSON.stringify(bad));
    }
  });

  it('round-trips random strings, and decode never throws on random input', () => {
    const alphabet = 'aZ&-+,/ é€😀\u0000\u007f台';
    for (let n = 0; n < 2000; n++) {
      let s = '';
      const len = Math.floor(Math.random() * 12);
      for (let i = 0; i < len; i++) s += [...alphabet][Math.floor(Math.random() * [...alphabet].length)];
      assert.equal(decodeMailboxName(encodeMailboxName(s)), s, JSON.stringify(s));
      let junk = '';
      for (let i = 0; i < len; i++) junk += String.fromCharCode(0x20 + Math.floor(Math.random() * 0x5f));
      const d = decodeMailboxName(junk);
      if (d !== null) assert.equal(encodeMailboxName(d), junk);
    }
  });

  it('decodes a long run without a stack overflow', () => {
    const name = 'é'.repeat(300_000);
    assert.equal(decodeMailboxName(encodeMailboxName(name)), name);
  });
});
