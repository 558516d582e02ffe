/**
 * The one table from the store's error kinds to IMAP response codes (rfc5530, rfc9051 7.1).
 */
import type { FulmarErrorKind } from '../util/errors.js';

const CODES: Record<FulmarErrorKind, string> = {
  temp: 'UNAVAILABLE',
  'not-found': 'NONEXISTENT',
  exists: 'ALREADYEXISTS',
  expunged: 'EXPUNGEISSUED',
  'no-quota': 'OVERQUOTA',
  'in-use': 'INUSE',
  limit: 'LIMIT',
  'too-big': 'TOOBIG',
  invalid: 'CANNOT',
  denied: 'NOPERM',
};

export function responseCodeFor(kind: FulmarErrorKind): string {
  return CODES[kind];
}
