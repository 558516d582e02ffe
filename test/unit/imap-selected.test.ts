// The selected mailbox's sequence map and pending updates (src/imap/selected.ts), and sequence
// sets resolved against it (src/imap/sequence.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SelectedMailbox } from '../../src/imap/selected.js';
import { resolveSequenceSet, resolveUidSet } from '../../src/imap/sequence.js';
import type { MailEvent } from '../../src/store/types.js';

const RFC3501 = { condstore: false, qresync: false };

function box(uids: number[]): SelectedMailbox {
  return new SelectedMailbox({ mailboxId: 7, name: 'INBOX', uidValidity: 1, readOnly: false, uids });
}

function expunge(uid: number): MailEvent {
  return { type: 'expunge', accountId: 1, mailboxId: 7, uid, modSeq: 10 };
}

test('expunges are reported highest sequence number first, so each number is right when applied', () => {
  const b = box([3, 5, 8, 11, 12]);
  b.onEvent(expunge(5));
  b.onEvent(expunge(11));
  assert.deepEqual(b.takeUpdates(true, RFC3501), ['* 4 EXPUNGE\r\n', '* 2 EXPUNGE\r\n']);
  assert.deepEqual(b.uidArray(), [3, 8, 12]);
  assert.equal(b.seqOf(12), 3);
});

test('with QRESYNC enabled, expunges are one VANISHED with a UID set', () => {
  const b = box([1, 2, 3, 4, 9]);
  for (const uid of [2, 3, 4, 9]) b.onEvent(expunge(uid));
  assert.deepEqual(b.takeUpdates(true, { condstore: true, qresync: true }), ['* VANISHED 2:4,9\r\n']);
  assert.deepEqual(b.uidArray(), [1]);
});

test('while expunges are not allowed (FETCH by sequence number) they wait, and the sequence map does not move', () => {
  const b = box([1, 2, 3]);
  b.onEvent(expunge(2));
  b.onEvent({ type: 'flags', accountId: 1, mailboxId: 7, uid: 2, modSeq: 11, flags: ['\\Seen'] });
  b.onEvent({ type: 'flags', accountId: 1, mailboxId: 7, uid: 3, modSeq: 12, flags: ['\\Flagged'] });
  b.onEvent({ type: 'exists', accountId: 1, mailboxId: 7, uid: 4, modSeq: 13 });
  assert.deepEqual(b.takeUpdates(false, RFC3501), ['* 4 EXISTS\r\n', '* 3 FETCH (UID 3 FLAGS (\\Flagged))\r\n']);
  assert.deepEqual(b.uidArray(), [1, 2, 3, 4]);
  assert.deepEqual(b.takeUpdates(true, RFC3501), ['* 2 EXPUNGE\r\n']);
  assert.deepEqual(b.uidArray(), [1, 3, 4]);
});

test('events for other mailboxes, unknown UIDs and own flag changes are dropped; the latest flags win', () => {
  const b = box([1, 2]);
  b.onEvent({ type: 'exists', accountId: 1, mailboxId: 8, uid: 3, modSeq: 2 });
  b.onEvent(expunge(77));
  b.onEvent({ type: 'flags', accountId: 1, mailboxId: 7, uid: 1, modSeq: 5, flags: ['a'] });
  b.onEvent({ type: 'flags', accountId: 1, mailboxId: 7, uid: 1, modSeq: 6, flags: ['b'] });
  b.onEvent({ type: 'flags', accountId: 1, mailboxId: 7, uid: 2, modSeq: 7, flags: ['c'] });
  b.forgetOwnFlagChanges([{ uid: 2, modSeq: 7 }]);
  assert.deepEqual(b.takeUpdates(true, { condstore: true, qresync: false }), ['* 1 FETCH (UID 1 FLAGS (b) MODSEQ (6))\r\n']);
  assert.equal(b.hasPending, false);
});

test('a message added and expunged before the client heard of it is never shown', () => {
  const b = box([1]);
  b.onEvent({ type: 'exists', accountId: 1, mailboxId: 7, uid: 2, modSeq: 2 });
  b.onEvent(expunge(2));
  assert.deepEqual(b.takeUpdates(true, RFC3501), []);
  assert.deepEqual(b.uidArray(), [1]);
});

test('sequence sets: * is the last message, ranges are unordered, past the end is an error', () => {
  const b = box([10, 20, 30, 40]);
  const set = (ranges: Array<[number | '*', number | '*']>) => ({ kind: 'set' as const, ranges: ranges.map(([from, to]) => ({ from, to })) });
  assert.deepEqual(resolveSequenceSet(b, set([[3, 1]]), null), { ok: true, uids: [10, 20, 30] });
  assert.deepEqual(resolveSequenceSet(b, set([['*', '*'], [1, 1]]), null), { ok: true, uids: [10, 40] });
  assert.equal(resolveSequenceSet(b, set([[5, 5]]), null).ok, false);
  assert.equal(resolveSequenceSet(box([]), set([['*', '*']]), null).ok, false);
  assert.deepEqual(resolveUidSet(b, set([[15, 4294967295]]), null), [20, 30, 40]);
  assert.deepEqual(resolveUidSet(b, set([['*', 35]]), null), [40]);
  assert.deepEqual(resolveUidSet(b, { kind: 'saved' }, [20, 99]), [20]);
});

test('the UID list keeps runs: positions, lookups, ranges and removal agree with a plain array', async () => {
  const { UidList } = await import('../../src/imap/uid-list.js');
  const uids = [1, 2, 3, 7, 8, 20, 21, 22, 23, 40];
  const list = UidList.from(uids);
  assert.equal(list.length, uids.length);
  assert.equal(list.last, 40);
  uids.forEach((uid, i) => {
    assert.equal(list.at(i), uid);
    assert.equal(list.indexOf(uid), i);
  });
  assert.equal(list.indexOf(4), -1);
  assert.equal(list.indexOf(41), -1);
  assert.equal(list.at(10), undefined);
  const seen: Array<[number, number]> = [];
  list.forEachInRange(5, 21, (uid, index) => seen.push([uid, index]));
  assert.deepEqual(seen, [[7, 3], [8, 4], [20, 5], [21, 6]]);
  assert.deepEqual(list.remove(new Set([2, 8, 40, 99])), [1, 4, 9]);
  assert.deepEqual(list.toArray(), [1, 3, 7, 20, 21, 22, 23]);
  list.push(24);
  list.push(30);
  assert.deepEqual(list.toArray(), [1, 3, 7, 20, 21, 22, 23, 24, 30]);
  assert.equal(list.indexOf(24), 7);
});
