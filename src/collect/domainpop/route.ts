/**
 * DomainPOP routing: turns the candidate addresses of a collected message (recipients.ts) into
 * the copies to deliver, under the source's policies.
 *
 * - Local addresses (aliases, catch-alls) go through the directory like SMTP recipients.
 * - A local-domain address with no mailbox goes to the postmaster (or is dropped, logged).
 * - Foreign addresses: ignored; listed in one copy to the postmaster; or relayed (never those
 *   read from Received lines, which any sender can forge).
 * - Name matching: `"Joe User" <info@...>` goes to the account whose real name is Joe User.
 * - Nothing deliverable: the postmaster gets the message; it is never dropped silently.
 */
import { resolveRecipient } from '../../directory/resolve.js';
import type { Directory } from '../../directory/directory.js';
import type { HeaderField } from '../../message/header.js';
import type { Account } from '../../store/types.js';
import type { DomainPopConfig } from '../source-config.js';
import type { Routing, RoutedCopy } from '../collector.js';
import { extractRecipients, type RecipientCandidate } from './recipients.js';
import { messageKey, senderOf } from '../message-facts.js';

export async function routeDomainPop(
  fields: readonly HeaderField[],
  config: DomainPopConfig,
  directory: Directory,
  postmaster: string,
  /** The accounts by real name (accountsByRealName), read once per run by the caller. */
  accountsByName?: Promise<Map<string, Account>>,
): Promise<Routing> {
  const isLocalDomain = async (address: string): Promise<boolean> =>
    (await directory.getDomain(address.slice(address.lastIndexOf('@') + 1))) !== null;
  const isLocal = async (address: string): Promise<boolean> => (await resolveRecipient(directory, address)).kind === 'local';
  const candidates = await extractRecipients(fields, { ...config }, config.received && config.stopAtLocal ? isLocal : isLocalDomain);
  const copies: RoutedCopy[] = [];
  const notes: string[] = [];
  const foreign: RecipientCandidate[] = [];
  const unknown: RecipientCandidate[] = [];
  const realNames = config.nameMatching ? await (accountsByName ?? accountsByRealName(directory, config.domain)) : null;

  for (const candidate of candidates) {
    const matched = realNames ? matchRealName(candidate, realNames) : null;
    if (matched) {
      copies.push({ address: matched.address, source: `${candidate.source} (real name "${candidate.name}")` });
      continue;
    }
    const resolution = await resolveRecipient(directory, candidate.address);
    if (resolution.kind === 'local') copies.push({ address: candidate.address, source: candidate.source });
    else if (resolution.kind === 'unknown') unknown.push(candidate);
    else foreign.push(candidate);
  }

  for (const u of unknown) {
    if (config.unknown === 'postmaster') {
      notes.push(`${u.address} (from ${u.source}) has no mailbox here: a copy goes to the postmaster`);
      copies.push({ address: postmaster, source: `unknown ${u.address}`, headers: `X-Fulmar-Unknown-Recipient: ${u.address}\r\n` });
    } else {
      notes.push(`${u.address} (from ${u.source}) has no mailbox here: dropped (unknown = drop)`);
    }
  }

  const foreignUsable = foreign.filter((f) => !f.fromReceived);
  if (foreign.length > 0) {
    if (config.foreign === 'relay') {
      for (const f of foreignUsable) copies.push({ address: f.address, source: f.source, relay: true });
      for (const f of foreign.filter((x) => x.fromReceived)) notes.push(`${f.address} (from ${f.source}) is not ours and came from a Received line: not relayed`);
    } else if (config.foreign === 'postmaster' && foreignUsable.length > 0) {
      const list = foreignUsable.map((f) => f.address).join(', ');
      notes.push(`foreign recipients ${list}: one copy to the postmaster`);
      copies.push({ address: postmaster, source: 'foreign summary', headers: `X-Fulmar-Foreign-Recipients: ${list}\r\n` });
    } else if (config.foreign === 'ignore') {
      notes.push(`foreign recipients ignored: ${foreign.map((f) => f.address).join(', ')}`);
    }
  }

  if (copies.length === 0) {
    notes.push(candidates.length === 0 ? 'no recipient found in the header: the postmaster gets it' : 'no deliverable recipient: the postmaster gets it');
    copies.push({ address: postmaster, source: 'no recipient', headers: 'X-Fulmar-Collect-Note: no local recipient found\r\n' });
  }
  return { mailFrom: senderOf(fields), copies: mergeCopies(copies), dedupeKey: messageKey(fields, config.dedupe), notes };
}

/** One copy per address; notes of copies to the same address (the postmaster) are joined. */
function mergeCopies(copies: RoutedCopy[]): RoutedCopy[] {
  const byAddress = new Map<string, RoutedCopy>();
  for (const c of copies) {
    const key = c.address.toLowerCase();
    const seen = byAddress.get(key);
    if (!seen) byAddress.set(key, { ...c });
    else {
      if (c.headers) seen.headers = (seen.headers ?? '') + c.headers;
      if (!seen.source.includes(c.source)) seen.source += `, ${c.source}`;
    }
  }
  return [...byAddress.values()];
}

/** The accounts of a domain by real name (lower-cased), for name matching; one read per run. */
export async function accountsByRealName(directory: Directory, domain: string): Promise<Map<string, Account>> {
  const map = new Map<string, Account>();
  for (const account of await directory.listUsers(domain)) {
    if (account.realName && !account.disabled) map.set(account.realName.trim().toLowerCase(), account);
  }
  return map;
}

function matchRealName(candidate: RecipientCandidate, accounts: Map<string, Account>): Account | null {
  const name = candidate.name.trim();
  // MDaemon: a real name holding , ; or : is not matched (it is a list, not a person).
  if (name === '' || /[,;:]/.test(name)) return null;
  return accounts.get(name.toLowerCase()) ?? null;
}
