/**
 * The mailbox list of an account on PostgreSQL: the list and lookups, CREATE, DELETE, RENAME and
 * subscriptions (the same behaviour as store/sqlite/mailbox-ops.ts).
 *
 * Invariants
 * - Names are validated and INBOX spelled canonically by normalizeMailboxName; `/` is the
 *   hierarchy delimiter. The children of `a` are the names starting with `a/` (starts_with, so
 *   the database's collation plays no part); lists are ordered INBOX first, then by code point
 *   (COLLATE "C", as SQLite's BINARY).
 * - Every change of an account's mailbox list runs in one transaction holding a transaction-scoped
 *   advisory lock on the account (MAILBOX_LIST_LOCK, accountId), so two nodes never interleave a
 *   CREATE, RENAME or DELETE of one account (a child created under a name being renamed, say).
 *   Lock order: that lock, then blob_refs rows, then mailbox rows, then the account row (the
 *   order of delivery and of the message writes, message-ops.ts).
 * - A mailbox keeps its id, UIDVALIDITY, special use and messages through a rename (except
 *   INBOX, RFC 3501 6.3.5: its messages move to a new mailbox and INBOX stays, empty, its UIDs
 *   tombstoned with a new MODSEQ).
 * - Subscriptions are names (RFC 3501 6.3.6): deleting a mailbox keeps them; a rename moves the
 *   subscriptions of the renamed names along (as Dovecot does).
 * - Deleting a mailbox releases its quota usage and blob references in its transaction; its
 *   messages, search rows and tombstones go with the row (ON DELETE CASCADE).
 * - `mailbox` (and, for INBOX's rename, `expunge`) events are published after the commit, never
 *   for a transaction that rolled back (the transaction's function may run more than once: it
 *   builds its events afresh each time).
 */
import { AlreadyExists, InvalidInput, NotFound } from '../../util/errors.js';
import { normalizeMailboxName } from '../names.js';
import type { EventBus, Mailbox, MailEvent, SpecialUse } from '../types.js';
import type { PgBlobStore } from './blob-store.js';
import { releaseBlobRefs } from './blob-refs.js';
import { isForeignKeyViolation, isUniqueViolation, type Db, type Queryable } from './db.js';
import { insertMailbox } from './mailboxes.js';
import { MAILBOX_SELECT, toMailbox, type MailboxRow } from '../rows.js';

const SPECIAL_USES: ReadonlySet<string> = new Set<SpecialUse>(['\\Sent', '\\Drafts', '\\Trash', '\\Junk', '\\Archive']);

/** First key of the advisory lock that serializes changes of one account's mailbox list ('mbox'). */
const MAILBOX_LIST_LOCK = 0x6d626f78;

/** Mailbox names never hold C0 controls (normalizeMailboxName), so this prefix marks a name in passing. */
const PASSING = '\u0001';

const ORDER_BY_NAME = `ORDER BY m.name <> 'INBOX', m.name COLLATE "C"`;

type NamedBox = { id: number; name: string };

interface Change<T> {
  value: T;
  events: MailEvent[];
}

export class PgMailboxOps {
  constructor(
    readonly db: Db,
    readonly blobs: PgBlobStore,
    readonly events: EventBus,
  ) {}

  async listMailboxes(accountId: number): Promise<Mailbox[]> {
    const rows = await this.db.query<MailboxRow>(`${MAILBOX_SELECT} WHERE m.account_id = $1 ${ORDER_BY_NAME}`, [accountId]);
    return rows.map(toMailbox);
  }

  async getMailbox(accountId: number, name: string): Promise<Mailbox | null> {
    const row = await this.db.one<MailboxRow>(`${MAILBOX_SELECT} WHERE m.account_id = $1 AND m.name = $2`, [accountId, normalizeMailboxName(name)]);
    return row ? toMailbox(row) : null;
  }

  async getMailboxById(mailboxId: number): Promise<Mailbox | null> {
    if (!Number.isSafeInteger(mailboxId)) return null;
    const row = await this.db.one<MailboxRow>(`${MAILBOX_SELECT} WHERE m.id = $1`, [mailboxId]);
    return row ? toMailbox(row) : null;
  }

