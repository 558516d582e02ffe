/**
 * Writes on the messages of a mailbox on PostgreSQL: STORE (flags), COPY, MOVE and EXPUNGE (the
 * same behaviour as store/sqlite/message-ops.ts).
 *
 * Invariants
 * - One transaction each, that locks the row of every mailbox it reads messages of or writes to
 *   (FOR NO KEY UPDATE, as delivery does) before it reads them. Every writer of a
 *   mailbox's messages takes that lock (delivery's uidnext update takes it too), so on any number
 *   of nodes the writes of one mailbox are serialized and each reads, after its lock, what the
 *   previous one committed (READ COMMITTED takes a new snapshot per statement): UNCHANGEDSINCE
 *   compares against the MODSEQ the row really has, and COPY's source rows (and so their blob
 *   references) cannot be expunged under it.
 * - Lock order, the same as delivery's (delivery.ts): the blob_refs rows a write will change (in
 *   hash order), then mailbox rows (in id order), then the account row. Locking a mailbox before
 *   the blob_refs rows would deadlock with a delivery of the same blob to the same mailbox
 *   (PostgreSQL detects it only after deadlock_timeout, a second by default, and Db.tx retries:
 *   a two-node race of 240 deliveries, expunges and moves took 63 s so, 0.7 s in this order).
 * - A mailbox a transaction changes gets one new MODSEQ (`highestmodseq + 1 ... RETURNING`, under
 *   its row lock), shared by every row it changes and by the tombstones of the UIDs it removes.
 * - New UIDs (COPY, MOVE) come from the target's uidnext, in source UID order.
 * - COPY adds blob references and quota usage (refused with QuotaExceeded, atomically, when it
 *   would pass the quota); MOVE re-homes the rows, so both stay the same; EXPUNGE releases both
 *   (database bytes and meta go with a blob's last reference in the same transaction; files of a
 *   shared folder are left to the orphan sweep, see blob-store.ts).
 * - Each message's search row is copied, re-homed or deleted with it; removed UIDs leave a
 *   tombstone (expunged) with the removing MODSEQ.
 * - UID sets travel as one bigint[] parameter, never as SQL text, whatever their size; UIDs that
 *   are not positive 32-bit integers are skipped, as missing UIDs are.
 * - Events are published after the commit (the transaction's function may run more than once:
 *   it builds its result afresh each time).
 */
import { InvalidInput, NotFound, QuotaExceeded } from '../../util/errors.js';
import { checkFlagUpdate, planFlagUpdate } from '../flags.js';
import type { CopyResult, EventBus, FlagUpdate, FlagUpdateResult, MailEvent } from '../types.js';
import type { PgBlobStore } from './blob-store.js';
import { releaseBlobRefs } from './blob-refs.js';
import type { Db, Queryable } from './db.js';
import { publish } from './mailbox-ops.js';

type BoxRow = { id: number; account_id: number; uidvalidity: number };

type FlagRow = { uid: number; modseq: number; flags: string };

interface Change<T> {
  value: T;
  events: MailEvent[];
}

export class PgMessageOps {
  constructor(
    readonly db: Db,
    readonly blobs: PgBlobStore,
    readonly events: EventBus,
  ) {}

  async storeFlags(mailboxId: number, update: FlagUpdate): Promise<FlagUpdateResult> {
    const change = checkFlagUpdate(update);
    const uids = validUids(update.uids);
    return this.write(async (tx) => {
      const [box] = await lockBoxes(tx, [mailboxId]);
      const rows =
        uids.length === 0
          ? []
          : await tx.query<FlagRow>('SELECT uid, modseq, flags FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid', [
              mailboxId,
              uids,
            ]);
      const plan = planFlagUpdate(rows, update, change);
      const { modified, updated } = plan;
      const changed = plan.changed.map((c) => c.entry);
      const events: MailEvent[] = [];
      if (changed.length > 0) {
        const modSeq = await nextModSeq(tx, mailboxId);
        await tx.query(
          `UPDATE messages m SET flags = v.flags, modseq = $2
           FROM unnest($3::bigint[], $4::text[]) AS v(uid, flags)
           WHERE m.mailbox_id = $1 AND m.uid = v.uid`,
          [mailboxId, modSeq, changed.map((e) => e.uid), changed.map((e) => JSON.stringify(e.flags))],
        );
        for (const entry of changed) {
          entry.modSeq = modSeq;
          events.push({ type: 'flags', accountId: box!.account_id, mailboxId, uid: entry.uid, modSeq, flags: [...entry.flags] });
        }
      }
      return { value: { updated, modified }, events };
    });
  }

