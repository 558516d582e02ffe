/**
 * MultiPOP routing: every message of a user's remote mailbox goes to that user's account, as it
 * is (no header guessing, no dedupe: the remote mailbox is the user's own).
 */
import type { HeaderField } from '../../message/header.js';
import type { Account } from '../../store/types.js';
import type { Routing } from '../collector.js';
import { senderOf } from '../message-facts.js';

export function routeMultiPop(fields: readonly HeaderField[], account: Account): Routing {
  return { mailFrom: senderOf(fields), copies: [{ address: account.address, source: 'MultiPOP' }], dedupeKey: null, notes: [] };
}
