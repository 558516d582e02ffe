/**
 * The IMAP command parser's reader: a cursor over one framed command's segments that takes the
 * tokens of rfc9051 9 (atoms, strings, literals, numbers, mailbox names, sequence sets, flags,
 * dates, FETCH sections and attributes, search keys) and throws `Bad` on the first thing that
 * does not fit. `imap/parser.ts` builds each command from these tokens and turns `Bad` into a
 * typed error; nothing outside the parser sees a throw.
 *
 * Security: see parser.ts. Recursion happens only in search keys, capped at MAX_SEARCH_DEPTH.
 */
import type {
  FetchAttribute,
  MailboxArg,
  Partial,
  SearchKey,
  SectionSpec,
  SeqNumber,
  SeqRange,
  SequenceSet,
  StatusItem,
} from './ast.js';
import { TextDecoder } from 'node:util';
import type { Segment } from './framer.js';
import { decodeMailboxName } from './mutf7.js';

/** Deepest nesting of search keys (parentheses, NOT, OR) accepted. */
export const MAX_SEARCH_DEPTH = 100;

/** rfc9051 9: number = unsigned 32-bit. */
const MAX_NUMBER = 0xffffffff;
/**
 * rfc9051 9: number64 (and rfc7162 mod-sequence-value) go up to 2^63-1. Larger is an error;
 * values above 2^53-1 are clamped to Number.MAX_SAFE_INTEGER, which keeps every comparison
 * with a real size, offset or mod-sequence (all far below 2^53) as the client meant it.
 */
export const MAX_NUMBER64 = 9223372036854775807n;

/** A syntax error: its message is the text of the BAD reply. Caught once, in parseCommand. */
export class Bad extends Error {}

export function bad(message: string): never {
  throw new Bad(message);
}

// --- character classes (rfc9051 9) ---------------------------------------------------------

export const ATOM = 1; // ATOM-CHAR
const ASTRING = 2; // ASTRING-CHAR = ATOM-CHAR / resp-specials
export const LIST = 4; // list-char = ATOM-CHAR / list-wildcards / resp-specials
export const TAG = 8; // <any ASTRING-CHAR except "+">
export const CLASS = new Uint8Array(256);
for (let c = 0x21; c < 0x7f; c++) {
  // atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
  const special = '(){%*"\\]'.includes(String.fromCharCode(c));
  if (!special) CLASS[c] = ATOM | ASTRING | LIST | TAG;
}
CLASS[0x5d] = ASTRING | LIST | TAG; // "]"
CLASS[0x25] = LIST; // "%"
CLASS[0x2a] = LIST; // "*"
CLASS[0x2b]! &= ~TAG; // "+"

export const SP = 0x20;
export const DQUOTE = 0x22;
export const LPAREN = 0x28;
export const RPAREN = 0x29;
export const BACKSLASH = 0x5c;

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];

const SYSTEM_FLAGS = new Map(['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft', '\\Recent'].map((f) => [f.toUpperCase(), f]));

export const STATUS_ITEMS = new Set<StatusItem>(['MESSAGES', 'RECENT', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'DELETED', 'SIZE', 'HIGHESTMODSEQ', 'APPENDLIMIT']);