  async createMailbox(accountId: number, name: string, specialUse: SpecialUse | null = null): Promise<Mailbox> {
    // A trailing delimiter says the client means to create children (RFC 3501 6.3.3).
    const wanted = normalizeMailboxName(name.endsWith('/') && name.length > 1 ? name.slice(0, -1) : name);
    if (specialUse !== null && !SPECIAL_USES.has(specialUse)) throw new InvalidInput(`"${specialUse}" is not a special use`);
    return this.write(accountId, async (tx) => {
      await this.account(tx, accountId);
      if (await find(tx, accountId, wanted)) throw new AlreadyExists(`mailbox ${wanted} already exists`);
      const events = await createSuperiors(tx, accountId, wanted);
      const id = await insertMailbox(tx, accountId, wanted, specialUse);
      events.push({ type: 'mailbox', accountId, mailboxId: id, change: 'created' });
      const row = await tx.one<MailboxRow>(`${MAILBOX_SELECT} WHERE m.id = $1`, [id]);
      return { value: toMailbox(row!), events };
    });
  }

  async deleteMailbox(accountId: number, name: string): Promise<void> {
    const wanted = normalizeMailboxName(name);
    if (wanted === 'INBOX') throw new InvalidInput('INBOX cannot be deleted');
    await this.write(accountId, async (tx) => {
      const found = await find(tx, accountId, wanted);
      if (!found) throw new NotFound(`mailbox ${wanted} does not exist`);
      if ((await children(tx, accountId, wanted, 1)).length > 0) {
        throw new InvalidInput(`mailbox ${wanted} has children; delete them first`);
      }
      // The blob_refs rows before the mailbox row, in the order deliveries lock them (see
      // message-ops.ts). A message delivered in between may have a blob not locked here: its row
      // is locked by the release (a deadlock that may cause is detected and retried).
      await tx.query(
        `SELECT 1 AS one FROM blob_refs WHERE hash IN (SELECT blob_hash FROM messages WHERE mailbox_id = $1)
         ORDER BY hash COLLATE "C" FOR UPDATE OF blob_refs`,
        [found.id],
      );
      const box = await tx.one<NamedBox>('SELECT id, name FROM mailboxes WHERE id = $1 FOR UPDATE', [found.id]);
      if (!box) throw new NotFound(`mailbox ${wanted} does not exist`);
      const blobs = await tx.query<{ blob_hash: string; n: number; bytes: number }>(
        'SELECT blob_hash, count(*) AS n, sum(size)::bigint AS bytes FROM messages WHERE mailbox_id = $1 GROUP BY blob_hash',
        [box.id],
      );
      const bytes = blobs.reduce((sum, b) => sum + b.bytes, 0);
      // Messages, their search rows and tombstones go with the row (ON DELETE CASCADE);
      // subscriptions stay.
      await tx.query('DELETE FROM mailboxes WHERE id = $1', [box.id]);
      if (bytes > 0) await tx.query('UPDATE accounts SET used_bytes = greatest(0, used_bytes - $1) WHERE id = $2', [bytes, accountId]);
      // The blobs' database bytes and meta go with their last reference, in this transaction;
      // shared-folder files are left to the orphan sweep (blob-store.ts).
      await releaseBlobRefs(tx, new Map(blobs.map((b) => [b.blob_hash, b.n])));
      return { value: undefined, events: [{ type: 'mailbox', accountId, mailboxId: box.id, change: 'deleted' }] };
    });
  }

