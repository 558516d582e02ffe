/**
 * Row shapes of the outbound queue tables (queue_messages, queue_recipients), their mapping to
 * QueuedMessage, and the checks of a lease's arguments, for both store adapters. Column lists
 * live here once, so every query returns the same shape.
 */
import { sqlBool } from './rows.js';
import { InvalidInput } from '../util/errors.js';
import type { QueuedMessage, RecipientResult } from './types.js';

export type QueueMessageRow = {
  id: number;
  blob_hash: string;
  size: number;
  mail_from: string;
  env_id: string | null;
  ret: 'FULL' | 'HDRS' | null;
  created_at: number;
  held: number | boolean;
  prefix: Buffer | null;
};

export type QueueRecipientRow = {
  id: number;
  queue_id: number;
  address: string;
  orcpt: string | null;
  notify: string | null;
  status: QueuedMessage['recipients'][number]['status'];
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  remote_mta: string | null;
  delay_warned: number | boolean;
};

export const QUEUE_MESSAGE_COLUMNS = 'id, blob_hash, size, mail_from, env_id, ret, created_at, held, prefix';
export const QUEUE_RECIPIENT_COLUMNS =
  'id, queue_id, address, orcpt, notify, status, attempts, next_attempt_at, last_error, remote_mta, delay_warned';

/** The statuses of a recipient still waiting for delivery (the partial index queue_recipients_waiting). */
export const WAITING = `status IN ('queued', 'deferred')`;

export function toQueued(m: QueueMessageRow, recipients: QueueRecipientRow[]): QueuedMessage {
  return {
    id: m.id,
    blobHash: m.blob_hash,
    prefix: m.prefix ?? Buffer.alloc(0),
    size: m.size,
    mailFrom: m.mail_from,
    createdAt: new Date(m.created_at),
    envId: m.env_id,
    ret: m.ret,
    held: sqlBool(m.held),
    recipients: recipients.map((r) => ({
      id: r.id,
      address: r.address,
      orcpt: r.orcpt,
      notify: r.notify,
      status: r.status,
      attempts: r.attempts,
      nextAttemptAt: new Date(r.next_attempt_at),
      lastError: r.last_error,
      remoteMta: r.remote_mta,
      delayWarned: sqlBool(r.delay_warned),
    })),
  };
}

/** Groups recipient rows (ordered by queue_id) by their message. */
export function byQueueId(recipients: QueueRecipientRow[]): Map<number, QueueRecipientRow[]> {
  const byQueue = new Map<number, QueueRecipientRow[]>();
  for (const r of recipients) {
    const list = byQueue.get(r.queue_id);
    if (list) list.push(r);
    else byQueue.set(r.queue_id, [r]);
  }
  return byQueue;
}

// ---- checks of what the queue's callers pass, before anything is written

const OUTCOMES: ReadonlySet<string> = new Set<RecipientResult['outcome']>(['delivered', 'deferred', 'failed']);

export function checkOwner(owner: string): void {
  if (typeof owner !== 'string' || owner.length === 0) throw new InvalidInput('a queue lease needs an owner name');
}

export function checkTime(date: Date | undefined, what: string): number {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) throw new InvalidInput(`${what} is not a valid date`);
  return date.getTime();
}

/** Rejects malformed results before anything is written (or joins a batch, where it would fail others). */
export function checkResults(queueId: number, owner: string, results: RecipientResult[]): void {
  if (!Number.isSafeInteger(queueId)) throw new InvalidInput(`no queue id ${queueId}`);
  checkOwner(owner);
  if (!Array.isArray(results)) throw new InvalidInput('delivery results must be a list');
  const seen = new Set<number>();
  for (const r of results) {
    if (!Number.isSafeInteger(r.recipientId)) throw new InvalidInput(`no recipient id ${r.recipientId}`);
    if (seen.has(r.recipientId)) throw new InvalidInput(`recipient ${r.recipientId} has two results`);
    seen.add(r.recipientId);
    if (!OUTCOMES.has(r.outcome)) throw new InvalidInput(`unknown delivery outcome ${String(r.outcome)}`);
    if (r.outcome === 'deferred') checkTime(r.nextAttemptAt, `the next attempt of deferred recipient ${r.recipientId}`);
  }
}