export const SPECIAL_USE = new Map(['\\All', '\\Archive', '\\Drafts', '\\Flagged', '\\Junk', '\\Sent', '\\Trash', '\\Important'].map((f) => [f.toUpperCase(), f]));

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export function short(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

/**
 * Put segments in the framer's shape: text, literal, text, ..., text (an empty text where two
 * literals touch, or at either end), joining adjacent texts. Tolerates any list a test builds.
 */
export function normalize(segments: readonly Segment[]): Segment[] {
  const out: Segment[] = [];
  for (const seg of segments) {
    const last = out[out.length - 1];
    if (seg.kind === 'text') {
      if (last !== undefined && last.kind === 'text') out[out.length - 1] = { kind: 'text', bytes: Buffer.concat([last.bytes, seg.bytes]) };
      else out.push(seg);
    } else {
      if (last === undefined || last.kind !== 'text') out.push({ kind: 'text', bytes: Buffer.alloc(0) });
      out.push(seg);
    }
  }
  if (out.length === 0 || out[out.length - 1]!.kind !== 'text') out.push({ kind: 'text', bytes: Buffer.alloc(0) });
  return out;
}

type LiteralSegment = Exclude<Segment, { kind: 'text' }>;

/** A cursor over the segments of one command. Methods whose names start with a verb consume. */
export class Reader {
  private si = 0;
  private buf: Buffer;
  pos = 0;
  /** The charset for search strings (set by SEARCH CHARSET). */
  charsetDecoder: TextDecoder | null = null;

  constructor(
    private readonly segs: Segment[],
    readonly utf8: boolean,
  ) {
    this.buf = (segs[0] as { bytes: Buffer }).bytes;
  }

  peek(offset = 0): number {
    const c = this.buf[this.pos + offset];
    return c === undefined ? -1 : c;
  }

  atLiteral(): boolean {
    return this.pos >= this.buf.length && this.si + 1 < this.segs.length;
  }

  atEnd(): boolean {
    return this.pos >= this.buf.length && this.si + 1 >= this.segs.length;
  }

  /** At the end of the command, or of a list, or before a space: where a token ends. */
  atDelimiter(): boolean {
    const c = this.peek();
    return c === SP || c === RPAREN || this.atEnd();
  }

  takeLiteral(): LiteralSegment {
    const seg = this.segs[this.si + 1] as LiteralSegment;
    this.si += 2;
    this.buf = (this.segs[this.si] as { bytes: Buffer }).bytes;
    this.pos = 0;
    return seg;
  }

  sp(what?: string): void {
    if (this.peek() !== SP) bad(what === undefined ? 'Expected a space' : `Missing ${what}`);
    this.pos++;
  }

  /** Consume `c` if it is next. */
  skip(c: number): boolean {
    if (this.peek() !== c) return false;
    this.pos++;
    return true;
  }

  expect(c: number, message: string): void {
    if (!this.skip(c)) bad(message);
  }

  /** The longest run of characters of `cls`, as latin1 text (possibly empty). */
  run(cls: number): string {
    const start = this.pos;
    while (this.pos < this.buf.length && (CLASS[this.buf[this.pos]!]! & cls) !== 0) this.pos++;
    return this.buf.toString('latin1', start, this.pos);
  }

  /** The longest run of bytes matching `test`, as latin1 text. */
  runOf(test: (c: number) => boolean): string {
    const start = this.pos;
    while (this.pos < this.buf.length && test(this.buf[this.pos]!)) this.pos++;
    return this.buf.toString('latin1', start, this.pos);
  }

  /** atom = 1*ATOM-CHAR */
  atom(what: string): string {
    const a = this.run(ATOM);
    if (a === '') bad(`Expected ${what}`);
    return a;
  }

  /** An atom used as a keyword: upper-cased. */
  keyword(what: string): string {
    return this.atom(what).toUpperCase();
  }

  /** quoted = DQUOTE *QUOTED-CHAR DQUOTE (rfc9051 9 allows UTF-8 in QUOTED-CHAR). */
  quoted(): Buffer {
    const buf = this.buf;
    let i = this.pos + 1;
    const parts: Buffer[] = [];
    let from = i;
    for (;;) {
      const c = buf[i];
      if (c === undefined) bad('Unterminated quoted string');
      if (c === DQUOTE) break;
      if (c === BACKSLASH) {
        const e = buf[i + 1];
        if (e !== DQUOTE && e !== BACKSLASH) bad('Invalid escape in quoted string');
        parts.push(buf.subarray(from, i));
        from = i + 1;
        i += 2;
        continue;
      }
      // TEXT-CHAR excludes CR and LF; CHAR excludes NUL.
      if (c === 0 || c === 0x0a || c === 0x0d) bad('Invalid character in quoted string');
      i++;
    }
    parts.push(buf.subarray(from, i));
    this.pos = i + 1;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** A literal where a string is expected: in memory, not literal8, no NUL. */
  literalString(): Buffer {
    const seg = this.takeLiteral();
    if (seg.kind === 'streamed') bad('Literal too large here');
    if (seg.binary) bad('literal8 not allowed here');
    if (seg.bytes.includes(0)) bad('NUL in literal');
    return seg.bytes;
  }

  /** string = quoted / literal */
  string(what = 'a string'): Buffer {
    if (this.peek() === DQUOTE) return this.quoted();
    if (this.atLiteral()) return this.literalString();
    return bad(`Expected ${what}`);
  }

  /** astring = 1*ASTRING-CHAR / string */
  astring(what = 'a string'): Buffer {
    if (this.peek() === DQUOTE) return this.quoted();
    if (this.atLiteral()) return this.literalString();
    const start = this.pos;
    this.run(ASTRING);
    if (this.pos === start) bad(`Expected ${what}`);
    return this.buf.subarray(start, this.pos);
  }

  /** nstring = string / nil */
  nstring(what = 'a string or NIL'): Buffer | null {
    if (this.peek() === DQUOTE || this.atLiteral()) return this.string();
    const a = this.run(ATOM);
    if (a.toUpperCase() !== 'NIL') bad(`Expected ${what}`);
    return null;
  }

  /** number = 1*DIGIT, up to `max` (a bigint: number64, clamped to 2^53-1 as said above). */
  number(what: string, max: number | bigint = MAX_NUMBER): number {
    const digits = this.runOf((c) => c >= 0x30 && c <= 0x39);
    if (digits === '') bad(`Expected ${what}`);
    const n = digits.length > 25 ? Infinity : Number(digits);
    const over = n <= Number.MAX_SAFE_INTEGER ? n > max : n === Infinity || BigInt(digits) > BigInt(max);
    if (over) bad(`${what[0]!.toUpperCase()}${what.slice(1)} out of range`);
    return Math.min(n, Number.MAX_SAFE_INTEGER);
  }

  nzNumber(what: string, max: number | bigint = MAX_NUMBER): number {
    const n = this.number(what, max);
    if (n === 0) bad(`${what[0]!.toUpperCase()}${what.slice(1)} must not be 0`);
    return n;
  }

  /** Decode a name (mailbox, reference, pattern): rfc6855 3 UTF-8, or rfc3501 5.1.3 mUTF-7. */
  decodeName(bytes: Buffer, what: string): string {
    if (this.utf8) {
      let name: string;
      try {
        name = utf8Strict.decode(bytes);
      } catch {
        return bad(`${what} is not valid UTF-8`);
      }
      // rfc6855 3, rfc9051 5.1: names are Net-Unicode (rfc5198 2): no C0 or C1 controls, no
      // U+2028/U+2029.
      if (/[\x00-\x1f\x7f-\x9f\u2028\u2029]/.test(name)) bad(`${what} contains a control character`);
      return name;
    }
    const name = bytes.every((b) => b < 0x80) ? decodeMailboxName(bytes.toString('latin1')) : null;
    if (name === null) bad(`${what} is not valid modified UTF-7`);
    return name;
  }

  /** mailbox = "INBOX" / astring (rfc9051 9; INBOX is case-insensitive, rfc9051 5.1). */
  mailbox(what = 'mailbox name'): MailboxArg {
    const bytes = this.astring(`a ${what}`);
    const raw = bytes.toString('utf8');
    const name = this.decodeName(bytes, 'Mailbox name');
    return { name: name.toUpperCase() === 'INBOX' ? 'INBOX' : name, raw };
  }

  /** list-mailbox = 1*list-char / string (rfc9051 9), decoded like a mailbox name. */
  listMailbox(): string {
    if (this.peek() === DQUOTE || this.atLiteral()) return this.decodeName(this.string(), 'Pattern');
    const start = this.pos;
    this.run(LIST);
    if (this.pos === start) bad('Expected a mailbox pattern');
    return this.decodeName(this.buf.subarray(start, this.pos), 'Pattern');
  }

  /** An astring decoded as UTF-8 (user names, passwords, quota roots, ID values). */
  text(what?: string): string {
    return this.astring(what).toString('utf8');
  }

  /** A search string, decoded with the SEARCH charset. */
  searchString(): string {
    const bytes = this.astring('a search string');
    return this.charsetDecoder === null ? bytes.toString('utf8') : this.charsetDecoder.decode(bytes);
  }

  // --- shared grammar ------------------------------------------------------------------------

  /** sequence-set (rfc9051 9), with "$" (rfc5182) when `saved` is allowed. */
  sequenceSet(opts: { star?: boolean; saved?: boolean } = {}): SequenceSet {
    const star = opts.star ?? true;
    if (this.peek() === 0x24 /* $ */) {
      if (opts.saved === false) bad('"$" not allowed here');
      this.pos++;
      if (!this.atDelimiter()) bad('Invalid sequence set');
      return { kind: 'saved' };
    }
    const ranges: SeqRange[] = [];
    for (;;) {
      const from = this.seqNumber(star);
      const to = this.skip(0x3a /* : */) ? this.seqNumber(star) : from;
      ranges.push({ from, to });
      if (!this.skip(0x2c /* , */)) break;
    }
    if (!this.atDelimiter()) bad('Invalid sequence set');
    return { kind: 'set', ranges };
  }

  private seqNumber(star: boolean): SeqNumber {
    if (this.peek() === 0x2a /* * */) {
      if (!star) bad('"*" not allowed here');
      this.pos++;
      return '*';
    }
    const c = this.peek();
    if (c < 0x30 || c > 0x39) bad('Invalid sequence set');
    return this.nzNumber('sequence number');
  }

  /** flag (rfc9051 9): a system flag (canonical case), a "\" extension, or a keyword atom. */
  flag(): string {
    if (this.skip(BACKSLASH)) {
      const name = this.run(ATOM);
      if (name === '') bad('Invalid flag');
      const f = `\\${name}`;
      return SYSTEM_FLAGS.get(f.toUpperCase()) ?? f;
    }
    const k = this.run(ATOM);
    if (k === '') bad('Invalid flag');
    return k;
  }

  /** flag-list = "(" [flag *(SP flag)] ")" */
  flagList(): string[] {
    this.expect(LPAREN, 'Expected a flag list');
    const flags: string[] = [];
    if (this.skip(RPAREN)) return flags;
    for (;;) {
      flags.push(this.flag());
      if (this.skip(RPAREN)) return flags;
      this.sp();
    }
  }

  /** A parenthesised, space-separated list of at least `min` items. */
  list<T>(item: () => T, what: string, min = 1): T[] {
    this.expect(LPAREN, `Expected a list of ${what}`);
    const items: T[] = [];
    if (!this.skip(RPAREN)) {
      for (;;) {
        items.push(item());
        if (this.skip(RPAREN)) break;
        if (this.peek() !== SP) bad(`Invalid list of ${what}`);
        this.pos++;
      }
    }
    if (items.length < min) bad(`Empty list of ${what}`);
    return items;
  }

  /** mod-sequence-valzer = "0" / mod-sequence-value (rfc7162 7), capped at 2^53-1. */
  modSeq(zero: boolean): number {
    return zero ? this.number('mod-sequence', MAX_NUMBER64) : this.nzNumber('mod-sequence', MAX_NUMBER64);
  }

  /** date (rfc9051 9): date-text / DQUOTE date-text DQUOTE; returned as YYYY-MM-DD. */
  date(): string {
    const quoted = this.skip(DQUOTE);
    const text = this.runOf((c) => (c >= 0x30 && c <= 0x39) || c === 0x2d || (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a);
    if (quoted) this.expect(DQUOTE, 'Invalid date');
    const m = /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(text);
    if (m === null) bad('Invalid date');
    const day = Number(m[1]);
    const month = MONTHS.indexOf(m[2]!.toUpperCase());
    const year = Number(m[3]);
    if (month < 0 || day < 1 || day > daysInMonth(year, month)) bad('Invalid date');
    return `${m[3]}-${String(month + 1).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
  }

  /**
   * date-time (rfc9051 9): DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone
   * DQUOTE, e.g. "17-Jul-1996 02:44:25 -0700"; date-day-fixed is (SP DIGIT) / 2DIGIT.
   */
  dateTime(): Date {
    const text = this.quoted().toString('latin1');
    const m = /^( \d|\d\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$/.exec(text);
    if (m === null) bad('Invalid date-time');
    const day = Number(m[1]!.trim());
    const month = MONTHS.indexOf(m[2]!.toUpperCase());
    const year = Number(m[3]);
    const [h, min, s, zh, zm] = [m[4], m[5], m[6], m[8], m[9]].map(Number) as [number, number, number, number, number];
    if (month < 0 || day < 1 || day > daysInMonth(year, month) || h > 23 || min > 59 || s > 60 || zh > 23 || zm > 59) {
      bad('Invalid date-time');
    }
    const offset = (m[7] === '-' ? -1 : 1) * (zh * 60 + zm);
    const utc = Date.UTC(year, month, day, h, min, Math.min(s, 59)) - offset * 60_000;
    return new Date(utc);
  }

  // --- FETCH ---------------------------------------------------------------------------------

  /** section-part = nz-number *("." nz-number) */
  private sectionPart(): number[] {
    const part = [this.nzNumber('part number')];
    while (this.peek() === 0x2e && this.peek(1) >= 0x30 && this.peek(1) <= 0x39) {
      this.pos++;
      part.push(this.nzNumber('part number'));
    }
    return part;
  }

  /** section = "[" [section-spec] "]" (rfc9051 9). */
  section(): SectionSpec {
    this.expect(0x5b /* [ */, 'Expected "["');
    const spec: SectionSpec = { part: [], text: null, fields: [] };
    if (this.skip(0x5d /* ] */)) return spec;
    const c = this.peek();
    if (c >= 0x30 && c <= 0x39) {
      spec.part = this.sectionPart();
      if (this.skip(0x2e /* . */)) this.sectionText(spec, true);
    } else {
      this.sectionText(spec, false);
    }
    this.expect(0x5d, 'Invalid section: expected "]"');
    return spec;
  }

  /** section-msgtext / "MIME" (rfc9051 9: MIME only after a part number). */
  private sectionText(spec: SectionSpec, afterPart: boolean): void {
    const word = this.runOf((c) => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a || c === 0x2e).toUpperCase();
    switch (word) {
      case 'HEADER':
      case 'TEXT':
        spec.text = word;
        return;
      case 'MIME':
        if (!afterPart) bad('Invalid section: MIME needs a part number');
        spec.text = word;
        return;
      case 'HEADER.FIELDS':
      case 'HEADER.FIELDS.NOT':
        spec.text = word;
        this.sp();
        // header-list = "(" header-fld-name *(SP header-fld-name) ")"; header-fld-name = astring
        spec.fields = this.list(() => {
          const name = this.astring('a header field name').toString('latin1');
          // rfc5322 3.6.8: ftext is printable US-ASCII except ":".
          if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) bad('Invalid header field name');
          return name.toUpperCase();
        }, 'header field names');
        return;
      default:
        bad(`Invalid section ${short(word)}`);
    }
  }

  /** partial = "<" number64 "." nz-number64 ">" (rfc9051 9). */
  partial(): Partial | null {
    if (!this.skip(0x3c /* < */)) return null;
    const offset = this.number('partial offset', MAX_NUMBER64);
    this.expect(0x2e, 'Invalid partial range');
    const length = this.nzNumber('partial length', MAX_NUMBER64);
    this.expect(0x3e /* > */, 'Invalid partial range');
    return { offset, length };
  }

  /** section-binary = "[" [section-part] "]" (rfc3516 4.1). */
  sectionBinary(): number[] {
    this.expect(0x5b, 'Expected "["');
    if (this.skip(0x5d)) return [];
    const part = this.sectionPart();
    this.expect(0x5d, 'Invalid binary section: expected "]"');
    return part;
  }

  fetchAttribute(): FetchAttribute {
    const name = this.runOf((c) => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a || (c >= 0x30 && c <= 0x39) || c === 0x2e).toUpperCase();
    switch (name) {
      case 'ENVELOPE':
      case 'FLAGS':
      case 'INTERNALDATE':
      case 'RFC822.SIZE':
      case 'BODYSTRUCTURE':
      case 'UID':
      case 'MODSEQ': // rfc7162 3.1.4.1
      case 'RFC822':
      case 'RFC822.HEADER':
      case 'RFC822.TEXT':
      case 'SAVEDATE': // rfc8514
      case 'EMAILID': // rfc8474
      case 'THREADID':
        return { kind: name };
      case 'BODY':
        if (this.peek() !== 0x5b) return { kind: 'BODY' };
        return { kind: 'BODY[]', peek: false, section: this.section(), partial: this.partial() };
      case 'BODY.PEEK':
        return { kind: 'BODY[]', peek: true, section: this.section(), partial: this.partial() };
      case 'BINARY':
      case 'BINARY.PEEK':
        return { kind: 'BINARY', peek: name === 'BINARY.PEEK', part: this.sectionBinary(), partial: this.partial() };
      case 'BINARY.SIZE':
        return { kind: 'BINARY.SIZE', part: this.sectionBinary() };
      case '':
        return bad('Expected a FETCH attribute');
      default:
        return bad(`Unknown FETCH attribute ${short(name)}`);
    }
  }

  // --- SEARCH --------------------------------------------------------------------------------

  searchKey(depth: number): SearchKey {
    if (depth > MAX_SEARCH_DEPTH) bad('Search keys nested too deeply');
    const c = this.peek();
    if (c === LPAREN) {
      this.pos++;
      const keys: SearchKey[] = [];
      for (;;) {
        keys.push(this.searchKey(depth + 1));
        if (this.skip(RPAREN)) return { kind: 'and', keys };
        this.sp();
      }
    }
    if ((c >= 0x30 && c <= 0x39) || c === 0x2a || c === 0x24) return { kind: 'seq', set: this.sequenceSet() };
    const word = this.keyword('a search key');
    const flag = (f: string, set: boolean): SearchKey => ({ kind: 'flag', flag: f, set });
    const header = (field: string): SearchKey => {
      this.sp();
      return { kind: 'header', field, value: this.searchString() };
    };
    const date = (which: 'internal' | 'sent', op: 'before' | 'on' | 'since'): SearchKey => {
      this.sp();
      return { kind: 'date', which, op, date: this.date() };
    };
    switch (word) {
      case 'ALL':
        return { kind: 'all' };
      case 'ANSWERED':
        return flag('\\Answered', true);
      case 'DELETED':
        return flag('\\Deleted', true);
      case 'DRAFT':
        return flag('\\Draft', true);
      case 'FLAGGED':
        return flag('\\Flagged', true);
      case 'SEEN':
        return flag('\\Seen', true);
      case 'UNANSWERED':
        return flag('\\Answered', false);
      case 'UNDELETED':
        return flag('\\Deleted', false);
      case 'UNDRAFT':
        return flag('\\Draft', false);
      case 'UNFLAGGED':
        return flag('\\Flagged', false);
      case 'UNSEEN':
        return flag('\\Seen', false);
      case 'KEYWORD':
      case 'UNKEYWORD': {
        // flag-keyword = atom
        this.sp();
        return flag(this.atom('a keyword'), word === 'KEYWORD');
      }
      // rfc3501 6.4.4 (removed by rfc9051, still sent by IMAP4rev1 clients)
      case 'NEW':
        return { kind: 'new' };
      case 'OLD':
        return { kind: 'old' };
      case 'RECENT':
        return { kind: 'recent' };
      case 'BCC':
      case 'CC':
      case 'FROM':
      case 'SUBJECT':
      case 'TO':
        return header(word);
      case 'HEADER': {
        this.sp();
        const field = this.astring('a header field name').toString('utf8').toUpperCase();
        return header(field);
      }
      case 'BODY':
        this.sp();
        return { kind: 'body', value: this.searchString() };
      case 'TEXT':
        this.sp();
        return { kind: 'text', value: this.searchString() };
      case 'BEFORE':
        return date('internal', 'before');
      case 'ON':
        return date('internal', 'on');
      case 'SINCE':
        return date('internal', 'since');
      case 'SENTBEFORE':
        return date('sent', 'before');
      case 'SENTON':
        return date('sent', 'on');
      case 'SENTSINCE':
        return date('sent', 'since');
      case 'LARGER':
      case 'SMALLER':
        this.sp();
        return { kind: 'size', op: word === 'LARGER' ? 'larger' : 'smaller', size: this.number('size', MAX_NUMBER64) };
      case 'UID':
        this.sp();
        return { kind: 'uid', set: this.sequenceSet() };
      case 'NOT':
        this.sp();
        return { kind: 'not', key: this.searchKey(depth + 1) };
      case 'OR': {
        this.sp();
        const a = this.searchKey(depth + 1);
        this.sp();
        return { kind: 'or', a, b: this.searchKey(depth + 1) };
      }
      case 'MODSEQ':
        return this.searchModSeq();
      case 'OLDER':
      case 'YOUNGER': {
        // rfc5032 4: "OLDER" SP nz-number / "YOUNGER" SP nz-number
        this.sp();
        const seconds = this.nzNumber('interval');
        return word === 'OLDER' ? { kind: 'older', seconds } : { kind: 'younger', seconds };
      }
      default:
        return bad(`Unknown search key ${short(word)}`);
    }
  }

  /**
   * rfc7162 3.1.5: search-modsequence = "MODSEQ" [search-modseq-ext] SP mod-sequence-valzer;
   * search-modseq-ext = SP entry-name SP entry-type-req; entry-name = DQUOTE "/flags/" attr-flag
   * DQUOTE; entry-type-req = "priv" / "shared" / "all".
   */
  private searchModSeq(): SearchKey {
    this.sp();
    if (this.peek() === DQUOTE) {
      const entryName = this.quoted().toString('latin1');
      if (!/^\/flags\/\\?[^\s\\]+$/i.test(entryName)) bad('Invalid MODSEQ entry name');
      this.sp();
      const type = this.keyword('an entry type').toLowerCase();
      if (type !== 'priv' && type !== 'shared' && type !== 'all') bad('Invalid MODSEQ entry type');
      this.sp();
      return { kind: 'modseq', modSeq: this.modSeq(true), entryName, entryType: type };
    }
    return { kind: 'modseq', modSeq: this.modSeq(true) };
  }
}