  async renameMailbox(accountId: number, from: string, to: string): Promise<void> {
    const fromName = normalizeMailboxName(from);
    const toName = normalizeMailboxName(to);
    await this.write(accountId, async (tx) => {
      await this.account(tx, accountId);
      // Locked: a delivery or a flag change waits for the rename (INBOX's messages move).
      const source = await tx.one<NamedBox>('SELECT id, name FROM mailboxes WHERE account_id = $1 AND name = $2 FOR UPDATE', [accountId, fromName]);
      if (!source) throw new NotFound(`mailbox ${fromName} does not exist`);
      if (await find(tx, accountId, toName)) throw new AlreadyExists(`mailbox ${toName} already exists`);
      if (fromName === 'INBOX') return { value: undefined, events: await renameInbox(tx, accountId, source.id, toName) };
      if (toName.startsWith(`${fromName}/`)) throw new InvalidInput(`mailbox ${fromName} cannot be renamed inside itself`);

      const family = [source, ...(await children(tx, accountId, fromName))];
      const ids = new Set(family.map((b) => b.id));
      const renames = family.map((box) => ({ box, name: normalizeMailboxName(toName + box.name.slice(fromName.length)) }));
      const holders = await tx.query<NamedBox>('SELECT id, name FROM mailboxes WHERE account_id = $1 AND name = ANY($2::text[]) ORDER BY name COLLATE "C"', [
        accountId,
        renames.map((r) => r.name),
      ]);
      for (const holder of holders) {
        // A holder inside the family is itself renamed away.
        if (!ids.has(holder.id)) throw new AlreadyExists(`mailbox ${holder.name} already exists`);
      }
      // Two statements, so no new name collides with an old one still in place (PostgreSQL checks
      // a unique index row by row, not at the end of the statement).
      await tx.query(
        `UPDATE mailboxes m SET name = $2 || m.id::text FROM unnest($1::bigint[]) AS v(id) WHERE m.id = v.id`,
        [renames.map((r) => r.box.id), PASSING],
      );
      await tx.query('UPDATE mailboxes m SET name = v.name FROM unnest($1::bigint[], $2::text[]) AS v(id, name) WHERE m.id = v.id', [
        renames.map((r) => r.box.id),
        renames.map((r) => r.name),
      ]);
      // The subscriptions of the old names become subscriptions of the new ones.
      const unsubscribed = await tx.query<{ name: string }>('DELETE FROM subscriptions WHERE account_id = $1 AND name = ANY($2::text[]) RETURNING name', [
        accountId,
        renames.map((r) => r.box.name),
      ]);
      const had = new Set(unsubscribed.map((r) => r.name));
      const subscribe = renames.filter((r) => had.has(r.box.name)).map((r) => r.name);
      if (subscribe.length > 0) {
        await tx.query(
          'INSERT INTO subscriptions (account_id, name) SELECT $1, unnest($2::text[]) ON CONFLICT (account_id, name) DO NOTHING',
          [accountId, subscribe],
        );
      }
      const events = await createSuperiors(tx, accountId, toName);
      for (const { box } of renames) events.push({ type: 'mailbox', accountId, mailboxId: box.id, change: 'renamed' });
      return { value: undefined, events };
    });
  }

  async setSubscribed(accountId: number, name: string, subscribed: boolean): Promise<void> {
    const wanted = normalizeMailboxName(name);
    await this.db.tx(async (tx) => {
      await this.account(tx, accountId);
      if (subscribed) {
        await tx.query('INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT (account_id, name) DO NOTHING', [accountId, wanted]);
      } else {
        await tx.query('DELETE FROM subscriptions WHERE account_id = $1 AND name = $2', [accountId, wanted]);
      }
    }).catch((e: unknown) => {
      // The account went between the check and the insert.
      throw isForeignKeyViolation(e) ? new NotFound(`account ${accountId} does not exist`) : e;
    });
  }

  async listSubscriptions(accountId: number): Promise<string[]> {
    const rows = await this.db.query<{ name: string }>(
      `SELECT name FROM subscriptions WHERE account_id = $1 ORDER BY name <> 'INBOX', name COLLATE "C"`,
      [accountId],
    );
    return rows.map((r) => r.name);
  }

  /**
   * Runs a change of the account's mailbox list under its advisory lock, then publishes its
   * events. A unique violation (a name taken by a writer that did not hold the lock, such as
   * account creation) is AlreadyExists; a foreign-key violation (the account went) NotFound.
   */
  private async write<T>(accountId: number, work: (tx: Queryable) => Promise<Change<T>>): Promise<T> {
    let result: Change<T>;
    try {
      result = await this.db.tx(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [MAILBOX_LIST_LOCK, lockKey(accountId)]);
        return work(tx);
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw new AlreadyExists(`a mailbox of account ${accountId} was created meanwhile; try again`);
      if (isForeignKeyViolation(e)) throw new NotFound(`account ${accountId} does not exist`);
      throw e;
    }
    publish(this.events, result.events);
    return result.value;
  }