  copyMessages(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<CopyResult> {
    const wanted = validUids(uids);
    return this.write(async (tx) => {
      await lockBlobRefsOf(tx, fromMailboxId, wanted);
      const { source, target } = await lockPair(tx, fromMailboxId, toMailboxId);
      const sources = await presentUids(tx, fromMailboxId, wanted);
      if (sources.length === 0) return { value: { uidValidity: target.uidvalidity, mapping: [] }, events: [] };
      const { bytes } = (await tx.one<{ bytes: number }>(
        'SELECT coalesce(sum(size), 0)::bigint AS bytes FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])',
        [fromMailboxId, sources],
      ))!;
      // Checked and added in one statement under the account's row lock: two nodes copying at
      // once cannot both pass the quota on the same room.
      const room = await tx.one(
        `UPDATE accounts SET used_bytes = used_bytes + $1
         WHERE id = $2 AND (quota_bytes IS NULL OR used_bytes + $1 <= quota_bytes) RETURNING 1 AS one`,
        [bytes, source.account_id],
      );
      if (!room) {
        const account = await tx.one<{ address: string; quota_bytes: number | null; used_bytes: number }>(
          'SELECT address, quota_bytes, used_bytes FROM accounts WHERE id = $1',
          [source.account_id],
        );
        if (!account) throw new NotFound(`account ${source.account_id} does not exist`);
        throw new QuotaExceeded(
          `copying ${sources.length} message(s) (${bytes} bytes) would exceed the quota of ${account.address} ` +
            `(${account.used_bytes} of ${account.quota_bytes} bytes used)`,
        );
      }
      const { first, modSeq } = await takeUids(tx, toMailboxId, sources.length);
      const targets = sources.map((_, i) => first + i);
      await tx.query(
        `INSERT INTO messages (mailbox_id, uid, modseq, blob_hash, blob_size, prefix, size, internal_date, flags)
         SELECT $1, v.dst, $2, m.blob_hash, m.blob_size, m.prefix, m.size, m.internal_date, m.flags
         FROM unnest($4::bigint[], $5::bigint[]) AS v(src, dst)
         JOIN messages m ON m.mailbox_id = $3 AND m.uid = v.src`,
        [toMailboxId, modSeq, fromMailboxId, sources, targets],
      );
      await tx.query(
        `INSERT INTO message_search (mailbox_id, uid, subject, from_addr, to_addr, cc_addr, bcc_addr)
         SELECT $1, v.dst, s.subject, s.from_addr, s.to_addr, s.cc_addr, s.bcc_addr
         FROM unnest($3::bigint[], $4::bigint[]) AS v(src, dst)
         JOIN message_search s ON s.mailbox_id = $2 AND s.uid = v.src
         ON CONFLICT (mailbox_id, uid) DO UPDATE SET subject = excluded.subject, from_addr = excluded.from_addr,
           to_addr = excluded.to_addr, cc_addr = excluded.cc_addr, bcc_addr = excluded.bcc_addr`,
        [toMailboxId, fromMailboxId, sources, targets],
      );
      // One reference more per copy. The source rows hold references already and cannot go
      // meanwhile (their mailbox is locked), so the blobs' bytes are there. Sorted: blob_refs
      // rows are locked in one order by every writer.
      await tx.query(
        `INSERT INTO blob_refs (hash, size, refcount)
         SELECT blob_hash, max(blob_size), count(*) FROM messages
         WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])
         GROUP BY blob_hash ORDER BY blob_hash
         ON CONFLICT (hash) DO UPDATE SET refcount = blob_refs.refcount + excluded.refcount`,
        [fromMailboxId, sources],
      );
      const mapping = sources.map((uid, i): [number, number] => [uid, targets[i]!]);
      const events: MailEvent[] = targets.map((uid) => ({ type: 'exists', accountId: target.account_id, mailboxId: toMailboxId, uid, modSeq }));
      return { value: { uidValidity: target.uidvalidity, mapping }, events };
    });
  }

  /** The rows change mailbox and UID in place: blob references and quota usage stay as they are. */
  moveMessages(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<CopyResult> {
    const wanted = validUids(uids);
    return this.write(async (tx) => {
      const { source, target } = await lockPair(tx, fromMailboxId, toMailboxId);
      const sources = await presentUids(tx, fromMailboxId, wanted);
      if (sources.length === 0) return { value: { uidValidity: target.uidvalidity, mapping: [] }, events: [] };
      const { first, modSeq } = await takeUids(tx, toMailboxId, sources.length);
      const expungeModSeq = await nextModSeq(tx, fromMailboxId);
      const targets = sources.map((_, i) => first + i);
      // The new UIDs are at or past the target's uidnext: no row holds them, in either table
      // (a stale search row there is replaced, as SQLite's UPDATE OR REPLACE does).
      await tx.query(
        `UPDATE messages m SET mailbox_id = $1, uid = v.dst, modseq = $2
         FROM unnest($4::bigint[], $5::bigint[]) AS v(src, dst)
         WHERE m.mailbox_id = $3 AND m.uid = v.src`,
        [toMailboxId, modSeq, fromMailboxId, sources, targets],
      );
      await tx.query('DELETE FROM message_search WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])', [toMailboxId, targets]);
      await tx.query(
        `UPDATE message_search s SET mailbox_id = $1, uid = v.dst
         FROM unnest($3::bigint[], $4::bigint[]) AS v(src, dst)
         WHERE s.mailbox_id = $2 AND s.uid = v.src`,
        [toMailboxId, fromMailboxId, sources, targets],
      );
      await tombstones(tx, fromMailboxId, sources, expungeModSeq);
      const mapping = sources.map((uid, i): [number, number] => [uid, targets[i]!]);
      const events: MailEvent[] = targets.map((uid) => ({ type: 'exists', accountId: target.account_id, mailboxId: toMailboxId, uid, modSeq }));
      for (const uid of sources) {
        events.push({ type: 'expunge', accountId: source.account_id, mailboxId: fromMailboxId, uid, modSeq: expungeModSeq });
      }
      return { value: { uidValidity: target.uidvalidity, mapping }, events };
    });
  }

  async expungeMessages(mailboxId: number, uids: number[]): Promise<number[]> {
    const wanted = validUids(uids);
    if (uids.length === 0) return [];
    return this.write(async (tx) => {
      await lockBlobRefsOf(tx, mailboxId, wanted);
      const [box] = await lockBoxes(tx, [mailboxId]);
      if (wanted.length === 0) return { value: [], events: [] };
      const removed = await tx.query<{ uid: number; blob_hash: string; size: number }>(
        'DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) RETURNING uid, blob_hash, size',
        [mailboxId, wanted],
      );
      if (removed.length === 0) return { value: [], events: [] };
      removed.sort((a, b) => a.uid - b.uid);
      const gone = removed.map((r) => r.uid);
      const modSeq = await nextModSeq(tx, mailboxId);
      await tx.query('DELETE FROM message_search WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])', [mailboxId, gone]);
      await tombstones(tx, mailboxId, gone, modSeq);
      const counts = new Map<string, number>();
      let bytes = 0;
      for (const row of removed) {
        counts.set(row.blob_hash, (counts.get(row.blob_hash) ?? 0) + 1);
        bytes += row.size;
      }
      if (bytes > 0) await tx.query('UPDATE accounts SET used_bytes = greatest(0, used_bytes - $1) WHERE id = $2', [bytes, box!.account_id]);
      // The blobs' database bytes and meta go with their last reference, in this transaction.
      await releaseBlobRefs(tx, counts);
      const events: MailEvent[] = gone.map((uid) => ({ type: 'expunge', accountId: box!.account_id, mailboxId, uid, modSeq }));
      return { value: gone, events };
    });
  }

  private async write<T>(work: (tx: Queryable) => Promise<Change<T>>): Promise<T> {
    const result = await this.db.tx(work);
    publish(this.events, result.events);
    return result.value;
  }
}

/**
 * Locks the blob_refs rows of the given messages (in hash order), before their mailbox: the
 * order delivery takes them in (delivery.ts), so a delivery of a blob and a COPY or EXPUNGE of
 * messages of the same blob in the same mailbox never deadlock. Read before the mailbox lock, so
 * a message that arrives in between may have a blob not locked here: its row is locked when its
 * reference changes (the rare deadlock that can cause is detected and retried, Db.tx). A
 * message's blob never changes, so every other row is covered.
 */
async function lockBlobRefsOf(tx: Queryable, mailboxId: number, uids: number[]): Promise<void> {
  if (uids.length === 0 || !Number.isSafeInteger(mailboxId)) return;
  await tx.query(
    `SELECT 1 AS one FROM blob_refs WHERE hash IN (SELECT blob_hash FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]))
     ORDER BY hash COLLATE "C" FOR UPDATE OF blob_refs`,
    [mailboxId, uids],
  );
}

/**
 * Locks the rows of the given mailboxes, in id order; NotFound when one is missing. Returns them
 * in the order asked.
 */
async function lockBoxes(tx: Queryable, ids: number[]): Promise<BoxRow[]> {
  for (const id of ids) if (!Number.isSafeInteger(id)) throw new NotFound(`mailbox ${id} does not exist`);
  const distinct = [...new Set(ids)].sort((a, b) => a - b);
  const rows = await tx.query<BoxRow>('SELECT id, account_id, uidvalidity FROM mailboxes WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE', [distinct]);
  const byId = new Map(rows.map((r) => [r.id, r]));
  return ids.map((id) => {
    const row = byId.get(id);
    if (!row) throw new NotFound(`mailbox ${id} does not exist`);
    return row;
  });
}

async function lockPair(tx: Queryable, fromMailboxId: number, toMailboxId: number): Promise<{ source: BoxRow; target: BoxRow }> {
  const [source, target] = await lockBoxes(tx, [fromMailboxId, toMailboxId]);
  if (source!.account_id !== target!.account_id) {
    throw new InvalidInput('messages can only be copied or moved between mailboxes of the same account');
  }
  return { source: source!, target: target! };
}

/** The asked UIDs the mailbox holds, ascending. */
async function presentUids(tx: Queryable, mailboxId: number, uids: number[]): Promise<number[]> {
  if (uids.length === 0) return [];
  const rows = await tx.query<{ uid: number }>('SELECT uid FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid', [mailboxId, uids]);
  return rows.map((r) => r.uid);
}

/** Gives the mailbox its next MODSEQ (one per transaction and mailbox is enough) and returns it. */
async function nextModSeq(tx: Queryable, mailboxId: number): Promise<number> {
  const row = await tx.one<{ modseq: number }>('UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 RETURNING highestmodseq AS modseq', [
    mailboxId,
  ]);
  if (!row) throw new NotFound(`mailbox ${mailboxId} does not exist`);
  return row.modseq;
}

/** Reserves `count` UIDs of the target and gives it its next MODSEQ. */
async function takeUids(tx: Queryable, mailboxId: number, count: number): Promise<{ first: number; modSeq: number }> {
  const row = await tx.one<{ first: number; modseq: number }>(
    `UPDATE mailboxes SET uidnext = uidnext + $1, highestmodseq = highestmodseq + 1 WHERE id = $2
     RETURNING uidnext - $1 AS first, highestmodseq AS modseq`,
    [count, mailboxId],
  );
  if (!row) throw new NotFound(`mailbox ${mailboxId} does not exist`);
  return { first: row.first, modSeq: row.modseq };
}

async function tombstones(tx: Queryable, mailboxId: number, uids: number[], modSeq: number): Promise<void> {
  await tx.query(
    `INSERT INTO expunged (mailbox_id, uid, modseq) SELECT $1, unnest($2::bigint[]), $3
     ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq`,
    [mailboxId, uids, modSeq],
  );
}

/** The valid UIDs (positive 32-bit integers), ascending and distinct. */
function validUids(uids: readonly number[]): number[] {
  const valid = uids.filter((uid) => Number.isInteger(uid) && uid > 0 && uid <= 0xffffffff);
  return [...new Set(valid)].sort((a, b) => a - b);
}
