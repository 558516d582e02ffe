/**
 * What both store adapters check of a DeliveryCommit before they touch anything, and how they
 * write a remote recipient's address. Pure.
 */
import { InvalidInput } from '../util/errors.js';
import { canonicalFlags } from './flags.js';
import { parseSearchFields } from './search-fields.js';
import type { DeliveryCommit } from './types.js';

/** Rejects malformed commits before anything is touched (or joins a batch, where it would fail others). */
export function checkCommit(commit: DeliveryCommit): void {
  const { blob } = commit;
  if (!blob || !/^[0-9a-f]{64}$/.test(blob.hash) || !Number.isSafeInteger(blob.size) || blob.size < 0) {
    throw new InvalidInput('delivery commit has no valid staged blob');
  }
  if (!(commit.internalDate instanceof Date) || Number.isNaN(commit.internalDate.getTime())) {
    throw new InvalidInput('delivery commit has no valid internal date');
  }
  if (!Array.isArray(commit.local)) throw new InvalidInput('delivery commit has no list of local deliveries');
  for (const local of commit.local) {
    if (
      !Number.isSafeInteger(local.accountId) ||
      typeof local.mailbox !== 'string' ||
      !Buffer.isBuffer(local.prefix) ||
      !Array.isArray(local.flags)
    ) {
      throw new InvalidInput(`delivery commit has a malformed local delivery for account ${local.accountId}`);
    }
    canonicalFlags(local.flags); // throws InvalidInput for a flag the store would not keep
  }
  if (commit.meta && (typeof commit.meta.envelope !== 'string' || typeof commit.meta.structure !== 'string')) {
    throw new InvalidInput('delivery commit has malformed blob meta');
  }
  if (commit.meta?.search !== undefined) {
    if (typeof commit.meta.search !== 'string') throw new InvalidInput('delivery commit has malformed blob meta');
    parseSearchFields(commit.meta.search); // InvalidInput when malformed
  }
  if (commit.outbound) {
    const { outbound } = commit;
    if (typeof outbound.mailFrom !== 'string' || !Array.isArray(outbound.recipients) || outbound.recipients.some((r) => typeof r?.address !== 'string')) {
      throw new InvalidInput('delivery commit has a malformed outbound envelope');
    }
    if (outbound.prefix != null && !Buffer.isBuffer(outbound.prefix)) throw new InvalidInput('delivery commit has a malformed outbound prefix');
  }
  if (commit.local.length === 0 && (commit.outbound?.recipients.length ?? 0) === 0) {
    throw new InvalidInput('delivery commit has no recipients');
  }
}

/**
 * A remote recipient keeps its local part as given (only the receiving server may fold its
 * case, RFC 5321 2.4); the domain is lower-cased.
 */
export function remoteAddress(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? address : address.slice(0, at + 1) + address.slice(at + 1).toLowerCase();
}