  private async account(tx: Queryable, accountId: number): Promise<void> {
    if (!Number.isSafeInteger(accountId) || !(await tx.one('SELECT 1 AS one FROM accounts WHERE id = $1', [accountId]))) {
      throw new NotFound(`account ${accountId} does not exist`);
    }
  }
}

/**
 * RFC 3501 6.3.5: a new mailbox `to` (new UIDVALIDITY) takes every INBOX message with its UID;
 * INBOX keeps its UIDVALIDITY and uidnext, and its UIDs become expunged. INBOX's children stay.
 * The caller holds INBOX's row lock.
 */
async function renameInbox(tx: Queryable, accountId: number, inboxId: number, to: string): Promise<MailEvent[]> {
  const events = await createSuperiors(tx, accountId, to);
  const id = await insertMailbox(tx, accountId, to, null);
  await tx.query(
    'UPDATE mailboxes SET (uidnext, highestmodseq) = (SELECT uidnext, highestmodseq FROM mailboxes WHERE id = $1) WHERE id = $2',
    [inboxId, id],
  );
  events.push({ type: 'mailbox', accountId, mailboxId: id, change: 'created' });
  const uids = (await tx.query<{ uid: number }>('SELECT uid FROM messages WHERE mailbox_id = $1 ORDER BY uid', [inboxId])).map((r) => r.uid);
  if (uids.length > 0) {
    const { modseq: modSeq } = (await tx.one<{ modseq: number }>(
      'UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 RETURNING highestmodseq AS modseq',
      [inboxId],
    ))!;
    await tx.query('UPDATE messages SET mailbox_id = $1 WHERE mailbox_id = $2', [id, inboxId]);
    await tx.query('UPDATE message_search SET mailbox_id = $1 WHERE mailbox_id = $2', [id, inboxId]);
    await tx.query(
      `INSERT INTO expunged (mailbox_id, uid, modseq) SELECT $1, unnest($2::bigint[]), $3
       ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq`,
      [inboxId, uids, modSeq],
    );
    for (const uid of uids) events.push({ type: 'expunge', accountId, mailboxId: inboxId, uid, modSeq });
  }
  if (await tx.one("SELECT 1 AS one FROM subscriptions WHERE account_id = $1 AND name = 'INBOX'", [accountId])) {
    await tx.query('INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT (account_id, name) DO NOTHING', [accountId, to]);
  }
  return events;
}

/** Creates the missing superiors of `name` (no special use, not subscribed). */
async function createSuperiors(tx: Queryable, accountId: number, name: string): Promise<MailEvent[]> {
  const events: MailEvent[] = [];
  const levels = name.split('/');
  for (let i = 1; i < levels.length; i++) {
    const superior = levels.slice(0, i).join('/');
    if (await find(tx, accountId, superior)) continue;
    const id = await insertMailbox(tx, accountId, superior, null);
    events.push({ type: 'mailbox', accountId, mailboxId: id, change: 'created' });
  }
  return events;
}

/** The mailboxes below `name`, in name order. */
async function children(tx: Queryable, accountId: number, name: string, limit: number | null = null): Promise<NamedBox[]> {
  return tx.query<NamedBox>(
    `SELECT id, name FROM mailboxes WHERE account_id = $1 AND starts_with(name, $2) ORDER BY name COLLATE "C" LIMIT $3`,
    [accountId, `${name}/`, limit],
  );
}

async function find(tx: Queryable, accountId: number, name: string): Promise<NamedBox | undefined> {
  return tx.one<NamedBox>('SELECT id, name FROM mailboxes WHERE account_id = $1 AND name = $2', [accountId, name]);
}

/** The second key of the advisory lock: account ids are positive and far below 2^31 in practice. */
function lockKey(accountId: number): number {
  return accountId % 0x80000000 | 0;
}

/** Publishes after the commit; the bus must not throw, and the write is durable regardless. */
export function publish(bus: EventBus, events: readonly MailEvent[]): void {
  for (const event of events) {
    try {
      bus.publish(event);
    } catch {
      // See EventBus.
    }
  }
}
