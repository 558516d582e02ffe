// LIST patterns (rfc3501 6.3.8): `*`, `%`, references, INBOX, and linear time on hostile patterns.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { patternMatcher } from '../../src/imap/commands/mailboxes.js';

const m = (reference: string, pattern: string, name: string): boolean => patternMatcher(reference, pattern)(name);

test('* crosses the delimiter, % does not', () => {
  assert.equal(m('', '*', 'a/b'), true);
  assert.equal(m('', '%', 'a/b'), false);
  assert.equal(m('', '%', 'a'), true);
  assert.equal(m('', 'a/%', 'a/b'), true);
  assert.equal(m('', 'a%', 'a'), true);
  assert.equal(m('', 'a*b', 'axxb'), true);
  assert.equal(m('', 'a*b', 'axxbc'), false);
  assert.equal(m('', 'a%b', 'a/b'), false);
});

test('the reference is joined with the delimiter; INBOX matches case-insensitively', () => {
  assert.equal(m('Work', '%', 'Work/a'), true);
  assert.equal(m('Work/', '%', 'Work/a'), true);
  assert.equal(m('', 'inbox', 'INBOX'), true);
  assert.equal(m('', 'Inbox/%', 'INBOX/x'), true);
  assert.equal(m('', 'Entwürfe', 'Entwürfe'), true);
});

test('many wildcards against a long name take linear time (no backtracking)', () => {
  const start = performance.now();
  assert.equal(m('', '*'.repeat(40) + 'b', 'a'.repeat(500)), false);
  assert.equal(m('', '%*'.repeat(40) + 'b', 'a/'.repeat(250)), false);
  assert.ok(performance.now() - start < 200, 'fast');
});
