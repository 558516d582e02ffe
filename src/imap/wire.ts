/**
 * Formatting primitives for IMAP responses: strings, flag lists, mailbox names, dates and
 * sequence sets, each in the form the formal syntax requires.
 *
 * Purpose: every response line is built from these, so that quoting and literal rules live in
 * one place. Nothing here writes to a socket; values go out as JS strings that the session
 * writes as UTF-8, so a literal's `{n}` counts the UTF-8 bytes of its text.
 *
 * Invariants
 * - A value that cannot be a quoted string (CR, LF, NUL, or 8-bit text for a client without
 *   UTF-8) goes as a literal. NUL cannot be sent in a literal either (rfc9051 4.3: CHAR8) and is
 *   dropped.
 * - `imapString`/`nstring` never produce an atom (the grammar's `string` is quoted / literal);
 *   `astring` and `mailboxName` produce an atom when the value is one, but never the atom NIL.
 * - Pure; nothing throws.
 *
 * Security: values come from messages and clients (subjects, names, mailbox names). A value is
 * never written raw: it is an atom only when every character is an ASTRING-CHAR, and otherwise
 * quoted with `\` and `"` escaped, or a literal with an exact byte count, so no value can end a
 * response line early or inject another response.
 *
 * Standards: rfc3501 9 and rfc9051 9 (string, astring, nstring, flag-list, date-time,
 * sequence-set), rfc9051 4.3 (literals), rfc6855 3 (UTF-8 in quoted strings after UTF8=ACCEPT),
 * rfc3501 5.1.3 (modified UTF-7 mailbox names), rfc5182 ("$").
 */
import type { SequenceSet } from './ast.js';
import { encodeMailboxName } from './mutf7.js';

export interface StringOptions {
  /** The client accepts UTF-8 in quoted strings (UTF8=ACCEPT enabled, rfc6855 3). */
  utf8?: boolean;
}

/** rfc9051 9: ASTRING-CHAR = ATOM-CHAR / resp-specials (printable ASCII except `(){ %*"\`). */
function isAstringChar(c: number): boolean {
  return c > 0x20 && c < 0x7f && c !== 0x28 && c !== 0x29 && c !== 0x7b && c !== 0x25 && c !== 0x2a && c !== 0x22 && c !== 0x5c;
}

/** How a value must be sent: 'atom' only when every character is an ASTRING-CHAR. */
function classify(value: string, utf8: boolean): 'atom' | 'quoted' | 'literal' {
  let atom = value.length > 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // rfc9051 9: TEXT-CHAR excludes CR and LF, CHAR excludes NUL; 8-bit only with UTF-8.
    if (c === 0x0a || c === 0x0d || c === 0) return 'literal';
    if (c >= 0x80) {
      if (!utf8) return 'literal';
      atom = false;
    } else if (atom && !isAstringChar(c)) {
      atom = false;
    }
  }
  return atom ? 'atom' : 'quoted';
}

/** rfc9051 9 quoted: `"` … `"` with `\` and `"` escaped. The caller ensures no CR, LF or NUL. */
export function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** rfc9051 4.3 literal: `{n}` CRLF and the text, n counting UTF-8 bytes; NUL is dropped. */
export function literal(value: string): string {
  const clean = value.includes('\0') ? value.replace(/\0/g, '') : value;
  return `{${Buffer.byteLength(clean, 'utf8')}}\r\n${clean}`;
}

/** rfc9051 9 string = quoted / literal: quoted when it can be, else a literal. */
export function imapString(value: string, opts: StringOptions = {}): string {
  return classify(value, opts.utf8 === true) === 'literal' ? literal(value) : quoted(value);
}

/** rfc9051 9 nstring = string / nil. */
export function nstring(value: string | null | undefined, opts: StringOptions = {}): string {
  return value === null || value === undefined ? 'NIL' : imapString(value, opts);
}

/** rfc9051 9 astring = 1*ASTRING-CHAR / string: an atom when it is one (never NIL), else a string. */
export function astring(value: string, opts: StringOptions = {}): string {
  const form = classify(value, opts.utf8 === true);
  if (form === 'atom' && value.toUpperCase() !== 'NIL') return value;
  return form === 'literal' ? literal(value) : quoted(value);
}

/** rfc9051 9 flag-list = "(" [flag *(SP flag)] ")". Flags are atoms already (`\Seen`, `$Junk`). */
export function flagList(flags: readonly string[]): string {
  return `(${flags.join(' ')})`;
}

/**
 * A mailbox name for a response: modified UTF-7 unless the client has UTF-8 (rfc6855 3), then
 * an astring. INBOX is always the atom INBOX.
 */
