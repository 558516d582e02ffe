/**
 * The UIDs of a mailbox in ascending order, stored as runs of consecutive numbers: a session's
 * sequence-number map. A mailbox whose UIDs have few gaps (the usual case: gaps come only from
 * expunges) costs a few numbers instead of 8 bytes per message, which is what lets thousands of
 * IDLE sessions sit on large mailboxes in little memory.
 *
 * Invariants: runs are ascending, non-empty, non-adjacent (a run never ends right before the
 * next one starts); `before[i]` is the number of UIDs in runs 0..i-1.
 */
export class UidList {
  private starts: number[] = [];
  private lengths: number[] = [];
  private before: number[] = [];
  private total = 0;

  static from(sorted: readonly number[]): UidList {
    const list = new UidList();
    for (const uid of sorted) list.push(uid);
    return list;
  }

  get length(): number {
    return this.total;
  }

  get last(): number {
    const n = this.starts.length;
    return n === 0 ? 0 : this.starts[n - 1]! + this.lengths[n - 1]! - 1;
  }

  /** Appends a UID larger than every UID held. */
  push(uid: number): void {
    const n = this.starts.length;
    if (n > 0 && uid === this.last + 1) this.lengths[n - 1]!++;
    else {
      this.starts.push(uid);
      this.lengths.push(1);
      this.before.push(this.total);
    }
    this.total++;
  }

  /** The UID at 0-based position `index`, or undefined. */
  at(index: number): number | undefined {
    if (index < 0 || index >= this.total) return undefined;
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.before[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    return this.starts[lo]! + (index - this.before[lo]!);
  }

  /** 0-based position of `uid`, or -1. */
  indexOf(uid: number): number {
    const run = this.runAtOrBefore(uid);
    if (run < 0) return -1;
    const offset = uid - this.starts[run]!;
    return offset < this.lengths[run]! ? this.before[run]! + offset : -1;
  }

  /** Calls `visit` for every UID in [lo, hi], ascending. */
  forEachInRange(lo: number, hi: number, visit: (uid: number, index: number) => void): void {
    let run = Math.max(0, this.runAtOrBefore(lo));
    for (; run < this.starts.length; run++) {
      const start = this.starts[run]!;
      if (start > hi) return;
      const end = Math.min(hi, start + this.lengths[run]! - 1);
      for (let uid = Math.max(lo, start); uid <= end; uid++) visit(uid, this.before[run]! + (uid - start));
    }
  }

  toArray(): number[] {
    const out = new Array<number>(this.total);
    let k = 0;
    for (let r = 0; r < this.starts.length; r++) {
      const start = this.starts[r]!;
      for (let i = 0; i < this.lengths[r]!; i++) out[k++] = start + i;
    }
    return out;
  }

  /** Removes the given UIDs; returns the 0-based positions they had, ascending. */
  remove(gone: ReadonlySet<number>): number[] {
    const positions: number[] = [];
    const kept = new UidList();
    let index = 0;
    for (let r = 0; r < this.starts.length; r++) {
      const start = this.starts[r]!;
      for (let i = 0; i < this.lengths[r]!; i++, index++) {
        const uid = start + i;
        if (gone.has(uid)) positions.push(index);
        else kept.push(uid);
      }
    }
    this.starts = kept.starts;
    this.lengths = kept.lengths;
    this.before = kept.before;
    this.total = kept.total;
    return positions;
  }

  /** Index of the last run starting at or before `uid`, or -1. */
  private runAtOrBefore(uid: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.starts[mid]! <= uid) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }
}
