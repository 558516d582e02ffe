/**
 * The selected mailbox as one session sees it: the sequence-number map (UIDs in order) and the
 * changes other sessions and deliveries made that this session has not told its client yet.
 *
 * Invariants
 * - `uids` is what the client believes: sequence number n is uids[n - 1]. It changes only when
 *   the session sends EXISTS (appends at the end) or EXPUNGE/VANISHED (removes), so sequence
 *   numbers stay consistent while other sessions expunge (rfc9051 7.5.1, 5.5).
 * - Changes arrive as store events (never by polling) and wait in `pending` until the session
 *   may send them: every update at a command's end, but no expunge during FETCH, STORE or
 *   SEARCH by sequence number (rfc9051 7.5.1), and everything at once while IDLE.
 * - Events about UIDs the session never saw (expunged before SELECT read the list, or added and
 *   removed meanwhile) are dropped, so the client is never told of a message it cannot address.
 */
import type { MailEvent } from '../store/types.js';
import { UidList } from './uid-list.js';
import { flagList, formatNumberSet } from './wire.js';

export interface SelectedOptions {
  mailboxId: number;
  name: string;
  uidValidity: number;
  readOnly: boolean;
  uids: number[];
}

type PendingUpdate =
  | { type: 'exists'; uid: number }
  | { type: 'flags'; uid: number; modSeq: number; flags: string[] }
  | { type: 'expunge'; uid: number };

export interface UpdateFormat {
  /** CONDSTORE is active: FETCH updates carry MODSEQ. */
  condstore: boolean;
  /** QRESYNC is enabled: VANISHED instead of EXPUNGE (rfc7162 3.2.10). */
  qresync: boolean;
}

export class SelectedMailbox {
  readonly mailboxId: number;
  readonly name: string;
  readonly uidValidity: number;
  readonly readOnly: boolean;
  private readonly uids: UidList;
  private pending: PendingUpdate[] = [];
  /** Highest UID the client has been told of. */
  private lastUid: number;
  /** Set when another session deleted the mailbox: the session must tell the client. */
  gone = false;

  constructor(options: SelectedOptions) {
    this.mailboxId = options.mailboxId;
    this.name = options.name;
    this.uidValidity = options.uidValidity;
    this.readOnly = options.readOnly;
    this.uids = UidList.from(options.uids);
    this.lastUid = this.uids.last;
  }

  get count(): number {
    return this.uids.length;
  }

  /** The UIDs in sequence order, as a new array (for one command's use, not to keep). */
  uidArray(): number[] {
    return this.uids.toArray();
  }

  /** Calls `visit(uid, seq)` for every UID in [lo, hi] the client knows, ascending. */
  forEachUidInRange(lo: number, hi: number, visit: (uid: number, seq: number) => void): void {
    this.uids.forEachInRange(lo, hi, (uid, index) => visit(uid, index + 1));
  }

  get maxUid(): number {
    return this.lastUid;
  }

  uidAt(seq: number): number | undefined {
    return this.uids.at(seq - 1);
  }

  /** Sequence number of a UID the client knows, or 0. */
  seqOf(uid: number): number {
    return this.uids.indexOf(uid) + 1;
  }

  /** Records a store event for this mailbox. */
  onEvent(event: MailEvent): void {
    if (event.mailboxId !== this.mailboxId) return;
    switch (event.type) {
      case 'exists':
        if (event.uid > this.lastUid || this.pending.some((p) => p.type === 'expunge' && p.uid === event.uid)) {
          this.pending.push({ type: 'exists', uid: event.uid });
        }
        return;
      case 'flags':
        this.pending.push({ type: 'flags', uid: event.uid, modSeq: event.modSeq, flags: event.flags });
        return;
      case 'expunge':
        this.pending.push({ type: 'expunge', uid: event.uid });
        return;
      case 'mailbox':
        // A rename keeps the mailbox (and its UIDs); a deletion leaves nothing to show.
        if (event.change === 'deleted') this.gone = true;
        return;
    }
  }

  /** Drops flag updates this session caused itself and already reported (or chose not to). */
  forgetOwnFlagChanges(changes: Array<{ uid: number; modSeq: number }>): void {
    if (changes.length === 0 || this.pending.length === 0) return;
    const own = new Map(changes.map((c) => [c.uid, c.modSeq]));
    this.pending = this.pending.filter((p) => p.type !== 'flags' || (own.get(p.uid) ?? 0) < p.modSeq);
  }

  /** Removes UIDs this session expunged itself and reported; returns their sequence numbers. */
  expungeOwn(uids: number[]): number[] {
    const gone = new Set(uids);
    this.pending = this.pending.filter((p) => !(p.type === 'expunge' && gone.has(p.uid)));
    return this.removeUids(gone);
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /**
   * The untagged responses for pending changes, applied to the sequence map. With
   * `allowExpunge` false, expunges stay pending (and so do flag updates of those messages).
   */
  takeUpdates(allowExpunge: boolean, format: UpdateFormat): string[] {
    if (this.pending.length === 0) return [];
    const out: string[] = [];
    const pending = this.pending;
    this.pending = [];
    const expunged = new Set<number>();
    const kept: PendingUpdate[] = [];
    for (const p of pending) if (p.type === 'expunge') expunged.add(p.uid);

    if (allowExpunge && expunged.size > 0) {
      const known = [...expunged].filter((uid) => this.seqOf(uid) > 0);
      if (format.qresync) {
        if (known.length > 0) out.push(`* VANISHED ${formatNumberSet(known)}\r\n`);
        this.removeUids(new Set(known));
      } else {
        // Highest sequence number first, so each number is right when the client applies it.
        const seqs = known.map((uid) => this.seqOf(uid)).sort((a, b) => b - a);
        for (const seq of seqs) out.push(`* ${seq} EXPUNGE\r\n`);
        this.removeUids(new Set(known));
      }
    }
    let added = false;
    const flagsByUid = new Map<number, { modSeq: number; flags: string[] }>();
    for (const p of pending) {
      if (p.type === 'expunge') {
        if (!allowExpunge) kept.push(p);
        continue;
      }
      if (p.type === 'exists') {
        if (expunged.has(p.uid) && allowExpunge) continue;
        if (p.uid > this.lastUid) {
          this.uids.push(p.uid);
          this.lastUid = p.uid;
          added = true;
        }
        continue;
      }
      if (expunged.has(p.uid)) {
        if (!allowExpunge) kept.push(p);
        continue;
      }
      const prev = flagsByUid.get(p.uid);
      if (!prev || prev.modSeq <= p.modSeq) flagsByUid.set(p.uid, { modSeq: p.modSeq, flags: p.flags });
    }
    // EXISTS first: a FETCH may name a message the client learns of only from it (rfc9051 7.4.1).
    if (added) out.push(`* ${this.uids.length} EXISTS\r\n`);
    for (const [uid, { modSeq, flags }] of flagsByUid) {
      const seq = this.seqOf(uid);
      if (seq === 0) continue;
      const modseq = format.condstore ? ` MODSEQ (${modSeq})` : '';
      out.push(`* ${seq} FETCH (UID ${uid} FLAGS ${flagList(flags)}${modseq})\r\n`);
    }
    this.pending = kept.concat(this.pending);
    return out;
  }

  private removeUids(gone: Set<number>): number[] {
    if (gone.size === 0) return [];
    return this.uids.remove(gone).map((index) => index + 1);
  }
}