export function mailboxName(name: string, opts: StringOptions = {}): string {
  if (name.toUpperCase() === 'INBOX') return 'INBOX';
  const utf8 = opts.utf8 === true;
  return astring(utf8 ? name : encodeMailboxName(name), { utf8 });
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * rfc9051 9 date-time, quotes included: `"17-Jul-1996 02:44:25 -0700"`. The time is shown in
 * the zone `offsetMinutes` east of UTC (default 0, `+0000`). The day has two digits (the
 * grammar's date-day-fixed allows "07" or " 7").
 */
export function formatInternalDate(date: Date, offsetMinutes = 0): string {
  const ms = date.getTime();
  const t = new Date((Number.isFinite(ms) ? ms : 0) + offsetMinutes * 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(Math.trunc(offsetMinutes));
  const zone = `${sign}${pad2(Math.floor(abs / 60) % 100)}${pad2(abs % 60)}`;
  return (
    `"${pad2(t.getUTCDate())}-${MONTHS[t.getUTCMonth()]}-${String(t.getUTCFullYear()).padStart(4, '0')} ` +
    `${pad2(t.getUTCHours())}:${pad2(t.getUTCMinutes())}:${pad2(t.getUTCSeconds())} ${zone}"`
  );
}

/**
 * A sequence set from numbers, in the order given, with ascending runs compressed
 * (`[1,2,3,7,9,10]` → `1:3,7,9:10`). Order is kept because it matters in COPYUID and MOVE's
 * COPYUID (rfc4315 3: the source and destination sets correspond in order); sort first where
 * it does not. An empty list gives '' (not a valid set: the caller omits the response).
 */
export function formatSequenceSet(numbers: readonly number[]): string {
  const out: string[] = [];
  let i = 0;
  while (i < numbers.length) {
    const start = numbers[i]!;
    let end = start;
    while (i + 1 < numbers.length && numbers[i + 1] === end + 1) {
      end++;
      i++;
    }
    out.push(end === start ? String(start) : `${start}:${end}`);
    i++;
  }
  return out.join(',');
}

/**
 * The numbers a sequence set names, sorted and unique. `max` is the value of `*` (the number of
 * messages for sequence numbers, the largest UID for UIDs); `saved` is the SEARCHRES result for
 * `$` (rfc5182; null when nothing was saved, which gives []).
 *
 * Numbers above `max` are not errors here, because the rules differ: a sequence number past the
 * last message is a BAD (rfc9051 9), while a UID past the last is simply not there (rfc9051
 * 6.4.9: `559:*` includes the last UID even when 559 is larger). So: every number ≤ max in the
 * ranges is returned, and so is each explicit number or range end > max (at most two per range,
 * never a run of them, so `1:4294967295` costs no more than `1:*`). The caller checks
 * `result.at(-1)! > max` for sequence numbers, or filters against existing UIDs.
 *
 * For UIDs, whose `max` may be large and sparse, prefer matching the set against the UIDs that
 * exist (`sequenceSetIncludes`) to expanding it.
 */
export function expandSequenceSet(set: SequenceSet, max: number, saved: readonly number[] | null): number[] {
  if (set.kind === 'saved') return [...new Set(saved ?? [])].sort((a, b) => a - b);
  const picked = new Set<number>();
  for (const range of set.ranges) {
    const a = range.from === '*' ? max : range.from;
    const b = range.to === '*' ? max : range.to;
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    for (let n = Math.max(lo, 1); n <= Math.min(hi, max); n++) picked.add(n);
    if (lo > max) picked.add(lo);
    if (hi > max) picked.add(hi);
  }
  picked.delete(0);
  return [...picked].sort((x, y) => x - y);
}

/** Whether `n` is in the set, `*` standing for `max` (rfc9051 9: ranges are unordered). */
export function sequenceSetIncludes(set: SequenceSet, n: number, max: number, saved: readonly number[] | null): boolean {
  if (set.kind === 'saved') return saved !== null && saved.includes(n);
  for (const range of set.ranges) {
    const a = range.from === '*' ? max : range.from;
    const b = range.to === '*' ? max : range.to;
    if (n >= Math.min(a, b) && n <= Math.max(a, b)) return true;
  }
  return false;
}

/** A parsed sequence set back in wire form (for logs and ESEARCH echoes). */
/** A set of numbers in any order, sorted and deduplicated first (VANISHED, ESEARCH ALL, MODIFIED). */
export function formatNumberSet(numbers: readonly number[]): string {
  return formatSequenceSet([...new Set(numbers)].sort((a, b) => a - b));
}

export function formatSequenceSetAst(set: SequenceSet): string {
  if (set.kind === 'saved') return '$';
  return set.ranges.map((r) => (r.from === r.to ? String(r.from) : `${r.from}:${r.to}`)).join(',');
}
