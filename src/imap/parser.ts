/**
 * The IMAP command parser: one framed command (text and literal segments) in, a typed command
 * (`imap/ast.ts`) or a typed error out.
 *
 * Purpose: syntax only. Whether a command is allowed in the session's state, whether an
 * extension was enabled (CONDSTORE, QRESYNC, UTF8=ACCEPT…), whether a charset is supported, and
 * every policy decision belong to the session and the command handlers.
 *
 * Invariants
 * - Pure and total: `parseCommand` never throws; every failure is `{ ok: false, tag, error }`,
 *   where `tag` is set whenever the tag itself was valid (the session replies `tag BAD error`,
 *   or `* BAD error` without one) and `error` names what is wrong in a few words.
 * - Keywords (command names, FETCH attributes, search keys, options) are case-insensitive and
 *   come out upper-cased; system flags come out in their canonical case (`\Seen`); keywords,
 *   strings and mailbox names keep their case, except that the mailbox name INBOX is
 *   case-insensitive (rfc9051 5.1) and comes out as `INBOX`.
 * - Mailbox names, LIST references and patterns come out decoded: from modified UTF-7
 *   (rfc3501 5.1.3) unless `options.utf8` (rfc6855 3: after ENABLE UTF8=ACCEPT they are UTF-8,
 *   and invalid UTF-8 is an error). `MailboxArg.raw` keeps the wire form for messages.
 * - Numbers: `number`/`nz-number` are 32-bit (rfc9051 9); `number64` and mod-sequences go up
 *   to 2^63-1 and come out clamped at Number.MAX_SAFE_INTEGER (see MAX_NUMBER64).
 *
 * Security: the segments are untrusted; their total size is bounded by the framer
 * (`imap/framer.ts`). Recursion happens only in search keys and is capped at MAX_SEARCH_DEPTH
 * levels, so no input can overflow the stack. Nothing allocates more than a small multiple of
 * the input. Literals with NUL are refused where a string is expected (rfc9051 4.3: CHAR8); a
 * literal8 (`~{n}`) is accepted only as APPEND data.
 *
 * Standards: rfc3501 9 and rfc9051 9 (formal syntax), rfc4466 (extended syntax), rfc2971 (ID),
 * rfc3502 (MULTIAPPEND), rfc3516 (BINARY), rfc4315 (UIDPLUS), rfc4731 (ESEARCH), rfc4959
 * (SASL-IR), rfc4978 (COMPRESS), rfc5032 (WITHIN), rfc5161 (ENABLE), rfc5182 (SEARCHRES),
 * rfc5258 (LIST-EXTENDED), rfc5819 (LIST-STATUS), rfc6154 (SPECIAL-USE), rfc6851 (MOVE),
 * rfc6855 (UTF8=ACCEPT), rfc7162 (CONDSTORE, QRESYNC), rfc7888 (LITERAL+), rfc8438
 * (STATUS=SIZE), rfc7889 (APPENDLIMIT), rfc9208 (QUOTA), rfc2177 (IDLE), rfc3691 (UNSELECT).
 */
import type {
  AppendMessage,
  Command,
  FetchAttribute,
  FetchModifiers,
  ListCommand,
  MailboxArg,
  ParseResult,
  Partial,
  QresyncParams,
  SearchKey,
  SearchProgram,
  SearchReturnOption,
  SectionSpec,
  SelectParams,
  SeqNumber,
  SeqRange,
  SequenceSet,
  StatusItem,
} from './ast.js';
import { TextDecoder } from 'node:util';
import type { Segment } from './framer.js';
import { decodeMailboxName } from './mutf7.js';

export interface ParseOptions {
  /** UTF8=ACCEPT is enabled (rfc6855): mailbox names are UTF-8, not modified UTF-7. */
  utf8: boolean;
}

/** Deepest nesting of search keys (parentheses, NOT, OR) accepted. */
export const MAX_SEARCH_DEPTH = 100;

/** rfc9051 9: number = unsigned 32-bit. */
const MAX_NUMBER = 0xffffffff;
/**
 * rfc9051 9: number64 (and rfc7162 mod-sequence-value) go up to 2^63-1. Larger is an error;
 * values above 2^53-1 are clamped to Number.MAX_SAFE_INTEGER, which keeps every comparison
 * with a real size, offset or mod-sequence (all far below 2^53) as the client meant it.
 */
