/**
 * MIME structure with byte offsets: a streaming parser that reads a message once (at delivery
 * or APPEND) and returns the tree of its parts, where each part's header and body start and
 * end, and the header values IMAP's BODYSTRUCTURE needs (after mox's message.Part).
 *
 * Purpose: parse once, serve many times. The tree is cached as JSON with the message; FETCH
 * BODYSTRUCTURE / BODY[section] / BINARY then read byte ranges of the stored blob without
 * parsing it again (see imap/structure-format.ts).
 *
 * Offsets (all absolute byte offsets into the message, end exclusive)
 * - headerStart: the first byte of the part's header (0 for the message; the byte after the
 *   boundary line's line end for a child of a multipart; the encapsulated message of a
 *   message/rfc822 part starts at that part's bodyStart).
 * - bodyStart: the byte after the empty line that ends the header. A header that never ends
 *   (no empty line before the next boundary or the end of the input) has bodyStart = end.
 * - end: where the part stops. The line end before a boundary line belongs to the boundary
 *   (rfc2046 5.1.1), so it is not in the part; a part whose boundary never comes ends where
 *   its parent ends. For a multipart, [bodyStart, end) holds preamble, children, boundaries
 *   and epilogue.
 * - bodyLines: the number of LF characters in [bodyStart, end) (an unterminated last line does
 *   not count), as Dovecot counts body-fld-lines.
 * Offsets are raw: a message stored with bare LF line ends has raw sizes (Dovecot would report
 * the sizes of the CRLF form). Store messages with CRLF line ends.
 *
 * Invariants
 * - Pure and total: write() and end() never throw; every input gives a tree.
 * - Feeding the same bytes in any chunking gives the same tree.
 * - The result is plain JSON: objects, arrays, strings, numbers and nulls; no Buffers or Maps.
 * - headerStart <= bodyStart <= end for every part, children lie inside their parent's body.
 *
 * Security: the input is an untrusted message of any size. Memory is bounded: the parser keeps
 * the first bytes of the current line (enough to recognise a boundary) and the header block
 * of the part being read, at most HEADER_BLOCK_LIMIT bytes (the rest of a longer header is
 * skipped, not stored). Nesting deeper than MAX_DEPTH makes leaves, and after MAX_PARTS parts
 * further boundaries start no new part (the same limits as Dovecot: 100 and 10000), so the
 * tree itself is bounded. Time is linear in the input.
 *
 * Standards: rfc2045 5 (Content-Type, defaults: text/plain; charset=us-ascii, also for an
 * invalid field), rfc2045 6 (Content-Transfer-Encoding, default 7bit), rfc2045 7 (Content-ID),
 * rfc2045 8 (Content-Description), rfc2046 5.1.1 (boundaries; the CRLF before a boundary is
 * part of it; preamble and epilogue), rfc2046 5.1.5 (multipart/digest: default
 * message/rfc822), rfc2046 5.2.1 (message/rfc822), rfc6532 3.7 (message/global), rfc2183
 * (Content-Disposition), rfc3282 (Content-Language), rfc2557 4 (Content-Location), rfc1864
 * (Content-MD5), rfc2231 (parameter continuations, charsets), rfc3501 7.4.2 (what BODYSTRUCTURE
 * needs). Where the RFCs leave it open the behaviour follows Dovecot 2.3 (boundary lines match
 * by prefix, innermost first; a header ended by a boundary; parameter names and values kept as
 * written, RFC 2231 continuations merged into one `name*` parameter still encoded).
 */
import iconv from 'iconv-lite';
import libmime from 'libmime';
import { buildEnvelope, unfoldValue, type Envelope } from './envelope.js';
import { parseHeaderBlock, type HeaderField } from './header.js';

/** Bytes of one part's header block that are kept for parsing; the rest is skipped. */
export const HEADER_BLOCK_LIMIT = 256 * 1024;
/** Nesting (multipart and message/rfc822 levels) beyond which parts are leaves. */
export const MAX_DEPTH = 100;
/** Parts in one message beyond which boundaries start no new part. */
export const MAX_PARTS = 10000;
/** A longer boundary parameter is ignored (rfc2046 5.1.1 allows 70 characters). */
const MAX_BOUNDARY = 998;
/** Bytes of a line kept across chunks: "--", the longest boundary, "--". */
const PREFIX_LIMIT = MAX_BOUNDARY + 4;

