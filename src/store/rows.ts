/**
 * Row shapes of the store's tables and their mapping to the store's types, for both adapters
 * (the SQLite and PostgreSQL schemas have the same columns). Column lists live here once, so
 * every query of a table returns the same shape.
 *
 * Invariants: timestamps are integer ms, flags a JSON array of strings; booleans are 0/1 in
 * SQLite and true/false in PostgreSQL (sqlBool reads both). Row shapes are type aliases, so they
 * fit the PostgreSQL adapter's `Record<string, unknown>` rows.
 */
import type { Account, CollectKind, CollectSource, Domain, Mailbox, MessageRecord, MessageWithMeta, SpecialUse } from './types.js';

/** A boolean column as either backend returns it. */
export function sqlBool(value: number | boolean): boolean {
  return value === true || value === 1;
}

export type DomainRow = {
  id: number;
  name: string;
  max_message_size: number | null;
  created_at: number;
};
export const DOMAIN_COLUMNS = 'id, name, max_message_size, created_at';

export function toDomain(row: DomainRow): Domain {
  return { id: row.id, name: row.name, maxMessageSize: row.max_message_size, createdAt: new Date(row.created_at) };
}

export type AccountRow = {
  id: number;
  address: string;
  local_part: string;
  domain: string;
  password_hash: string;
  quota_bytes: number | null;
  used_bytes: number;
  real_name: string | null;
  disabled: number | boolean;
  /** JSON array of strings. */
  send_as: string;
  created_at: number;
};
/** Select list over `accounts a JOIN domains d ON d.id = a.domain_id`. */
export const ACCOUNT_SELECT = `SELECT a.id, a.address, a.local_part, d.name AS domain, a.password_hash, a.quota_bytes,
  a.used_bytes, a.real_name, a.disabled, a.send_as, a.created_at
  FROM accounts a JOIN domains d ON d.id = a.domain_id`;

export function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    address: row.address,
    localPart: row.local_part,
    domain: row.domain,
    passwordHash: row.password_hash,
    quotaBytes: row.quota_bytes,
    usedBytes: row.used_bytes,
    realName: row.real_name,
    disabled: sqlBool(row.disabled),
    sendAs: JSON.parse(row.send_as) as string[],
    createdAt: new Date(row.created_at),
  };
}

export type MailboxRow = {
  id: number;
  account_id: number;
  name: string;
  special_use: string | null;
  uidvalidity: number;
  uidnext: number;
  highestmodseq: number;
  subscribed: number | boolean;
  message_count: number;
};
/** Select list over `mailboxes m`, with the message count and the subscription (by name). */
export const MAILBOX_SELECT = `SELECT m.id, m.account_id, m.name, m.special_use, m.uidvalidity, m.uidnext,
  m.highestmodseq,
  EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = m.account_id AND s.name = m.name) AS subscribed,
  (SELECT count(*) FROM messages WHERE mailbox_id = m.id) AS message_count
  FROM mailboxes m`;

export function toMailbox(row: MailboxRow): Mailbox {
  return {
    id: row.id,
    accountId: row.account_id,
    name: row.name,
    specialUse: row.special_use as SpecialUse | null,
    uidValidity: row.uidvalidity,
    uidNext: row.uidnext,
    highestModSeq: row.highestmodseq,
    subscribed: sqlBool(row.subscribed),
    messageCount: row.message_count,
  };
}

export type MessageRow = {
  id: number;
  mailbox_id: number;
  uid: number;
  modseq: number;
  blob_hash: string;
  blob_size: number;
  prefix: Buffer;
  size: number;
  internal_date: number;
  flags: string;
};
export const MESSAGE_COLUMNS = 'id, mailbox_id, uid, modseq, blob_hash, blob_size, prefix, size, internal_date, flags';

export function toMessage(row: MessageRow): MessageRecord {
  return {
    id: row.id,
    mailboxId: row.mailbox_id,
    uid: row.uid,
    modSeq: row.modseq,
    blobHash: row.blob_hash,
    blobSize: row.blob_size,
    prefix: row.prefix,
    size: row.size,
    internalDate: new Date(row.internal_date),
    flags: JSON.parse(row.flags) as string[],
  };
}

export type MessageWithMetaRow = MessageRow & {
  envelope: string | null;
  structure: string | null;
};
/** Select list over `messages m LEFT JOIN blob_meta b ON b.hash = m.blob_hash`. */
export const MESSAGE_WITH_META_SELECT = `SELECT m.id, m.mailbox_id, m.uid, m.modseq, m.blob_hash, m.blob_size, m.prefix,
  m.size, m.internal_date, m.flags, b.envelope, b.structure
  FROM messages m LEFT JOIN blob_meta b ON b.hash = m.blob_hash`;

export function toMessageWithMeta(row: MessageWithMetaRow): MessageWithMeta {
  const meta = row.envelope !== null && row.structure !== null ? { envelope: row.envelope, structure: row.structure } : null;
  return { ...toMessage(row), meta };
}

export type CollectSourceRow = {
  id: number;
  kind: CollectKind;
  name: string;
  account_id: number | null;
  config: string;
  enabled: number | boolean;
  created_at: number;
  last_run_at: number | null;
  last_ok_at: number | null;
  last_error: string | null;
  last_collected: number;
  total_collected: number;
  run_owner: string | null;
  run_until: number | null;
};

export const COLLECT_SOURCE_COLUMNS =
  'id, kind, name, account_id, config, enabled, created_at, last_run_at, last_ok_at, last_error, last_collected, total_collected, run_owner, run_until';

const dateOrNull = (ms: number | null): Date | null => (ms === null ? null : new Date(ms));

export function toCollectSource(r: CollectSourceRow): CollectSource {
  return {
    id: r.id,
    kind: r.kind,
    name: r.name,
    accountId: r.account_id,
    config: r.config,
    enabled: sqlBool(r.enabled),
    createdAt: new Date(r.created_at),
    lastRunAt: dateOrNull(r.last_run_at),
    lastOkAt: dateOrNull(r.last_ok_at),
    lastError: r.last_error,
    lastCollected: r.last_collected,
    totalCollected: r.total_collected,
    runOwner: r.run_owner,
    runUntil: dateOrNull(r.run_until),
  };
}
