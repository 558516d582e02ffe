/**
 * Reading message rows by a set of UIDs without binding one parameter per UID (SQLite allows
 * 32,766): the sorted UIDs are cut into spans, each read with `uid BETWEEN first AND last` on the
 * (mailbox_id, uid) index. UIDs less than SPAN_GAP apart share a span, whose rows are then
 * filtered, so `1:*` is one range scan and a sparse set costs one lookup per UID.
 *
 * Invariant: rows come back in ascending UID order, each at most once.
 */

/** Neighbouring UIDs this close are read in one scan (the rows between them are skipped in JS). */
const SPAN_GAP = 32;

export interface UidSpans {
  /** [first, last] pairs, ascending and disjoint. */
  spans: Array<[number, number]>;
  /** The valid UIDs asked for, ascending (duplicates possible). */
  sorted: ArrayLike<number>;
  /** True when every UID inside the spans was asked for (no filtering needed). */
  exact: boolean;
}

/** Spans of the valid UIDs (positive 32-bit integers; others are skipped, as missing UIDs are). */
export function uidSpans(uids: readonly number[]): UidSpans {
  const sorted = ascending(uids);
  const spans: Array<[number, number]> = [];
  let distinct = 0;
  let covered = 0;
  let previous = -1;
  for (let i = 0; i < sorted.length; i++) {
    const uid = sorted[i]!;
    if (uid === previous) continue;
    distinct++;
    const last = spans[spans.length - 1];
    if (last && uid - last[1] <= SPAN_GAP) {
      last[1] = uid;
    } else {
      if (last) covered += last[1] - last[0] + 1;
      spans.push([uid, uid]);
    }
    previous = uid;
  }
  const last = spans[spans.length - 1];
  if (last) covered += last[1] - last[0] + 1;
  return { spans, sorted, exact: covered === distinct };
}

/**
 * Runs `read(first, last)` for each span and keeps the rows whose UID was asked for; `uidOf`
 * picks the UID out of a row. Rows and asked UIDs are both ascending: one merge walk filters.
 */
export function readByUid<R>(uids: readonly number[], read: (first: number, last: number) => R[], uidOf: (row: R) => number): R[] {
  const { spans, sorted, exact } = uidSpans(uids);
  if (spans.length === 1 && exact) return read(spans[0]![0], spans[0]![1]);
  const out: R[] = [];
  let next = 0;
  for (const [first, last] of spans) {
    for (const row of read(first, last)) {
      const uid = uidOf(row);
      while (next < sorted.length && sorted[next]! < uid) next++;
      if (exact || sorted[next] === uid) out.push(row);
    }
  }
  return out;
}

function isUid(uid: number): boolean {
  return Number.isInteger(uid) && uid > 0 && uid <= 0xffffffff;
}

/** The valid UIDs in ascending order: the input itself when it already is (a session's UID map). */
function ascending(uids: readonly number[]): ArrayLike<number> {
  let previous = 0;
  for (const uid of uids) {
    if (!isUid(uid) || uid < previous) return Uint32Array.from(uids.filter(isUid)).sort();
    previous = uid;
  }
  return uids;
}