const MAX_NUMBER64 = 9223372036854775807n;

/** A syntax error: its message is the text of the BAD reply. Caught once, in parseCommand. */
class Bad extends Error {}

function bad(message: string): never {
  throw new Bad(message);
}

// --- character classes (rfc9051 9) ---------------------------------------------------------

const ATOM = 1; // ATOM-CHAR
const ASTRING = 2; // ASTRING-CHAR = ATOM-CHAR / resp-specials
const LIST = 4; // list-char = ATOM-CHAR / list-wildcards / resp-specials
const TAG = 8; // <any ASTRING-CHAR except "+">
const CLASS = new Uint8Array(256);
for (let c = 0x21; c < 0x7f; c++) {
  // atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
  const special = '(){%*"\\]'.includes(String.fromCharCode(c));
  if (!special) CLASS[c] = ATOM | ASTRING | LIST | TAG;
}
CLASS[0x5d] = ASTRING | LIST | TAG; // "]"
CLASS[0x25] = LIST; // "%"
CLASS[0x2a] = LIST; // "*"
CLASS[0x2b]! &= ~TAG; // "+"

const SP = 0x20;
const DQUOTE = 0x22;
const LPAREN = 0x28;
const RPAREN = 0x29;
const BACKSLASH = 0x5c;

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];

const SYSTEM_FLAGS = new Map(['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft', '\\Recent'].map((f) => [f.toUpperCase(), f]));

const STATUS_ITEMS = new Set<StatusItem>(['MESSAGES', 'RECENT', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'DELETED', 'SIZE', 'HIGHESTMODSEQ', 'APPENDLIMIT']);

const SPECIAL_USE = new Map(['\\All', '\\Archive', '\\Drafts', '\\Flagged', '\\Junk', '\\Sent', '\\Trash', '\\Important'].map((f) => [f.toUpperCase(), f]));

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