const LF = 0x0a;
const CR = 0x0d;
const DASH = 0x2d;

/** A parameter as written: [name, value], the value unquoted. */
export type MimeParam = [name: string, value: string];

export interface MimeDisposition {
  /** The disposition type as written (`attachment`, `INLINE`...). */
  type: string;
  params: MimeParam[];
}

export interface MimePart {
  headerStart: number;
  bodyStart: number;
  end: number;
  bodyLines: number;
  /** Media type and subtype, lower-cased. */
  type: string;
  subtype: string;
  /** Type and subtype as the header wrote them, present only when not all lower-case. */
  written?: { type: string; subtype: string };
  /**
   * Content-Type parameters in the order written, names and values as written; rfc2231
   * continuations merged (`name*0*`, `name*1` become one `name*` with the value still
   * encoded, as Dovecot sends them). A text part without charset gets `charset=us-ascii`.
   */
  params: MimeParam[];
  /** Content-ID, Content-Description, Content-MD5, Content-Location: unfolded, or null. */
  id: string | null;
  description: string | null;
  /** Content-Transfer-Encoding as written (first token); `7bit` when absent. */
  encoding: string;
  md5: string | null;
  disposition: MimeDisposition | null;
  /** Content-Language tags, or null when absent. */
  language: string[] | null;
  location: string | null;
  /**
   * Children: the parts of a multipart, or for message/rfc822 and message/global the one
   * encapsulated message (whose `envelope` is set). Empty for a leaf.
   */
  parts: MimePart[];
  /** The ENVELOPE, on the top-level part and on encapsulated messages; null elsewhere. */
  envelope: Envelope | null;
}

/** True when the part is message/rfc822 or message/global, whose child is a message. */
export function isMessagePart(part: MimePart): boolean {
  return part.type === 'message' && (part.subtype === 'rfc822' || part.subtype === 'global');
}

export function isMultipart(part: MimePart): boolean {
  return part.type === 'multipart';
}

// --- header values ----------------------------------------------------------------------

const TSPECIALS = '()<>@,;:\\"/[]?='; // rfc2045 5.1

function isTokenChar(c: string): boolean {
  const code = c.charCodeAt(0);
  return code > 0x20 && code !== 0x7f && !TSPECIALS.includes(c);
}

/** Skips whitespace and rfc5322 3.2.2 comments (nested, counted, never recursive). */
function skipCfws(s: string, i: number): number {
  const n = s.length;
  while (i < n) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
    } else if (c === '(') {
      let depth = 0;
      for (; i < n; i++) {
        const d = s[i]!;
        if (d === '\\') i++;
        else if (d === '(') depth++;
        else if (d === ')' && --depth === 0) {
          i++;
          break;
        }
      }
    } else break;
  }
  return i;
}

function readToken(s: string, i: number): number {
  while (i < s.length && isTokenChar(s[i]!)) i++;
  return i;
}

/** A quoted-string starting at s[i] === '"': its value and the index after it. */
function readQuoted(s: string, i: number): { value: string; next: number } {
  let value = '';
  let j = i + 1;
  for (; j < s.length; j++) {
    const c = s[j]!;
    if (c === '"') return { value, next: j + 1 };
    if (c === '\\' && j + 1 < s.length) {
      j++;
      value += s[j];
    } else if (c !== '\r' && c !== '\n') value += c;
  }
  return { value, next: j };
}

function skipToSemicolon(s: string, i: number): number {
  while (i < s.length && s[i] !== ';') {
    if (s[i] === '"') i = readQuoted(s, i).next;
    else if (s[i] === '(') i = skipCfws(s, i);
    else i++;
  }
  return i;
}

/**
 * rfc2045 5.1 parameter list after the value: `*(";" attribute "=" value)`. Lenient: an
 * unquoted value runs to whitespace or ";" (so `boundary=----=_Part_1` works), junk between
 * parameters is skipped, duplicates are kept.
 */
