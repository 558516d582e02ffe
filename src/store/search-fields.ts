/**
 * The header SEARCH text of a message as both store adapters keep it: the columns of the
 * message_search table and the parse of BlobMeta.search into their values. Pure.
 */
import { InvalidInput } from '../util/errors.js';
import type { SearchField } from './types.js';

export const SEARCH_COLUMNS: Readonly<Record<SearchField, string>> = {
  subject: 'subject',
  from: 'from_addr',
  to: 'to_addr',
  cc: 'cc_addr',
  bcc: 'bcc_addr',
};

const FIELDS = Object.keys(SEARCH_COLUMNS) as SearchField[];

/** The row values, in column order after (mailbox_id, uid). */
export type SearchValues = [subject: string | null, from: string | null, to: string | null, cc: string | null, bcc: string | null];

/** Parses BlobMeta.search; InvalidInput when it is not a SearchFields object. */
export function parseSearchFields(text: string): SearchValues {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InvalidInput('blob meta search is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidInput('blob meta search is not an object');
  const fields = parsed as Partial<Record<SearchField, unknown>>;
  return FIELDS.map((f) => {
    const value = fields[f] ?? null;
    if (value !== null && typeof value !== 'string') throw new InvalidInput(`blob meta search.${f} is not a string`);
    return value;
  }) as SearchValues;
}
