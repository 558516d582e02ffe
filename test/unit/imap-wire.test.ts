import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SequenceSet } from '../../src/imap/ast.js';
import {
  astring,
  expandSequenceSet,
  flagList,
  formatInternalDate,
  formatSequenceSet,
  formatSequenceSetAst,
  imapString,
  literal,
  mailboxName,
  nstring,
  quoted,
  sequenceSetIncludes,
} from '../../src/imap/wire.js';

const set = (...ranges: Array<[number | '*', number | '*']>): SequenceSet => ({ kind: 'set', ranges: ranges.map(([from, to]) => ({ from, to })) });

describe('wire: strings', () => {
  it('quoted escapes backslash and double quote only', () => {
    assert.equal(quoted('abc'), '"abc"');
    assert.equal(quoted(''), '""');
    assert.equal(quoted('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(quoted('a b\tc'), '"a b\tc"');
  });

  it('literal counts UTF-8 bytes, not characters, and drops NUL', () => {
    assert.equal(literal('abc'), '{3}\r\nabc');
    assert.equal(literal('é'), '{2}\r\né');
    assert.equal(literal('😀'), '{4}\r\n😀');
    assert.equal(literal('a\0b'), '{2}\r\nab');
  });

  it('imapString: quoted unless CR, LF, NUL or (without UTF-8) 8-bit; never an atom', () => {
    assert.equal(imapString('abc'), '"abc"');
    assert.equal(imapString(''), '""');
    assert.equal(imapString('NIL'), '"NIL"');
    assert.equal(imapString('a"b'), '"a\\"b"');
    assert.equal(imapString('a\r\nb'), '{4}\r\na\r\nb');
    assert.equal(imapString('a\nb'), '{3}\r\na\nb');
    assert.equal(imapString('Grüße'), '{7}\r\nGrüße');
    assert.equal(imapString('Grüße', { utf8: true }), '"Grüße"');
    assert.equal(imapString('Grüße\r\n', { utf8: true }), '{9}\r\nGrüße\r\n');
  });

  it('nstring: NIL for null and undefined', () => {
    assert.equal(nstring(null), 'NIL');
    assert.equal(nstring(undefined), 'NIL');
    assert.equal(nstring('NIL'), '"NIL"');
    assert.equal(nstring('x'), '"x"');
  });

  it('astring: an atom when every character is an ASTRING-CHAR, never NIL', () => {
    assert.equal(astring('INBOX'), 'INBOX');
    assert.equal(astring('a]b'), 'a]b'); // resp-specials are ASTRING-CHARs
    assert.equal(astring('nil'), '"nil"');
    assert.equal(astring(''), '""');
    for (const s of ['a b', 'a(b', 'a)b', 'a{b', 'a%b', 'a*b', 'a"b', 'a\\b']) assert.ok(astring(s).startsWith('"'), s);
    assert.equal(astring('ü'), '{2}\r\nü');
    assert.equal(astring('ü', { utf8: true }), '"ü"');
    assert.equal(astring('a\x01b'), '"a\x01b"');
  });

  it('flagList', () => {
    assert.equal(flagList([]), '()');
    assert.equal(flagList(['\\Seen', '$Junk']), '(\\Seen $Junk)');
  });

  it('mailboxName: modified UTF-7 without UTF-8, INBOX as an atom', () => {
    assert.equal(mailboxName('INBOX'), 'INBOX');
    assert.equal(mailboxName('inbox'), 'INBOX');
    assert.equal(mailboxName('Sent'), 'Sent');
    assert.equal(mailboxName('Entwürfe'), 'Entw&APw-rfe');
    assert.equal(mailboxName('Entwürfe', { utf8: true }), '"Entwürfe"');
    assert.equal(mailboxName('R&D'), 'R&-D');
    assert.equal(mailboxName('My Folder'), '"My Folder"');
    assert.equal(mailboxName('a/b*'), '"a/b*"');
    assert.equal(mailboxName('Nil'), '"Nil"');
  });
});

describe('wire: dates', () => {
  it('formatInternalDate: rfc9051 date-time with quotes', () => {
    const d = new Date(Date.UTC(1996, 6, 17, 9, 44, 25));
    assert.equal(formatInternalDate(d), '"17-Jul-1996 09:44:25 +0000"');
    assert.equal(formatInternalDate(d, -420), '"17-Jul-1996 02:44:25 -0700"');
    assert.equal(formatInternalDate(d, 330), '"17-Jul-1996 15:14:25 +0530"');
    assert.equal(formatInternalDate(new Date(Date.UTC(2024, 0, 5, 0, 0, 0))), '"05-Jan-2024 00:00:00 +0000"');
    assert.match(formatInternalDate(new Date(NaN)), /^"01-Jan-1970 /);
  });
});

describe('wire: sequence sets', () => {
  it('formatSequenceSet compresses ascending runs in the given order', () => {
    assert.equal(formatSequenceSet([1, 2, 3, 7, 9, 10]), '1:3,7,9:10');
    assert.equal(formatSequenceSet([5]), '5');
    assert.equal(formatSequenceSet([]), '');
    assert.equal(formatSequenceSet([3, 4, 1, 2]), '3:4,1:2');
    assert.equal(formatSequenceSet([4, 3]), '4,3');
  });

  it('expandSequenceSet: ranges unordered, * is max, sorted and unique', () => {
    assert.deepEqual(expandSequenceSet(set([1, 3], [2, 2], [7, 5]), 10, null), [1, 2, 3, 5, 6, 7]);
    assert.deepEqual(expandSequenceSet(set([8, '*']), 10, null), [8, 9, 10]);
    assert.deepEqual(expandSequenceSet(set(['*', 8]), 10, null), [8, 9, 10]);
    assert.deepEqual(expandSequenceSet(set(['*', '*']), 10, null), [10]);
  });

  it('expandSequenceSet: numbers past max are returned once, not as runs', () => {
    assert.deepEqual(expandSequenceSet(set([1, 4294967295]), 3, null), [1, 2, 3, 4294967295]);
    assert.deepEqual(expandSequenceSet(set([12, '*']), 10, null), [10, 12]); // rfc9051 6.4.9: 559:* includes the last
    assert.deepEqual(expandSequenceSet(set([20, 30]), 10, null), [20, 30]);
    assert.deepEqual(expandSequenceSet(set([1, '*']), 0, null), [1]);
    assert.deepEqual(expandSequenceSet(set(['*', '*']), 0, null), []);
  });

  it('expandSequenceSet: $ is the saved result', () => {
    assert.deepEqual(expandSequenceSet({ kind: 'saved' }, 10, [5, 2, 5]), [2, 5]);
    assert.deepEqual(expandSequenceSet({ kind: 'saved' }, 10, null), []);
  });

  it('sequenceSetIncludes', () => {
    const s = set([1, 3], [9, '*']);
    assert.equal(sequenceSetIncludes(s, 2, 100, null), true);
    assert.equal(sequenceSetIncludes(s, 5, 100, null), false);
    assert.equal(sequenceSetIncludes(s, 50, 100, null), true);
    assert.equal(sequenceSetIncludes(set([500, '*']), 450, 450, null), true);
    assert.equal(sequenceSetIncludes(set([500, '*']), 400, 450, null), false);
    assert.equal(sequenceSetIncludes({ kind: 'saved' }, 4, 10, [4]), true);
    assert.equal(sequenceSetIncludes({ kind: 'saved' }, 4, 10, null), false);
  });

  it('formatSequenceSetAst', () => {
    assert.equal(formatSequenceSetAst(set([1, 3], [5, 5], [7, '*'])), '1:3,5,7:*');
    assert.equal(formatSequenceSetAst({ kind: 'saved' }), '$');
  });
});
