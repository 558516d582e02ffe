/**
 * Writes on the messages of a mailbox: STORE (flags), COPY, MOVE and EXPUNGE.
 *
 * Invariants
 * - One IMMEDIATE transaction each (writes.ts); a mailbox a transaction changes gets one new
 *   MODSEQ, shared by every row it changes and by the tombstones of the UIDs it removes.
 * - New UIDs (COPY, MOVE) come from the target's uidnext, in source UID order.
 * - COPY adds blob references and quota usage; MOVE re-homes the rows, so both stay the same;
 *   EXPUNGE releases both.
 * - Each message's search row (search-rows.ts) is copied, re-homed or deleted with it.
 */
import { InvalidInput, NotFound, QuotaExceeded } from '../../util/errors.js';
import { checkFlagUpdate, planFlagUpdate } from '../flags.js';
import type { CopyResult, FlagUpdate, FlagUpdateResult, MailEvent } from '../types.js';
import { readByUid } from './by-uid.js';
import { COPY_SEARCH_ROW, DELETE_SEARCH_ROW, MOVE_SEARCH_ROW } from './search-rows.js';
import type { SqliteWrites, WriteResult } from './writes.js';

interface BoxRow {
  id: number;
  account_id: number;
  uidvalidity: number;
}

interface FlagRow {
  id: number;
  uid: number;
  modseq: number;
  flags: string;
}

interface RemovableRow {
  id: number;
  uid: number;
  blob_hash: string;
  blob_size: number;
  size: number;
}

const REMOVABLE_BY_SPAN = 'SELECT id, uid, blob_hash, blob_size, size FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid';

export class MessageOps {
  constructor(private readonly w: SqliteWrites) {}

  async storeFlags(mailboxId: number, update: FlagUpdate): Promise<FlagUpdateResult> {
    const change = checkFlagUpdate(update);
    return this.w.run((): WriteResult<FlagUpdateResult> => {
      const box = this.box(mailboxId);
      const stmt = this.w.sql<[number, number, number], FlagRow>(
        'SELECT id, uid, modseq, flags FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid',
      );
      const rows = readByUid(update.uids, (first, last) => stmt.all(mailboxId, first, last), (row) => row.uid);
      const { modified, updated, changed } = planFlagUpdate(rows, update, change);
      const events: MailEvent[] = [];
      if (changed.length > 0) {
        const modSeq = this.w.nextModSeq(mailboxId);
        const set = this.w.sql<[string, number, number]>('UPDATE messages SET flags = ?, modseq = ? WHERE id = ?');
        for (const { row, entry } of changed) {
          entry.modSeq = modSeq;
          set.run(JSON.stringify(entry.flags), modSeq, row.id);
          events.push({ type: 'flags', accountId: box.account_id, mailboxId, uid: entry.uid, modSeq, flags: [...entry.flags] });
        }
      }
      return { value: { updated, modified }, events };
    });
  }

