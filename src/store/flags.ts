/**
 * Message flags as the store keeps them, shared by every adapter.
 *
 * Invariants
 * - System flags are case-insensitive in IMAP (RFC 3501 2.3.2): they are stored spelled
 *   canonically (`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`), so a query can look
 *   for the exact text `"\\Seen"` in the JSON column.
 * - Keywords keep the case they were first set with, and compare case-insensitively.
 * - `\Recent` is never stored: it belongs to a session, not to the message. Other `\` flags
 *   are refused, as are keywords that are not IMAP atoms.
 */
import { InvalidInput } from '../util/errors.js';
import type { FlagUpdate, MessageFlags } from './types.js';

export const SYSTEM_FLAGS = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'] as const;

const SYSTEM = new Map<string, string>(SYSTEM_FLAGS.map((f) => [f.toLowerCase(), f]));
// atom-char: CHAR except atom-specials ( ) { SP CTL % * " \ ]
const KEYWORD = /^[\x21\x23-\x24\x26-\x27\x2b-\x5b\x5e-\x7a\x7c-\x7e]+$/;
const MAX_KEYWORD_LENGTH = 256;

/** The comparison key of a flag (flags compare case-insensitively). */
export function flagKey(flag: string): string {
  return flag.toLowerCase();
}

/**
 * Validated, canonically spelled flags, without duplicates (the first spelling wins) and without
 * `\Recent`. Throws InvalidInput for an unknown system flag or a keyword that is not an atom.
 */
export function canonicalFlags(flags: readonly string[]): string[] {
  const out = new Map<string, string>();
  for (const flag of flags) {
    const key = flagKey(flag);
    if (key === '\\recent' || out.has(key)) continue;
    if (flag.startsWith('\\')) {
      const system = SYSTEM.get(key);
      if (system === undefined) throw new InvalidInput(`"${flag}" is not a flag this server stores`);
      out.set(key, system);
    } else if (flag.length <= MAX_KEYWORD_LENGTH && KEYWORD.test(flag)) {
      out.set(key, flag);
    } else {
      throw new InvalidInput(`"${flag}" is not a valid keyword`);
    }
  }
  return [...out.values()];
}

/**
 * The flags after a STORE of `change` (already canonical) in `mode`, or null when they stay the
 * same. `current` is what the row holds; it is canonicalized leniently (a stored `\Recent` from
 * before this rule, or an odd spelling, is dropped or fixed, which counts as a change).
 */
export function applyFlagChange(current: readonly string[], mode: 'add' | 'remove' | 'set', change: readonly string[]): string[] | null {
  const kept = new Map<string, string>();
  for (const flag of current) {
    const key = flagKey(flag);
    if (key !== '\\recent' && !kept.has(key)) kept.set(key, SYSTEM.get(key) ?? flag);
  }
  let next: string[];
  if (mode === 'set') {
    // A keyword already there keeps its spelling: keywords compare case-insensitively.
    next = change.map((flag) => kept.get(flagKey(flag)) ?? flag);
  } else if (mode === 'remove') {
    const keys = new Set(change.map(flagKey));
    next = [...kept].filter(([key]) => !keys.has(key)).map(([, flag]) => flag);
  } else {
    for (const flag of change) if (!kept.has(flagKey(flag))) kept.set(flagKey(flag), flag);
    next = [...kept.values()];
  }
  return sameFlags(current, next) ? null : next;
}

/** Same flags with the same spelling, order aside. */
function sameFlags(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return set.size === a.length && b.every((f) => set.has(f));
}

/** Checks a STORE's mode and UNCHANGEDSINCE; returns its flags, canonical. */
export function checkFlagUpdate(update: FlagUpdate): string[] {
  if (!['add', 'remove', 'set'].includes(update.mode)) throw new InvalidInput(`unknown flag update mode ${update.mode}`);
  const { unchangedSince } = update;
  if (unchangedSince !== undefined && (!Number.isSafeInteger(unchangedSince) || unchangedSince < 0)) {
    throw new InvalidInput(`UNCHANGEDSINCE must be a whole number, not ${unchangedSince}`);
  }
  return canonicalFlags(update.flags);
}

/**
 * What a STORE does to the rows it read (in UID order), for both store adapters: those that fail
 * UNCHANGEDSINCE (`modified`), those whose flags change (`changed`, with the new flags; their
 * MODSEQ is set by the caller once it has one), and what the client is told (`updated`).
 */
export function planFlagUpdate<R extends { uid: number; modseq: number; flags: string }>(
  rows: readonly R[],
  update: FlagUpdate,
  change: readonly string[],
): { modified: number[]; updated: MessageFlags[]; changed: Array<{ row: R; entry: MessageFlags }> } {
  const { unchangedSince } = update;
  const modified: number[] = [];
  const updated: MessageFlags[] = [];
  const changed: Array<{ row: R; entry: MessageFlags }> = [];
  for (const row of rows) {
    if (unchangedSince !== undefined && row.modseq > unchangedSince) {
      modified.push(row.uid);
      continue;
    }
    const current = JSON.parse(row.flags) as string[];
    const next = applyFlagChange(current, update.mode, change);
    if (next !== null) {
      const entry = { uid: row.uid, modSeq: 0, flags: next };
      changed.push({ row, entry });
      updated.push(entry);
    } else if (unchangedSince !== undefined) {
      // Passed the test, nothing to change: reported with its current state (RFC 7162 3.1.3).
      updated.push({ uid: row.uid, modSeq: row.modseq, flags: current });
    }
  }
  return { modified, updated, changed };
}
