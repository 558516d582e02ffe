/**
 * `commitDelivery` on PostgreSQL: one transaction per commit. No group commit is needed here:
 * PostgreSQL fsyncs its WAL at COMMIT and concurrent commits share those flushes, and every
 * commit is its own transaction, so a bad commit fails alone (what SQLite's savepoints give).
 *
 * The order of one commit's work, which is also the order in which it takes row locks:
 *   1. checkCommit (before anything is touched); blobs.persist (folder mode places the file);
 *   2. in one transaction: the collected mark (a UIDL collected already fails here, before any
 *      byte is written); the blob reference (locks the blob_refs row), then the blob's bytes
 *      (blob-store.ts ensureBlobBytes: after the reference, see its invariants); the blob meta;
 *      the outbound queue entry; then the mailboxes, locked in ascending id order, each given
 *      its UIDs and MODSEQs with one UPDATE ... RETURNING (what makes UIDNEXT allocation safe
 *      across nodes); the message rows and their search rows; last the accounts' used bytes,
 *      in ascending id order.
 *   3. after COMMIT: events published, then the staging file settled, then the caller resolved.
 * The hot rows (a mailbox, an account) are locked last, so a large message's bytes are written
 * before, not while, other deliveries to the same mailbox wait; a mailbox row is still held
 * from its UPDATE to COMMIT, so deliveries to one mailbox commit one after the other (one WAL
 * flush each), while deliveries to different mailboxes share flushes. Deliveries lock in one
 * order (blob_refs, mailboxes by id, accounts by id), so they never deadlock with each other;
 * IMAP writes (message-ops.ts) take the same order. Account removal (directory.ts) cannot (it
 * learns the blobs to release last): with a delivery to the account being removed it may
 * deadlock, which PostgreSQL detects (after deadlock_timeout) and Db.tx retries.
 *
 * Invariants
 * - Durable before acknowledged: the promise resolves after COMMIT returned.
 * - The transaction's work has no effect outside the database (Db.tx may run it again).
 * - Bulk commits (a list delivered to 100,000 recipients) cost a few statements per mailbox and
 *   per 10,000 messages, never one parameter or one round trip per message.
 * - Rejections are FulmarErrors: the typed ones as thrown, anything else TemporaryFailure.
 */
import { checkCommit, remoteAddress } from '../commit-rules.js';
import { isFulmarError, NotFound, TemporaryFailure } from '../../util/errors.js';
import { canonicalFlags } from '../flags.js';
import type { DeliveryCommit, DeliveryOutcome, EventBus, LocalDelivery, MailEvent, OutboundEnvelope } from '../types.js';
import { addBlobRefs } from './blob-refs.js';
import type { PgBlobStore } from './blob-store.js';
import { markCollected } from './collect.js';
import type { Db, Queryable } from './db.js';
import { resolveExact, resolveForDelivery } from './mailboxes.js';
import { insertSearchRows, parseSearchFields, type SearchValues } from './search-rows.js';

/** Message rows per INSERT statement. */
const BATCH = 10_000;

interface Applied {
  outcome: DeliveryOutcome;
  events: MailEvent[];
}

export class PgDelivery {
  constructor(
    private readonly db: Db,
    private readonly blobs: PgBlobStore,
    private readonly events: EventBus,
  ) {}

  async commit(commit: DeliveryCommit): Promise<DeliveryOutcome> {
    checkCommit(commit);
    let applied: Applied;
    try {
      await this.blobs.persist([commit.blob]);
      applied = await this.db.tx((tx) => apply(tx, this.blobs, commit));
    } catch (error) {
      await this.blobs.settle(commit.blob).catch(() => {});
      throw isFulmarError(error) ? error : new TemporaryFailure('could not commit the delivery transaction', error);
    }
    for (const event of applied.events) this.publish(event);
    await this.blobs.settle(commit.blob).catch(() => {
      // A staging file left behind is removed at the next open (stale temporaries).
    });
    return applied.outcome;
  }

  private publish(event: MailEvent): void {
    try {
      this.events.publish(event);
    } catch {
      // The bus must not throw (see EventBus); if one does, the delivery is durable regardless.
    }
  }
}