  copyMessages(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<CopyResult> {
    return this.w.runInLane(() => {
      const { source, target } = this.pair(fromMailboxId, toMailboxId);
      const rows = this.removable(fromMailboxId, uids);
      if (rows.length === 0) return { value: { uidValidity: target.uidvalidity, mapping: [] }, events: [] };
      const bytes = rows.reduce((sum, r) => sum + r.size, 0);
      const account = this.w
        .sql<[number], { address: string; quota_bytes: number | null; used_bytes: number }>(
          'SELECT address, quota_bytes, used_bytes FROM accounts WHERE id = ?',
        )
        .get(source.account_id)!;
      if (account.quota_bytes !== null && account.used_bytes + bytes > account.quota_bytes) {
        throw new QuotaExceeded(
          `copying ${rows.length} message(s) (${bytes} bytes) would exceed the quota of ${account.address} ` +
            `(${account.used_bytes} of ${account.quota_bytes} bytes used)`,
        );
      }
      const { first, modSeq } = this.takeUids(toMailboxId, rows.length);
      const insert = this.w.sql<[number, number, number, number]>(
        `INSERT INTO messages (mailbox_id, uid, modseq, blob_hash, blob_size, prefix, size, internal_date, flags)
         SELECT ?, ?, ?, blob_hash, blob_size, prefix, size, internal_date, flags FROM messages WHERE id = ?`,
      );
      const copySearch = this.w.sql<[number, number, number, number]>(COPY_SEARCH_ROW);
      const mapping: Array<[number, number]> = [];
      const events: MailEvent[] = [];
      const refs = new Map<string, { size: number; count: number }>();
      rows.forEach((row, i) => {
        const uid = first + i;
        insert.run(toMailboxId, uid, modSeq, row.id);
        copySearch.run(toMailboxId, uid, fromMailboxId, row.uid);
        mapping.push([row.uid, uid]);
        events.push({ type: 'exists', accountId: target.account_id, mailboxId: toMailboxId, uid, modSeq });
        const ref = refs.get(row.blob_hash);
        if (ref) ref.count++;
        else refs.set(row.blob_hash, { size: row.blob_size, count: 1 });
      });
      for (const [hash, ref] of refs) this.w.refs.add(hash, ref.size, ref.count);
      this.w.sql('UPDATE accounts SET used_bytes = used_bytes + ? WHERE id = ?').run(bytes, source.account_id);
      return { value: { uidValidity: target.uidvalidity, mapping }, events };
    });
  }

  /** The rows change mailbox and UID in place: blob references and quota usage stay as they are. */
  moveMessages(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<CopyResult> {
    return this.w.runInLane(() => {
      const { source, target } = this.pair(fromMailboxId, toMailboxId);
      const rows = this.removable(fromMailboxId, uids);
      if (rows.length === 0) return { value: { uidValidity: target.uidvalidity, mapping: [] }, events: [] };
      const { first, modSeq } = this.takeUids(toMailboxId, rows.length);
      const expungeModSeq = this.w.nextModSeq(fromMailboxId);
      const rehome = this.w.sql<[number, number, number, number]>('UPDATE messages SET mailbox_id = ?, uid = ?, modseq = ? WHERE id = ?');
      const rehomeSearch = this.w.sql<[number, number, number, number]>(MOVE_SEARCH_ROW);
      const mapping: Array<[number, number]> = [];
      const events: MailEvent[] = [];
      rows.forEach((row, i) => {
        const uid = first + i;
        rehome.run(toMailboxId, uid, modSeq, row.id);
        rehomeSearch.run(toMailboxId, uid, fromMailboxId, row.uid);
        mapping.push([row.uid, uid]);
        events.push({ type: 'exists', accountId: target.account_id, mailboxId: toMailboxId, uid, modSeq });
      });
      this.tombstones(fromMailboxId, rows, expungeModSeq);
      for (const row of rows) {
        events.push({ type: 'expunge', accountId: source.account_id, mailboxId: fromMailboxId, uid: row.uid, modSeq: expungeModSeq });
      }
      return { value: { uidValidity: target.uidvalidity, mapping }, events };
    });
  }

  expungeMessages(mailboxId: number, uids: number[]): Promise<number[]> {
    if (uids.length === 0) return Promise.resolve([]);
    return this.w.runInLane(() => {
      const box = this.box(mailboxId);
      const rows = this.removable(mailboxId, uids);
      if (rows.length === 0) return { value: [], events: [] };
      const modSeq = this.w.nextModSeq(mailboxId);
      const remove = this.w.sql<[number]>('DELETE FROM messages WHERE id = ?');
      const removeSearch = this.w.sql<[number, number]>(DELETE_SEARCH_ROW);
      const counts = new Map<string, number>();
      let bytes = 0;
      for (const row of rows) {
        remove.run(row.id);
        removeSearch.run(mailboxId, row.uid);
        counts.set(row.blob_hash, (counts.get(row.blob_hash) ?? 0) + 1);
        bytes += row.size;
      }
      this.tombstones(mailboxId, rows, modSeq);
      this.w.sql('UPDATE accounts SET used_bytes = max(0, used_bytes - ?) WHERE id = ?').run(bytes, box.account_id);
      const events: MailEvent[] = rows.map((row) => ({ type: 'expunge', accountId: box.account_id, mailboxId, uid: row.uid, modSeq }));
      return { value: rows.map((r) => r.uid), events, unreferenced: this.w.refs.release(counts) };
    });
  }

  private box(mailboxId: number): BoxRow {
    const row = this.w.sql<[number], BoxRow>('SELECT id, account_id, uidvalidity FROM mailboxes WHERE id = ?').get(mailboxId);
    if (!row) throw new NotFound(`mailbox ${mailboxId} does not exist`);
    return row;
  }

  private pair(fromMailboxId: number, toMailboxId: number): { source: BoxRow; target: BoxRow } {
    const source = this.box(fromMailboxId);
    const target = this.box(toMailboxId);
    if (source.account_id !== target.account_id) {
      throw new InvalidInput('messages can only be copied or moved between mailboxes of the same account');
    }
    return { source, target };
  }

  private removable(mailboxId: number, uids: readonly number[]): RemovableRow[] {
    const stmt = this.w.sql<[number, number, number], RemovableRow>(REMOVABLE_BY_SPAN);
    return readByUid(uids, (first, last) => stmt.all(mailboxId, first, last), (row) => row.uid);
  }

  /** Reserves `count` UIDs of the target and gives it its next MODSEQ. */
  private takeUids(mailboxId: number, count: number): { first: number; modSeq: number } {
    const row = this.w
      .sql<[number, number, number], { first: number; modseq: number }>(
        `UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1 WHERE id = ?
         RETURNING uidnext - ? AS first, highestmodseq AS modseq`,
      )
      .get(count, mailboxId, count)!;
    return { first: row.first, modSeq: row.modseq };
  }

  private tombstones(mailboxId: number, rows: readonly RemovableRow[], modSeq: number): void {
    const insert = this.w.sql<[number, number, number]>('INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)');
    for (const row of rows) insert.run(mailboxId, row.uid, modSeq);
  }
}