function parseParams(s: string, i: number): MimeParam[] {
  const raw: MimeParam[] = [];
  const n = s.length;
  while (i < n) {
    i = skipCfws(s, i);
    if (i >= n) break;
    if (s[i] !== ';') {
      i = skipToSemicolon(s, i);
      continue;
    }
    i = skipCfws(s, i + 1);
    const nameEnd = readToken(s, i);
    if (nameEnd === i) continue;
    const name = s.slice(i, nameEnd);
    i = skipCfws(s, nameEnd);
    if (s[i] !== '=') continue;
    i = skipCfws(s, i + 1);
    let value: string;
    if (s[i] === '"') {
      const q = readQuoted(s, i);
      value = q.value;
      i = q.next;
    } else {
      let j = i;
      while (j < n && !/[\s;"(]/.test(s[j]!)) j++;
      value = s.slice(i, j);
      i = j;
    }
    raw.push([name, value]);
  }
  return mergeContinuations(raw);
}

/**
 * rfc2231 3-4: `name*` and the continuations `name*0`, `name*1*`... are joined in index order
 * into one parameter, `name*` (value still charset'lang'%XX-encoded) when the first segment is
 * extended, `name` otherwise. As Dovecot's rfc2231_parse, these come after the plain
 * parameters, sorted by name.
 */
function mergeContinuations(raw: MimeParam[]): MimeParam[] {
  let has2231 = false;
  for (const [name] of raw) {
    if (name.endsWith('*') || /\*\d+$/.test(name)) {
      has2231 = true;
      break;
    }
  }
  if (!has2231) return raw;
  const plain: MimeParam[] = [];
  const groups = new Map<string, { base: string; segments: { index: number; value: string; extended: boolean }[] }>();
  for (const [name, value] of raw) {
    const m = /^(.*?)\*(\d{1,4})?(\*?)$/.exec(name);
    if (m === null || m[1] === '' || (m[2] === undefined && m[3] === '*')) {
      plain.push([name, value]);
      continue;
    }
    const key = m[1]!.toLowerCase();
    let group = groups.get(key);
    if (group === undefined) {
      group = { base: m[1]!, segments: [] };
      groups.set(key, group);
    }
    // `name*` alone is extended (m[2] undefined, the "*" matched by the first star).
    const extended = m[2] === undefined || m[3] === '*';
    group.segments.push({ index: m[2] === undefined ? 0 : Number(m[2]), value, extended });
  }
  const keys = [...groups.keys()].sort();
  for (const key of keys) {
    const group = groups.get(key)!;
    group.segments.sort((a, b) => a.index - b.index);
    const extended = group.segments[0]!.extended;
    plain.push([extended ? `${group.base}*` : group.base, group.segments.map((seg) => seg.value).join('')]);
  }
  return plain;
}

export interface ContentType {
  /** Lower-cased. */
  type: string;
  subtype: string;
  /** As written. */
  writtenType: string;
  writtenSubtype: string;
  params: MimeParam[];
}

/**
 * Parses a Content-Type value (rfc2045 5.1). Null when it is syntactically invalid (no
 * `type/subtype` of tokens), which rfc2045 5.2 says to treat as if absent.
 */
export function parseContentType(value: string): ContentType | null {
  let i = skipCfws(value, 0);
  const typeEnd = readToken(value, i);
  const type = value.slice(i, typeEnd);
  i = skipCfws(value, typeEnd);
  if (type === '' || value[i] !== '/') return null;
  i = skipCfws(value, i + 1);
  const subEnd = readToken(value, i);
  const subtype = value.slice(i, subEnd);
  if (subtype === '') return null;
  return {
    type: type.toLowerCase(),
    subtype: subtype.toLowerCase(),
    writtenType: type,
    writtenSubtype: subtype,
    params: parseParams(value, subEnd),
  };
}

/** Parses a Content-Disposition value (rfc2183 2); null when there is no type token. */
export function parseContentDisposition(value: string): MimeDisposition | null {
  const i = skipCfws(value, 0);
  const end = readToken(value, i);
  if (end === i) return null;
  return { type: value.slice(i, end), params: parseParams(value, end) };
}

/** rfc3282 2: Content-Language = 1#Language-tag, comments allowed. */
export function parseContentLanguage(value: string): string[] | null {
  const tags: string[] = [];
  let i = 0;
  while (i < value.length) {
    i = skipCfws(value, i);
    if (value[i] === ',') {
      i++;
      continue;
    }
    let j = i;
    while (j < value.length && !/[\s,(]/.test(value[j]!)) j++;
    if (j === i) {
      i++;
      continue;
    }
    tags.push(value.slice(i, j));
    i = j;
  }
  return tags.length === 0 ? null : tags;
}

/**
 * The value of a parameter decoded for display: `name*` (rfc2231 charset'lang'%XX, via
 * iconv-lite) is preferred over `name`, whose encoded words (as some mailers write them) are
 * decoded by libmime. Null when the parameter is absent. Matching is case-insensitive.
 */
export function decodedParam(params: readonly MimeParam[], name: string): string | null {
  const lower = name.toLowerCase();
  for (const [key, value] of params) {
    if (key.toLowerCase() === `${lower}*`) return decodeRfc2231Value(value);
  }
  for (const [key, value] of params) {
    if (key.toLowerCase() === lower) {
      try {
        return libmime.decodeWords(value);
      } catch {
        return value;
      }
    }
  }
  return null;
}

/** rfc2231 4: charset "'" [language] "'" %XX-encoded octets; without the quotes, as is. */
export function decodeRfc2231Value(value: string): string {
  const m = /^([^']*)'[^']*'([\s\S]*)$/.exec(value);
  if (m === null) return value;
  const bytes: number[] = [];
  const text = m[2]!;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x25 && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) bytes.push(c);
    else for (const b of Buffer.from(text[i]!, 'utf8')) bytes.push(b);
  }
  const buf = Buffer.from(bytes);
  const charset = m[1]! === '' ? 'us-ascii' : m[1]!;
  try {
    if (iconv.encodingExists(charset)) return iconv.decode(buf, charset);
  } catch {
    // fall through to UTF-8
  }
  return buf.toString('utf8');
}

function nonEmpty(value: string): string | null {
  return value === '' ? null : value;
}

/**
 * Fills a part's Content-* values from its header fields. When a field appears twice the first
 * one counts (as Dovecot). `digestChild`: the part is directly inside a multipart/digest, whose
 * default type is message/rfc822 (rfc2046 5.1.5).
 */
function applyHeader(part: MimePart, fields: readonly HeaderField[], digestChild: boolean): void {
  let contentType: string | null = null;
  let encoding: string | null = null;
  let disposition: string | null = null;
  let language: string | null = null;
  for (let f = fields.length - 1; f >= 0; f--) {
    // Backwards, so that the first of repeated fields is the one left standing.
    const field = fields[f]!;
    const lname = field.name.toLowerCase();
    if (!lname.startsWith('content-')) continue;
    switch (lname) {
      case 'content-type':
        contentType = field.value;
        break;
      case 'content-transfer-encoding':
        encoding = field.value;
        break;
      case 'content-id':
        part.id = nonEmpty(unfoldValue(field.value));
        break;
      case 'content-description':
        part.description = nonEmpty(unfoldValue(field.value));
        break;
      case 'content-md5':
        part.md5 = nonEmpty(unfoldValue(field.value));
        break;
      case 'content-disposition':
        disposition = field.value;
        break;
      case 'content-language':
        language = field.value;
        break;
      case 'content-location':
        part.location = nonEmpty(unfoldValue(field.value));
        break;
      default:
        break;
    }
  }
  const ct = contentType === null ? null : parseContentType(contentType);
  if (ct !== null) {
    part.type = ct.type;
    part.subtype = ct.subtype;
    part.params = ct.params;
    if (ct.writtenType !== ct.type || ct.writtenSubtype !== ct.subtype) {
      part.written = { type: ct.writtenType, subtype: ct.writtenSubtype };
    }
  } else if (contentType === null && digestChild) {
    part.type = 'message'; // rfc2046 5.1.5
    part.subtype = 'rfc822';
    part.params = [];
  } else {
    part.type = 'text'; // rfc2045 5.2: absent or invalid
    part.subtype = 'plain';
    part.params = [];
  }
  if (part.type === 'text' && !part.params.some(([name]) => name.toLowerCase() === 'charset')) {
    part.params.push(['charset', 'us-ascii']);
  }
  if (encoding !== null) {
    const i = skipCfws(encoding, 0);
    const token = encoding.slice(i, readToken(encoding, i));
    if (token !== '') part.encoding = token;
  }
  if (disposition !== null) part.disposition = parseContentDisposition(disposition);
  if (language !== null) part.language = parseContentLanguage(language);
}

/** The boundary parameter of a multipart part, or null when absent, empty or too long. */
function boundaryOf(part: MimePart): Buffer | null {
  for (const [name, value] of part.params) {
    if (name.toLowerCase() !== 'boundary') continue;
    if (value === '' || value.length > MAX_BOUNDARY) return null;
    return Buffer.from(value, 'utf8');
  }
  return null;
}

function newPart(headerStart: number): MimePart {
  return {
    headerStart,
    bodyStart: headerStart,
    end: headerStart,
    bodyLines: 0,
    type: 'text',
    subtype: 'plain',
    params: [],
    id: null,
    description: null,
    encoding: '7bit',
    md5: null,
    disposition: null,
    language: null,
    location: null,
    parts: [],
    envelope: null,
  };
}

// --- the streaming parser ---------------------------------------------------------------

interface Frame {
  part: MimePart;
  depth: number;
  /** The header block has not ended yet. */
  inHeader: boolean;
  /** The part starts a message (the top level, or inside message/rfc822): it gets an envelope. */
  isMessage: boolean;
  /** Directly inside a multipart/digest. */
  digestChild: boolean;
  /** Header bytes kept so far (from headerStart on, at most HEADER_BLOCK_LIMIT). */
  headerPieces: Buffer[];
  headerKept: number;
  /** LFs before bodyStart. */
  lfAtBodyStart: number;
  /** The boundary of a multipart whose close delimiter has not been seen. */
  boundary: Buffer | null;
}

/**
 * Reads a message in chunks of any size and returns its MIME tree. Chunks are not retained:
 * the caller may reuse a buffer after write() returns.
 *
 *   const parser = new MimeStructureParser();
 *   for await (const chunk of stream) parser.write(chunk);
 *   const root = parser.end();
 */
export class MimeStructureParser {
  private readonly frames: Frame[] = [];
  private root: MimePart;
  /** Bytes written so far; the absolute offset of the next chunk. */
  private offset = 0;
  /** LFs in complete lines so far. */
  private totalLf = 0;
  /** Line end length (0, 1 or 2) of the last complete line, and whether it was a boundary line. */
  private prevEol = 0;
  private prevWasBoundary = false;
  private lineIsBoundary = false;
  /** The incomplete line carried over from earlier chunks: its start, length, first bytes. */
  private pendingStart = 0;
  private pendingLen = 0;
  private pendingLastCR = false;
  private readonly prefix = Buffer.allocUnsafe(PREFIX_LIMIT);
  private prefixLen = 0;
  /** The chunk being written, its absolute offset, and where the top frame's header bytes start in it. */
  private chunk: Buffer | null = null;
  private base = 0;
  private headerSeg = 0;
  private activeBoundaries = 0;
  private partCount = 1;
  private finished: MimePart | null = null;
  private failed = false;

  constructor() {
    this.root = newPart(0);
    this.frames.push(this.newFrame(this.root, 0, true, false));
  }

  write(chunk: Buffer | Uint8Array): void {
    if (this.finished !== null || chunk.length === 0) return;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    if (this.failed) {
      this.offset += buf.length;
      return;
    }
    try {
      this.writeChunk(buf);
    } catch {
      this.failed = true; // never expected; keep the offsets right and degrade to one part
    } finally {
      this.chunk = null;
      this.offset += buf.length;
    }
  }

  /** Ends the input and returns the tree. Calling it again returns the same tree. */
  end(): MimePart {
    if (this.finished !== null) return this.finished;
    if (!this.failed) {
      try {
        if (this.pendingLen > 0) {
          // The last line has no line end; it may still be a boundary line.
          this.onLine(this.prefix, 0, this.prefixLen, this.pendingStart, this.pendingLen, 0);
          this.pendingLen = 0;
        }
        while (this.frames.length > 0) this.finishFrame(this.frames.pop()!, this.offset, this.totalLf);
      } catch {
        this.failed = true;
      }
    }
    if (this.failed) {
      const root = newPart(0);
      root.params = [['charset', 'us-ascii']];
      root.end = this.offset;
      root.bodyStart = this.offset;
      this.root = root;
    }
    this.finished = this.root;
    return this.root;
  }

  private newFrame(part: MimePart, depth: number, isMessage: boolean, digestChild: boolean): Frame {
    return {
      part,
      depth,
      inHeader: true,
      isMessage,
      digestChild,
      headerPieces: [],
      headerKept: 0,
      lfAtBodyStart: 0,
      boundary: null,
    };
  }

  private writeChunk(buf: Buffer): void {
    this.chunk = buf;
    this.base = this.offset;
    this.headerSeg = 0;
    const n = buf.length;
    let i = 0;
    while (i < n) {
      const lf = buf.indexOf(LF, i);
      if (lf === -1) {
        this.carry(buf, i, n);
        break;
      }
      this.completeLine(buf, i, lf + 1);
      i = lf + 1;
    }
    // Keep the header bytes of this chunk that the top frame still needs.
    const top = this.frames[this.frames.length - 1];
    if (top !== undefined && top.inHeader) this.keepHeaderBytes(top, buf, this.headerSeg, n);
  }

  private keepHeaderBytes(frame: Frame, buf: Buffer, from: number, to: number): void {
    const room = HEADER_BLOCK_LIMIT - frame.headerKept;
    const len = Math.min(room, to - from);
    if (len <= 0) return;
    frame.headerPieces.push(Buffer.from(buf.subarray(from, from + len)));
    frame.headerKept += len;
  }

  /** The start of a line (or more of it) without its line end yet. */
  private carry(buf: Buffer, from: number, to: number): void {
    if (this.pendingLen === 0) {
      this.pendingStart = this.base + from;
      this.prefixLen = 0;
    }
    const room = PREFIX_LIMIT - this.prefixLen;
    if (room > 0) this.prefixLen += buf.copy(this.prefix, this.prefixLen, from, Math.min(to, from + room));
    this.pendingLen += to - from;
    this.pendingLastCR = buf[to - 1] === CR;
  }

  /** A line whose LF is at buf[to - 1]; its start may have come in earlier chunks. */
  private completeLine(buf: Buffer, from: number, to: number): void {
    const here = to - from;
    let eol: number;
    if (here >= 2) eol = buf[to - 2] === CR ? 2 : 1;
    else eol = this.pendingLen > 0 && this.pendingLastCR ? 2 : 1;
    if (this.pendingLen === 0) {
      this.onLine(buf, from, Math.min(to, from + PREFIX_LIMIT), this.base + from, here, eol);
    } else {
      const room = PREFIX_LIMIT - this.prefixLen;
      if (room > 0) this.prefixLen += buf.copy(this.prefix, this.prefixLen, from, Math.min(to, from + room));
      const start = this.pendingStart;
      const len = this.pendingLen + here;
      this.pendingLen = 0;
      this.onLine(this.prefix, 0, this.prefixLen, start, len, eol);
    }
    this.totalLf++;
    this.prevEol = eol;
    this.prevWasBoundary = this.lineIsBoundary;
  }

  /**
   * One line: `line[ls, le)` holds its first bytes (all of it, or at least PREFIX_LIMIT),
   * `start` is its absolute offset, `len` its length with the line end of `eol` bytes.
   */
  private onLine(line: Buffer, ls: number, le: number, start: number, len: number, eol: number): void {
    this.lineIsBoundary = false;
    if (this.activeBoundaries > 0 && le - ls >= 2 && line[ls] === DASH && line[ls + 1] === DASH) {
      // rfc2046 5.1.1: a line starting with "--" and a boundary of an enclosing multipart;
      // the innermost is tried first, and the match is by prefix (as Dovecot).
      for (let k = this.frames.length - 1; k >= 0; k--) {
        const b = this.frames[k]!.boundary;
        if (b === null || le - ls - 2 < b.length) continue;
        if (line.compare(b, 0, b.length, ls + 2, ls + 2 + b.length) !== 0) continue;
        const close = le - ls - 2 >= b.length + 2 && line[ls + 2 + b.length] === DASH && line[ls + 3 + b.length] === DASH;
        this.lineIsBoundary = true;
        this.onBoundary(k, close, start, len);
        return;
      }
    }
    const top = this.frames[this.frames.length - 1]!;
    if (top.inHeader && len === eol) this.endHeader(top, start + len);
  }

  private onBoundary(k: number, close: boolean, start: number, len: number): void {
    // The line end before the boundary line belongs to the boundary (rfc2046 5.1.1), unless it
    // ends a boundary line itself (as Dovecot: a boundary line takes its own line end).
    const strip = this.prevWasBoundary ? 0 : this.prevEol;
    const end = start - strip;
    const lfBeforeEnd = this.totalLf - (strip > 0 ? 1 : 0);
    while (this.frames.length - 1 > k) this.finishFrame(this.frames.pop()!, end, lfBeforeEnd);
    const frame = this.frames[k]!;
    if (close) {
      frame.boundary = null;
      this.activeBoundaries--;
      return; // what follows is the epilogue, part of the multipart's body
    }
    if (this.partCount >= MAX_PARTS) return;
    this.startChild(frame, start + len, false);
  }

  private startChild(parent: Frame, headerStart: number, isMessage: boolean): void {
    const part = newPart(headerStart);
    parent.part.parts.push(part);
    this.partCount++;
    const digestChild = !isMessage && parent.part.type === 'multipart' && parent.part.subtype === 'digest';
    this.frames.push(this.newFrame(part, parent.depth + 1, isMessage, digestChild));
    if (this.chunk !== null) this.headerSeg = Math.max(0, headerStart - this.base);
  }

  /** The header bytes of the top frame from headerStart up to `upTo` (absolute). */
  private headerBytes(frame: Frame, upTo: number): Buffer {
    const want = Math.min(HEADER_BLOCK_LIMIT, upTo - frame.part.headerStart);
    if (want <= 0) return Buffer.alloc(0);
    let current: Buffer | null = null;
    if (this.chunk !== null) {
      const to = Math.min(this.chunk.length, upTo - this.base);
      if (to > this.headerSeg) current = this.chunk.subarray(this.headerSeg, to);
    }
    let all: Buffer;
    if (frame.headerPieces.length === 0) all = current ?? Buffer.alloc(0);
    else all = Buffer.concat(current === null ? frame.headerPieces : [...frame.headerPieces, current]);
    return all.length > want ? all.subarray(0, want) : all;
  }

  private parseFrameHeader(frame: Frame, upTo: number): void {
    const fields = parseHeaderBlock(this.headerBytes(frame, upTo), { final: true }).fields;
    applyHeader(frame.part, fields, frame.digestChild);
    if (frame.isMessage) frame.part.envelope = buildEnvelope(fields);
    frame.headerPieces = [];
    frame.inHeader = false;
  }

  /** The empty line ending the top frame's header ends just before `bodyStart`. */
  private endHeader(frame: Frame, bodyStart: number): void {
    this.parseFrameHeader(frame, bodyStart);
    const part = frame.part;
    part.bodyStart = bodyStart;
    frame.lfAtBodyStart = this.totalLf + 1; // the empty line's LF is not counted yet
    if (frame.depth >= MAX_DEPTH) return;
    if (part.type === 'multipart') {
      frame.boundary = boundaryOf(part);
      if (frame.boundary !== null) this.activeBoundaries++;
    } else if (isMessagePart(part) && this.partCount < MAX_PARTS) {
      this.startChild(frame, bodyStart, true);
    }
  }

  /** The part ends at `end` (clamped to its own start), with `lfBeforeEnd` LFs before it. */
  private finishFrame(frame: Frame, end: number, lfBeforeEnd: number): void {
    const part = frame.part;
    if (frame.boundary !== null) {
      frame.boundary = null;
      this.activeBoundaries--;
    }
    if (frame.inHeader) {
      const stop = Math.max(end, part.headerStart);
      this.parseFrameHeader(frame, stop);
      part.bodyStart = stop;
      part.end = stop;
      part.bodyLines = 0;
      return;
    }
    if (end < part.bodyStart && part.parts.length === 0) {
      // The empty line that ended the header was the line end before the boundary: the header
      // has no empty line of its own (as Dovecot), and the body is empty.
      part.bodyStart = Math.max(end, part.headerStart);
    }
    part.end = Math.max(end, part.bodyStart);
    part.bodyLines = part.end > part.bodyStart ? Math.max(0, lfBeforeEnd - frame.lfAtBodyStart) : 0;
  }
}

/** Parses a whole message held in memory. */
export function parseMimeStructure(bytes: Buffer): MimePart {
  const parser = new MimeStructureParser();
  parser.write(bytes);
  return parser.end();
}

/** Calls `visit` for every part, depth first, parents before children. */
export function walkParts(root: MimePart, visit: (part: MimePart, depth: number) => void): void {
  const stack: { part: MimePart; depth: number }[] = [{ part: root, depth: 0 }];
  while (stack.length > 0) {
    const { part, depth } = stack.pop()!;
    visit(part, depth);
    for (let i = part.parts.length - 1; i >= 0; i--) stack.push({ part: part.parts[i]!, depth: depth + 1 });
  }
}