/** One commit's rows, inside its transaction. */
async function apply(tx: Queryable, blobs: PgBlobStore, commit: DeliveryCommit): Promise<Applied> {
  const { blob } = commit;
  const outbound = commit.outbound && commit.outbound.recipients.length > 0 ? commit.outbound : null;
  if (commit.collected) await markCollected(tx, commit.collected);
  await addBlobRefs(tx, blob.hash, blob.size, commit.local.length + (outbound ? 1 : 0));
  await blobs.ensureBlobBytes(tx, blob);
  if (commit.meta) {
    // After the reference, so meta never outlives its blob (blob-refs.ts deletes both). The
    // first meta stays; search text is added to meta cached without it.
    await tx.query(
      `INSERT INTO blob_meta (hash, envelope, structure, search) VALUES ($1, $2, $3, $4)
       ON CONFLICT (hash) DO UPDATE SET search = excluded.search WHERE blob_meta.search IS NULL AND excluded.search IS NOT NULL`,
      [blob.hash, commit.meta.envelope, commit.meta.structure, commit.meta.search ?? null],
    );
  }
  const queueId = outbound ? await enqueue(tx, commit, outbound) : null;
  if (commit.local.length === 0) return { outcome: { delivered: [], queueId }, events: [] };

  const search = await searchValues(tx, commit);
  const targets = await allocateUids(tx, commit.local);

  const internalDate = commit.internalDate.getTime();
  const delivered: DeliveryOutcome['delivered'] = [];
  const events: MailEvent[] = [];
  const mailboxIds: number[] = [];
  const uids: number[] = [];
  const modseqs: number[] = [];
  const prefixes: Buffer[] = [];
  const sizes: number[] = [];
  const flags: string[] = [];
  const usedBytes = new Map<number, number>();
  commit.local.forEach((local, i) => {
    const { mailboxId, uid, modseq } = targets[i]!;
    const size = local.prefix.length + blob.size;
    mailboxIds.push(mailboxId);
    uids.push(uid);
    modseqs.push(modseq);
    prefixes.push(local.prefix);
    sizes.push(size);
    flags.push(JSON.stringify(canonicalFlags(local.flags)));
    usedBytes.set(local.accountId, (usedBytes.get(local.accountId) ?? 0) + size);
    delivered.push({ accountId: local.accountId, mailboxId, uid });
    events.push({ type: 'exists', accountId: local.accountId, mailboxId, uid, modSeq: modseq });
  });
  for (let start = 0; start < uids.length; start += BATCH) {
    const end = start + BATCH;
    await tx.query(
      `INSERT INTO messages (mailbox_id, uid, modseq, blob_hash, blob_size, prefix, size, internal_date, flags)
       SELECT t.mailbox_id, t.uid, t.modseq, $1, $2, t.prefix, t.size, $3, t.flags
       FROM unnest($4::bigint[], $5::bigint[], $6::bigint[], $7::bytea[], $8::bigint[], $9::text[])
         AS t(mailbox_id, uid, modseq, prefix, size, flags)`,
      [
        blob.hash,
        blob.size,
        internalDate,
        mailboxIds.slice(start, end),
        uids.slice(start, end),
        modseqs.slice(start, end),
        prefixes.slice(start, end),
        sizes.slice(start, end),
        flags.slice(start, end),
      ],
    );
  }
  if (search) await insertSearchRows(tx, mailboxIds, uids, search);
  for (const accountId of [...usedBytes.keys()].sort((a, b) => a - b)) {
    await tx.query('UPDATE accounts SET used_bytes = used_bytes + $1 WHERE id = $2', [usedBytes.get(accountId)!, accountId]);
  }
  return { outcome: { delivered, queueId }, events };
}

/**
 * The mailbox, UID and MODSEQ of each local delivery (same order). Per mailbox, one UPDATE ...
 * RETURNING takes as many UIDs (and MODSEQs) as the commit has messages for it, given out in the
 * order of `locals`, each message its own MODSEQ (as one UPDATE per message would). A commit for
 * several mailboxes locks them first (FOR NO KEY UPDATE) in ascending id order; one for a single
 * mailbox lets its UPDATE take the lock. A mailbox deleted between its lookup and its lock
 * (another node's DELETE or account removal committed meanwhile) is looked up again: delivery
 * falls back to INBOX, an exact target (APPEND) or a removed account fails with NotFound.
 */
