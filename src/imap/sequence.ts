/**
 * Turns a command's sequence set into the UIDs it names in the selected mailbox, without ever
 * expanding a range into numbers (`1:4294967295` is a common UID set).
 *
 * Standards: rfc9051 9 (seq-number, sequence-set: `*` is the largest number in use, ranges are
 * unordered); rfc5182 (`$` is the saved search result).
 */
import type { SeqNumber, SequenceSet } from './ast.js';
import type { SelectedMailbox } from './selected.js';

export type Resolved = { ok: true; uids: number[] } | { ok: false; error: string };

function bounds(from: SeqNumber, to: SeqNumber, star: number): [number, number] {
  const a = from === '*' ? star : from;
  const b = to === '*' ? star : to;
  return a <= b ? [a, b] : [b, a];
}

/** Message sequence numbers → UIDs, in sequence order. A number past the end is an error. */
export function resolveSequenceSet(box: SelectedMailbox, set: SequenceSet, saved: number[] | null): Resolved {
  if (set.kind === 'saved') return { ok: true, uids: savedUids(box, saved) };
  const count = box.count;
  const picked = new Uint8Array(count + 1);
  for (const range of set.ranges) {
    const [lo, hi] = bounds(range.from, range.to, count);
    if (lo < 1 || hi > count) {
      // rfc9051 9: `*` in an empty mailbox, or a number past the last message.
      return { ok: false, error: count === 0 ? 'No messages in the mailbox' : `Invalid message sequence number (the mailbox has ${count})` };
    }
    picked.fill(1, lo, hi + 1);
  }
  const uids: number[] = [];
  for (let seq = 1; seq <= count; seq++) if (picked[seq]) uids.push(box.uidAt(seq)!);
  return { ok: true, uids };
}

/** UIDs → the ones present, ascending. Absent UIDs are ignored (rfc9051 6.4.9). */
export function resolveUidSet(box: SelectedMailbox, set: SequenceSet, saved: number[] | null): number[] {
  if (set.kind === 'saved') return savedUids(box, saved);
  const ranges = set.ranges.map((r) => bounds(r.from, r.to, box.maxUid)).sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  let covered = 0; // UIDs up to here are emitted already: overlapping ranges add nothing twice
  for (const [lo, hi] of ranges) {
    if (hi <= covered) continue;
    box.forEachUidInRange(Math.max(lo, covered + 1), hi, (uid) => out.push(uid));
    covered = hi;
  }
  return out;
}

/** Matches a UID set without a mailbox (QRESYNC known-uids, VANISHED filters). */
export function uidSetContains(set: SequenceSet, uid: number, star: number): boolean {
  if (set.kind === 'saved') return false;
  return set.ranges.some((r) => {
    const [lo, hi] = bounds(r.from, r.to, star);
    return uid >= lo && uid <= hi;
  });
}

function savedUids(box: SelectedMailbox, saved: number[] | null): number[] {
  if (!saved) return [];
  return saved.filter((uid) => box.seqOf(uid) > 0);
}