function short(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

/**
 * Put segments in the framer's shape: text, literal, text, ..., text (an empty text where two
 * literals touch, or at either end), joining adjacent texts. Tolerates any list a test builds.
 */
function normalize(segments: readonly Segment[]): Segment[] {
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
class Reader {
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

// --- commands -----------------------------------------------------------------------------

type CommandParser = (r: Reader, uid: boolean) => Command;

function noArgs(name: 'CAPABILITY' | 'NOOP' | 'LOGOUT' | 'STARTTLS' | 'NAMESPACE' | 'IDLE' | 'CHECK' | 'CLOSE' | 'UNSELECT' | 'EXPUNGE'): CommandParser {
  return () => ({ name });
}

function parseAuthenticate(r: Reader): Command {
  // rfc9051 6.2.2: authenticate = "AUTHENTICATE" SP auth-type [SP initial-resp]; rfc4959 7
  r.sp('mechanism');
  const mechanism = r.keyword('a SASL mechanism');
  let initialResponse: string | null = null;
  if (r.skip(SP)) {
    const text = r.runOf((c) => (CLASS[c]! & ATOM) !== 0);
    // initial-resp = (base64 / "="); base64 = *(4base64-char) [base64-terminal]
    if (text === '=') initialResponse = '';
    else if (text.length > 0 && text.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(text)) initialResponse = text;
    else bad('Invalid initial response');
  }
  return { name: 'AUTHENTICATE', mechanism, initialResponse };
}

function parseLogin(r: Reader): Command {
  r.sp('user name');
  const username = r.text('a user name');
  r.sp('password');
  const password = r.text('a password');
  return { name: 'LOGIN', username, password };
}

function parseEnable(r: Reader): Command {
  // rfc5161 4: enable = "ENABLE" 1*(SP capability)
  const capabilities: string[] = [];
  r.sp('capability');
  for (;;) {
    capabilities.push(r.keyword('a capability'));
    if (!r.skip(SP)) break;
  }
  return { name: 'ENABLE', capabilities };
}

/** select-params (rfc4466 2.1, rfc7162 3.1.8 and 3.2.5). */
function parseSelectParams(r: Reader): SelectParams {
  const params: SelectParams = { condstore: false, qresync: null };
  if (!r.skip(SP)) return params;
  r.list(() => {
    const name = r.keyword('a SELECT parameter');
    if (name === 'CONDSTORE') {
      params.condstore = true;
    } else if (name === 'QRESYNC') {
      // "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"
      r.sp();
      r.expect(LPAREN, 'Invalid QRESYNC parameter');
      const uidValidity = r.nzNumber('UIDVALIDITY');
      r.sp();
      const modSeq = r.modSeq(false);
      const q: QresyncParams = { uidValidity, modSeq, knownUids: null, seqMatch: null };
      if (r.skip(SP)) {
        if (r.peek() !== LPAREN) {
          // known-uids = sequence-set, without "*" (rfc7162 3.2.5)
          q.knownUids = r.sequenceSet({ star: false, saved: false });
          if (r.peek() === SP && r.peek(1) === LPAREN) r.pos++;
        }
        if (r.skip(LPAREN)) {
          // seq-match-data = "(" known-sequence-set SP known-uid-set ")"
          const seqs = r.sequenceSet({ star: false, saved: false });
          r.sp();
          const uids = r.sequenceSet({ star: false, saved: false });
          r.expect(RPAREN, 'Invalid QRESYNC sequence match data');
          q.seqMatch = { seqs, uids };
        }
      }
      r.expect(RPAREN, 'Invalid QRESYNC parameter');
      params.qresync = q;
    } else {
      bad(`Unknown SELECT parameter ${short(name)}`);
    }
  }, 'SELECT parameters', 0);
  return params;
}

function parseSelect(name: 'SELECT' | 'EXAMINE'): CommandParser {
  return (r) => {
    r.sp('mailbox name');
    const mailbox = r.mailbox();
    return { name, mailbox, params: parseSelectParams(r) };
  };
}

function parseCreate(r: Reader): Command {
  r.sp('mailbox name');
  const mailbox = r.mailbox();
  const specialUse: string[] = [];
  if (r.skip(SP)) {
    // rfc4466 2.2 create-params; rfc6154 5.2: create-param =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"
    r.list(() => {
      const param = r.keyword('a CREATE parameter');
      if (param !== 'USE') bad(`Unknown CREATE parameter ${short(param)}`);
      r.sp();
      r.list(() => {
        r.expect(BACKSLASH, 'Invalid special-use attribute');
        const attr = `\\${r.atom('a special-use attribute')}`;
        specialUse.push(SPECIAL_USE.get(attr.toUpperCase()) ?? attr);
      }, 'special-use attributes', 0);
    }, 'CREATE parameters');
  }
  return { name: 'CREATE', mailbox, specialUse };
}

function parseMailboxOnly(name: 'DELETE' | 'SUBSCRIBE' | 'UNSUBSCRIBE'): CommandParser {
  return (r) => {
    r.sp('mailbox name');
    return { name, mailbox: r.mailbox() };
  };
}

function parseRename(r: Reader): Command {
  r.sp('mailbox name');
  const from = r.mailbox();
  r.sp('new mailbox name');
  const to = r.mailbox('new mailbox name');
  return { name: 'RENAME', from, to };
}

function statusItem(r: Reader): StatusItem {
  const item = r.keyword('a status item');
  if (!STATUS_ITEMS.has(item as StatusItem)) bad(`Unknown status item ${short(item)}`);
  return item as StatusItem;
}

/**
 * rfc9051 6.3.9 / rfc5258 6: list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
 * [SP list-return-opts].
 */
function parseList(r: Reader): Command {
  r.sp('reference');
  const list: ListCommand = {
    selection: [],
    reference: '',
    patterns: [],
    returnOptions: { subscribed: false, children: false, specialUse: false, status: null },
    basic: true,
  };
  if (r.peek() === LPAREN) {
    list.basic = false;
    list.selection = r.list(() => {
      const opt = r.keyword('a selection option');
      // rfc5258 3.1 (SUBSCRIBED, REMOTE, RECURSIVEMATCH), rfc6154 5.1 (SPECIAL-USE);
      // rfc5258 3: an unrecognised selection option is a BAD.
      if (!['SUBSCRIBED', 'REMOTE', 'RECURSIVEMATCH', 'SPECIAL-USE'].includes(opt)) bad(`Unknown LIST selection option ${short(opt)}`);
      return opt;
    }, 'selection options', 0);
    // rfc5258 3.1: RECURSIVEMATCH needs another option that it modifies.
    if (list.selection.includes('RECURSIVEMATCH') && !list.selection.some((o) => o === 'SUBSCRIBED' || o === 'SPECIAL-USE')) {
      bad('RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE');
    }
    r.sp('reference');
  }
  list.reference = r.decodeName(r.astring('a reference name'), 'Reference');
  r.sp('mailbox pattern');
  if (r.peek() === LPAREN) {
    // rfc5258 6: patterns = "(" list-mailbox *(SP list-mailbox) ")"
    list.basic = false;
    list.patterns = r.list(() => r.listMailbox(), 'mailbox patterns');
  } else {
    list.patterns = [r.listMailbox()];
  }
  if (r.skip(SP)) {
    // list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
    if (r.keyword('RETURN') !== 'RETURN') bad('Expected RETURN');
    list.basic = false;
    r.sp();
    const ret = list.returnOptions;
    r.list(() => {
      const opt = r.keyword('a return option');
      if (opt === 'SUBSCRIBED') ret.subscribed = true;
      else if (opt === 'CHILDREN') ret.children = true;
      else if (opt === 'SPECIAL-USE') ret.specialUse = true;
      else if (opt === 'STATUS') {
        // rfc5819 6: status-option = "STATUS" SP "(" status-att *(SP status-att) ")"
        r.sp();
        ret.status = r.list(() => statusItem(r), 'status items');
      } else bad(`Unknown LIST return option ${short(opt)}`);
    }, 'return options', 0);
  }
  return { name: 'LIST', list };
}

function parseLsub(r: Reader): Command {
  r.sp('reference');
  const reference = r.decodeName(r.astring('a reference name'), 'Reference');
  r.sp('mailbox pattern');
  return { name: 'LSUB', reference, pattern: r.listMailbox() };
}

function parseStatus(r: Reader): Command {
  r.sp('mailbox name');
  const mailbox = r.mailbox();
  r.sp('status items');
  return { name: 'STATUS', mailbox, items: r.list(() => statusItem(r), 'status items') };
}

/**
 * rfc3502 6.3 / rfc9051 6.3.12: append = "APPEND" SP mailbox 1*append-message; append-message =
 * [SP flag-list] [SP date-time] SP (literal / literal8); rfc6855 4: append-data =/ "UTF8" SP "("
 * literal8 ")".
 */
function parseAppend(r: Reader): Command {
  r.sp('mailbox name');
  const mailbox = r.mailbox();
  const messages: AppendMessage[] = [];
  do {
    r.sp('message literal');
    let flags: string[] = [];
    let internalDate: Date | null = null;
    if (r.peek() === LPAREN) {
      flags = r.flagList();
      r.sp('message literal');
    }
    if (r.peek() === DQUOTE) {
      internalDate = r.dateTime();
      r.sp('message literal');
    }
    let utf8Data = false;
    if ((r.peek() | 0x20) === 0x75 /* u */) {
      if (r.keyword('UTF8') !== 'UTF8') bad('Expected a message literal');
      r.sp();
      r.expect(LPAREN, 'Expected "(" after UTF8');
      utf8Data = true;
    }
    if (!r.atLiteral()) bad('Expected a message literal');
    const seg = r.takeLiteral();
    if (utf8Data) {
      if (!seg.binary) bad('UTF8 data must be a literal8');
      r.expect(RPAREN, 'Expected ")" after UTF8 data');
    }
    const binary = seg.binary && !utf8Data;
    const data = seg.kind === 'streamed' ? { streamed: seg.id, size: seg.size } : seg.bytes;
    messages.push({ flags, internalDate, data, binary });
  } while (!r.atEnd());
  return { name: 'APPEND', mailbox, messages };
}

/**
 * rfc9051 6.4.4 / rfc4731 3: search = "SEARCH" [search-return-opts] SP search-program;
 * search-program = ["CHARSET" SP charset SP] search-key *(SP search-key).
 */
function parseSearch(r: Reader, uid: boolean): Command {
  r.sp('search keys');
  const program: SearchProgram = { returnOptions: null, charset: null, criteria: { kind: 'and', keys: [] } };
  const peekWord = (): string => {
    const save = r.pos;
    const w = r.run(ATOM).toUpperCase();
    r.pos = save;
    return w;
  };
  if (peekWord() === 'RETURN') {
    r.run(ATOM);
    r.sp();
    const opts = r.list(() => {
      const opt = r.keyword('a search return option');
      if (!['MIN', 'MAX', 'ALL', 'COUNT', 'SAVE'].includes(opt)) bad(`Unknown search return option ${short(opt)}`);
      return opt as SearchReturnOption;
    }, 'search return options', 0);
    program.returnOptions = [...new Set(opts)];
    r.sp('search keys');
  }
  if (peekWord() === 'CHARSET') {
    r.run(ATOM);
    r.sp('charset');
    const charset = r.astring('a charset').toString('latin1').toUpperCase();
    program.charset = charset;
    if (charset !== 'UTF-8' && charset !== 'US-ASCII') {
      // Strings are decoded with the charset when Node knows it; if it does not, the handler
      // replies NO [BADCHARSET] (rfc9051 6.4.4), so the strings' decoding does not matter.
      r.charsetDecoder = charsetDecoder(charset);
    }
    r.sp('search keys');
  }
  const keys: SearchKey[] = [];
  for (;;) {
    keys.push(r.searchKey(1));
    if (r.atEnd()) break;
    r.sp();
  }
  program.criteria = { kind: 'and', keys };
  return { name: 'SEARCH', uid, program };
}

function charsetDecoder(charset: string): TextDecoder | null {
  try {
    return new TextDecoder(charset);
  } catch {
    return null;
  }
}

/** Whether SEARCH strings can be decoded from `charset` (for the handler's BADCHARSET check). */
export function isSupportedCharset(charset: string): boolean {
  const upper = charset.toUpperCase();
  return upper === 'UTF-8' || upper === 'US-ASCII' || charsetDecoder(charset) !== null;
}

const FETCH_MACROS = {
  // rfc9051 6.4.5
  ALL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE'],
  FAST: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'],
  FULL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY'],
} as const;

/**
 * rfc9051 6.4.5: fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
 * "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers] (rfc4466 2.4, rfc7162 3.1.4.1, 3.2.6).
 */
function parseFetch(r: Reader, uid: boolean): Command {
  r.sp('sequence set');
  const set = r.sequenceSet();
  r.sp('FETCH attributes');
  let attributes: FetchAttribute[];
  let macro: 'ALL' | 'FAST' | 'FULL' | null = null;
  if (r.peek() === LPAREN) {
    attributes = r.list(() => r.fetchAttribute(), 'FETCH attributes');
  } else {
    const save = r.pos;
    const word = r.run(ATOM).toUpperCase();
    if ((word === 'ALL' || word === 'FAST' || word === 'FULL') && r.atDelimiter()) {
      macro = word;
      attributes = FETCH_MACROS[word].map((kind) => ({ kind }));
    } else {
      r.pos = save;
      attributes = [r.fetchAttribute()];
    }
  }
  const modifiers: FetchModifiers = {};
  if (r.skip(SP)) {
    r.list(() => {
      const name = r.keyword('a FETCH modifier');
      if (name === 'CHANGEDSINCE') {
        r.sp();
        modifiers.changedSince = r.modSeq(true);
      } else if (name === 'VANISHED') {
        modifiers.vanished = true;
      } else {
        bad(`Unknown FETCH modifier ${short(name)}`);
      }
    }, 'FETCH modifiers');
    // rfc7162 3.2.6: VANISHED only in UID FETCH, and only with CHANGEDSINCE.
    if (modifiers.vanished === true && (!uid || modifiers.changedSince === undefined)) bad('VANISHED needs UID FETCH with CHANGEDSINCE');
  }
  return { name: 'FETCH', uid, set, attributes, modifiers, macro };
}

/**
 * rfc9051 6.4.6: store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags;
 * store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)));
 * rfc7162 3.1.3: store-modifier = "UNCHANGEDSINCE" SP mod-sequence-valzer.
 */
function parseStore(r: Reader, uid: boolean): Command {
  r.sp('sequence set');
  const set = r.sequenceSet();
  r.sp('FLAGS');
  let unchangedSince: number | null = null;
  if (r.peek() === LPAREN) {
    r.list(() => {
      const name = r.keyword('a STORE modifier');
      if (name !== 'UNCHANGEDSINCE') bad(`Unknown STORE modifier ${short(name)}`);
      r.sp();
      unchangedSince = r.modSeq(true);
    }, 'STORE modifiers');
    r.sp('FLAGS');
  }
  let mode: 'add' | 'remove' | 'set' = 'set';
  if (r.skip(0x2b /* + */)) mode = 'add';
  else if (r.skip(0x2d /* - */)) mode = 'remove';
  const item = r.runOf((c) => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a || c === 0x2e).toUpperCase();
  if (item !== 'FLAGS' && item !== 'FLAGS.SILENT') bad('Expected FLAGS, +FLAGS or -FLAGS');
  r.sp('flags');
  let flags: string[];
  if (r.peek() === LPAREN) {
    flags = r.flagList();
  } else {
    flags = [r.flag()];
    while (r.skip(SP)) flags.push(r.flag());
  }
  return { name: 'STORE', uid, set, mode, silent: item === 'FLAGS.SILENT', flags, unchangedSince };
}

function parseCopy(name: 'COPY' | 'MOVE'): CommandParser {
  return (r, uid) => {
    r.sp('sequence set');
    const set = r.sequenceSet();
    r.sp('mailbox name');
    return { name, uid, set, mailbox: r.mailbox() };
  };
}

function parseUidExpunge(r: Reader): Command {
  // rfc4315 2.1: uid-expunge = "EXPUNGE" SP sequence-set
  r.sp('sequence set');
  return { name: 'UID EXPUNGE', set: r.sequenceSet() };
}

function parseId(r: Reader): Command {
  // rfc2971 4: id = "ID" SP id-params-list; id-params-list = "(" #(string SP nstring) ")" / nil
  r.sp('ID parameters');
  if (r.peek() !== LPAREN) {
    if (r.run(ATOM).toUpperCase() !== 'NIL') bad('Expected a list of ID parameters or NIL');
    return { name: 'ID', params: null };
  }
  const params = r.list((): [string, string | null] => {
    const key = r.string('an ID field name').toString('utf8');
    r.sp('ID field value');
    const value = r.nstring('an ID field value or NIL');
    return [key, value === null ? null : value.toString('utf8')];
  }, 'ID parameters', 0);
  return { name: 'ID', params };
}

function parseGetQuota(r: Reader): Command {
  // rfc9208 4.1.1: getquota = "GETQUOTA" SP quota-root-name; quota-root-name = astring
  r.sp('quota root');
  return { name: 'GETQUOTA', root: r.text('a quota root') };
}

function parseGetQuotaRoot(r: Reader): Command {
  r.sp('mailbox name');
  return { name: 'GETQUOTAROOT', mailbox: r.mailbox() };
}

function parseSetQuota(r: Reader): Command {
  // rfc9208 4.1.3: setquota = "SETQUOTA" SP quota-root-name SP setquota-list;
  // setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")";
  // setquota-resource = resource-name SP resource-limit; resource-limit = number64
  r.sp('quota root');
  const root = r.text('a quota root');
  r.sp('quota limits');
  const limits = r.list((): [string, number] => {
    const resource = r.keyword('a resource name');
    r.sp();
    return [resource, r.number('resource limit', MAX_NUMBER64)];
  }, 'quota limits', 0);
  return { name: 'SETQUOTA', root, limits };
}

function parseCompress(r: Reader): Command {
  // rfc4978 3: compress = "COMPRESS" SP algorithm; algorithm = "DEFLATE"
  r.sp('compression mechanism');
  return { name: 'COMPRESS', mechanism: r.keyword('a compression mechanism') };
}

const COMMANDS = new Map<string, CommandParser>(Object.entries({
  CAPABILITY: noArgs('CAPABILITY'),
  NOOP: noArgs('NOOP'),
  LOGOUT: noArgs('LOGOUT'),
  STARTTLS: noArgs('STARTTLS'),
  AUTHENTICATE: parseAuthenticate,
  LOGIN: parseLogin,
  ENABLE: parseEnable,
  SELECT: parseSelect('SELECT'),
  EXAMINE: parseSelect('EXAMINE'),
  CREATE: parseCreate,
  DELETE: parseMailboxOnly('DELETE'),
  RENAME: parseRename,
  SUBSCRIBE: parseMailboxOnly('SUBSCRIBE'),
  UNSUBSCRIBE: parseMailboxOnly('UNSUBSCRIBE'),
  LIST: parseList,
  LSUB: parseLsub,
  NAMESPACE: noArgs('NAMESPACE'),
  STATUS: parseStatus,
  APPEND: parseAppend,
  IDLE: noArgs('IDLE'),
  CHECK: noArgs('CHECK'),
  CLOSE: noArgs('CLOSE'),
  UNSELECT: noArgs('UNSELECT'),
  EXPUNGE: noArgs('EXPUNGE'),
  SEARCH: parseSearch,
  FETCH: parseFetch,
  STORE: parseStore,
  COPY: parseCopy('COPY'),
  MOVE: parseCopy('MOVE'),
  ID: parseId,
  GETQUOTA: parseGetQuota,
  GETQUOTAROOT: parseGetQuotaRoot,
  SETQUOTA: parseSetQuota,
  COMPRESS: parseCompress,
}));

/** rfc4315 2, rfc6851 3.3, rfc9051 6.4.9: the commands that take a UID prefix. */
const UID_COMMANDS = new Map<string, CommandParser>(Object.entries({
  FETCH: parseFetch,
  STORE: parseStore,
  SEARCH: parseSearch,
  COPY: parseCopy('COPY'),
  MOVE: parseCopy('MOVE'),
  EXPUNGE: parseUidExpunge,
}));

/**
 * Parse one framed command. `segments` is what the framer's `command` event carries (any list
 * of segments is accepted). Never throws.
 */
export function parseCommand(segments: readonly Segment[], options: ParseOptions): ParseResult {
  let tag: string | null = null;
  let name: string | null = null;
  try {
    const r = new Reader(normalize(segments), options.utf8);
    // rfc9051 9: command = tag SP (command-any / command-auth / command-nonauth / command-select) CRLF
    const t = r.run(TAG);
    if (t === '' || !(r.peek() === SP || r.atEnd())) return { ok: false, tag: null, error: 'Invalid tag' };
    tag = t;
    if (r.atEnd()) return { ok: false, tag, error: 'Missing command' };
    r.pos++;
    const word = r.run(ATOM).toUpperCase();
    if (word === '') return { ok: false, tag, error: 'Missing command' };
    if (!r.atEnd() && r.peek() !== SP) return { ok: false, tag, error: 'Invalid command name' };
    let parser = COMMANDS.get(word);
    let uid = false;
    if (word === 'UID') {
      // rfc9051 6.4.9: uid = "UID" SP (copy / move / fetch / search / store / uid-expunge)
      if (!r.skip(SP)) return { ok: false, tag, error: 'Missing command after UID' };
      const sub = r.run(ATOM).toUpperCase();
      parser = UID_COMMANDS.get(sub);
      if (parser === undefined) return { ok: false, tag, error: sub === '' ? 'Missing command after UID' : `Unknown command UID ${short(sub)}` };
      if (!r.atEnd() && r.peek() !== SP) return { ok: false, tag, error: 'Invalid command name' };
      uid = true;
      name = `UID ${sub}`;
    } else {
      if (parser === undefined) return { ok: false, tag, error: `Unknown command ${short(word)}` };
      name = word;
    }
    const command = parser(r, uid);
    if (!r.atEnd()) {
      return { ok: false, tag, error: `${name}: ${r.atLiteral() || r.peek() === SP ? 'Unexpected extra arguments' : 'Invalid arguments'}` };
    }
    return { ok: true, tag, command };
  } catch (e) {
    const message = e instanceof Bad ? e.message : 'Invalid command';
    return { ok: false, tag, error: name === null ? message : `${name}: ${message}` };
  }
}