async function allocateUids(tx: Queryable, locals: readonly LocalDelivery[]): Promise<Array<{ mailboxId: number; uid: number; modseq: number }>> {
  const keyOf = (l: LocalDelivery): string => `${l.exactMailbox ? 'exact' : 'deliver'}\n${l.accountId}\n${l.mailbox}`;
  const keys = locals.map(keyOf);
  const byKey = new Map<string, LocalDelivery>();
  locals.forEach((local, i) => {
    if (!byKey.has(keys[i]!)) byKey.set(keys[i]!, local);
  });
  const resolved = new Map<string, number>();
  const forget = (gone: (id: number) => boolean): void => {
    for (const [key, id] of resolved) if (gone(id)) resolved.delete(key);
  };
  for (let attempt = 1; attempt <= 5; attempt++) {
    for (const [key, local] of byKey) {
      if (resolved.has(key)) continue;
      const found = local.exactMailbox
        ? await resolveExact(tx, local.accountId, local.mailbox)
        : await resolveForDelivery(tx, local.accountId, local.mailbox);
      if (!found) {
        throw new NotFound(local.exactMailbox ? `mailbox ${local.mailbox} does not exist` : `account ${local.accountId} no longer exists`);
      }
      resolved.set(key, found.id);
    }
    const counts = new Map<number, number>();
    for (const key of keys) {
      const id = resolved.get(key)!;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    const ids = [...counts.keys()].sort((a, b) => a - b);
    if (ids.length > 1) {
      const locked = await tx.query<{ id: number }>('SELECT id FROM mailboxes WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE', [ids]);
      const present = new Set(locked.map((r) => r.id));
      if (present.size < ids.length) {
        forget((id) => !present.has(id));
        continue;
      }
    }
    const next = new Map<number, { uid: number; modseq: number }>();
    for (const id of ids) {
      const n = counts.get(id)!;
      const row = await tx.one<{ first_uid: number; base_modseq: number }>(
        `UPDATE mailboxes SET uidnext = uidnext + $2, highestmodseq = highestmodseq + $2 WHERE id = $1
         RETURNING uidnext - $2 AS first_uid, highestmodseq - $2 AS base_modseq`,
        [id, n],
      );
      if (!row) break; // only a single, unlocked target can have gone
      next.set(id, { uid: row.first_uid, modseq: row.base_modseq + 1 });
    }
    if (next.size < ids.length) {
      forget((id) => !next.has(id));
      continue;
    }
    return keys.map((key) => {
      const mailboxId = resolved.get(key)!;
      const slot = next.get(mailboxId)!;
      const out = { mailboxId, uid: slot.uid, modseq: slot.modseq };
      slot.uid++;
      slot.modseq++;
      return out;
    });
  }
  throw new TemporaryFailure('the target mailboxes kept changing during the delivery');
}

/** The search row values of the commit's messages: its meta's, else those cached with the blob. */
async function searchValues(tx: Queryable, commit: DeliveryCommit): Promise<SearchValues | null> {
  // Read after the blob reference is taken: a concurrent setBlobMeta (which waits for that
  // reference's lock, or holds it) has either committed its search text or not started.
  const text =
    commit.meta?.search ??
    (await tx.one<{ search: string | null }>('SELECT search FROM blob_meta WHERE hash = $1', [commit.blob.hash]))?.search ??
    null;
  return text === null ? null : parseSearchFields(text);
}

async function enqueue(tx: Queryable, commit: DeliveryCommit, outbound: OutboundEnvelope): Promise<number> {
  const now = Date.now();
  // Identity ids are never reused: an id in a log line, a `queue show` or a lease names one message.
  const { id } = (await tx.one<{ id: number }>(
    `INSERT INTO queue_messages (blob_hash, size, mail_from, env_id, ret, created_at, prefix) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
    [
      commit.blob.hash,
      commit.blob.size,
      outbound.mailFrom,
      outbound.envId ?? null,
      outbound.ret ?? null,
      now,
      outbound.prefix && outbound.prefix.length > 0 ? outbound.prefix : null,
    ],
  ))!;
  // Recipient ids follow the envelope's order.
  await tx.query(
    `INSERT INTO queue_recipients (queue_id, address, orcpt, notify, next_attempt_at)
     SELECT $1, t.address, t.orcpt, t.notify, $2 FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS t(address, orcpt, notify, n)
     ORDER BY t.n`,
    [id, now, outbound.recipients.map((r) => remoteAddress(r.address)), outbound.recipients.map((r) => r.orcpt ?? null), outbound.recipients.map((r) => r.notify ?? null)],
  );
  return id;
}
