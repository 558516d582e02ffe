/**
 * IMAP wire text for a message's structure: ENVELOPE, BODY and BODYSTRUCTURE, and the byte
 * ranges of BODY[section] parts, computed from the cached MIME tree (message/mime.ts).
 *
 * Purpose: FETCH answers structure questions without reading the message again; only the
 * section bytes themselves are read from the blob, by the ranges given here.
 *
 * Invariants
 * - Pure and total: nothing here throws; no I/O.
 * - Every string goes out as NIL, a quoted string or a literal: a literal `{n}\r\n...` when the
 *   value holds CR, LF or NUL, or 8-bit characters and the client has not enabled UTF-8
 *   (rfc6855 UTF8=ACCEPT / rfc9051); otherwise a quoted string with `"` and `\` escaped.
 *   Literal lengths are UTF-8 byte counts.
 *
 * Security: the values come from untrusted messages; quoting is the only thing between them
 * and the protocol stream, so no value is ever written unquoted (no atoms) and CR/LF never
 * appear outside a literal.
 *
 * Standards: rfc3501 7.4.2 and rfc9051 7.5.2 (ENVELOPE, BODY, BODYSTRUCTURE: body-type-basic,
 * body-type-msg, body-type-text, body-type-mpart, body-ext-1part, body-ext-mpart), rfc3501
 * 6.4.5 and rfc9051 6.4.5 (BODY[section]: part numbers, HEADER, HEADER.FIELDS[.NOT], TEXT,
 * MIME), rfc3501 9 (string = quoted / literal), rfc6855 3 (UTF-8 in quoted strings),
 * rfc9051 7.5.2 (media-message also "GLOBAL"). Output follows Dovecot 2.3 (the empty
 * text/plain part written for a multipart without children; a message/rfc822 part without a
 * parsed message gets an all-NIL envelope and an empty body; Sender/Reply-To defaults; names
 * and subjects cleaned for humans: tabs and line breaks to spaces, runs of spaces to one,
 * trimmed).
 */
import { isMessagePart, isMultipart, type MimeParam, type MimePart } from '../message/mime.js';
import { parseHeaderBlock } from '../message/header.js';
import type { Envelope, EnvelopeAddress } from '../message/envelope.js';

export interface StructureFormatOptions {
  /**
   * The client enabled UTF8=ACCEPT (rfc6855) or speaks IMAP4rev2: 8-bit UTF-8 may be sent in
   * quoted strings, and message/global is described as an encapsulated message (rfc9051).
   * Without it, 8-bit values go as literals and message/global as a basic body (as Dovecot).
   */
  utf8?: boolean;
}

// --- strings ----------------------------------------------------------------------------

/** An IMAP string (rfc3501 9 `string`): quoted, or a literal when it must be. */
export function imapString(value: string, utf8 = false): string {
  let literal = false;
  let plain = true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x0d || c === 0x0a || c === 0) {
      literal = true;
      break;
    }
    if (c >= 0x80 && !utf8) {
      literal = true;
      break;
    }
    if (c === 0x22 || c === 0x5c) plain = false;
  }
  if (literal) {
    const clean = value.includes('\0') ? value.replace(/\0/g, '') : value; // literals carry no NUL
    return `{${Buffer.byteLength(clean, 'utf8')}}\r\n${clean}`;
  }
  return plain ? `"${value}"` : `"${value.replace(/(["\\])/g, '\\$1')}"`;
}

/** rfc3501 9 `nstring`: NIL or a string. */
export function imapNString(value: string | null | undefined, utf8 = false): string {
  return value === null || value === undefined ? 'NIL' : imapString(value, utf8);
}

/**
 * Text meant for people (subjects, display names), cleaned as Dovecot's
 * imap_append_string_for_humans: TAB, CR and LF become spaces, runs of spaces one space,
 * leading and trailing spaces go, NULs are dropped.
 */
export function cleanForHumans(value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/\0/g, '').replace(/[\t\r\n ]+/g, ' ').trim();
}

// --- ENVELOPE ---------------------------------------------------------------------------

function formatAddress(addr: EnvelopeAddress, utf8: boolean): string {
  const name = addr.name === null ? 'NIL' : imapString(cleanForHumans(addr.name), utf8);
  return `(${name} ${imapNString(addr.adl, utf8)} ${imapNString(addr.mailbox, utf8)} ${imapNString(addr.host, utf8)})`;
}

function formatAddressList(list: readonly EnvelopeAddress[] | null, utf8: boolean): string {
  if (list === null || list.length === 0) return 'NIL';
  let out = '(';
  for (const addr of list) out += formatAddress(addr, utf8);
  return `${out})`;
}

/**
 * rfc3501 7.4.2 ENVELOPE: `(date subject from sender reply-to to cc bcc in-reply-to
 * message-id)`; an absent envelope is all NIL.
 */
export function formatEnvelope(env: Envelope | null, options: StructureFormatOptions = {}): string {
  const utf8 = options.utf8 === true;
  if (env === null) return '(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)';
  const subject = env.subject === null ? 'NIL' : imapString(cleanForHumans(env.subject), utf8);
  return (
    `(${imapNString(env.date, utf8)} ${subject} ${formatAddressList(env.from, utf8)} ` +
    `${formatAddressList(env.sender, utf8)} ${formatAddressList(env.replyTo, utf8)} ` +
    `${formatAddressList(env.to, utf8)} ${formatAddressList(env.cc, utf8)} ${formatAddressList(env.bcc, utf8)} ` +
    `${imapNString(env.inReplyTo, utf8)} ${imapNString(env.messageId, utf8)})`
  );
}

// --- BODY / BODYSTRUCTURE ---------------------------------------------------------------

/** body-fld-param: `("name" "value" ...)` or NIL. */
function formatParams(params: readonly MimeParam[], utf8: boolean): string {
  if (params.length === 0) return 'NIL';
  const items: string[] = [];
  for (const [name, value] of params) items.push(imapString(name, utf8), imapString(value, utf8));
  return `(${items.join(' ')})`;
}

/** body-fld-dsp: `("type" params)` or NIL. */
function formatDisposition(part: MimePart, utf8: boolean): string {
  if (part.disposition === null) return 'NIL';
  return `(${imapString(part.disposition.type, utf8)} ${formatParams(part.disposition.params, utf8)})`;
}

/** body-fld-lang: a list of strings, or NIL. */
function formatLanguage(part: MimePart, utf8: boolean): string {
  if (part.language === null || part.language.length === 0) return 'NIL';
  return `(${part.language.map((tag) => imapString(tag, utf8)).join(' ')})`;
}

/** The body Dovecot writes for a multipart without children and a message without a body. */
function emptyTextPart(extended: boolean): string {
  return `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0${extended ? ' NIL NIL NIL NIL' : ''})`;
}

const MAX_FORMAT_DEPTH = 256; // the parser caps nesting at 100; this guards a hand-made tree

/**
 * rfc3501 7.4.2 BODYSTRUCTURE (`extended`) or BODY (not extended) of a part, usually the root.
 * Values go out as the message wrote them (`"TEXT" "HTML"` stays upper-case, as Dovecot);
 * defaults in lower case.
 */
export function formatBodyStructure(part: MimePart, extended: boolean, options: StructureFormatOptions = {}): string {
  return formatPart(part, extended, options.utf8 === true, 0);
}

function formatPart(part: MimePart, extended: boolean, utf8: boolean, depth: number): string {
  if (depth > MAX_FORMAT_DEPTH) return emptyTextPart(extended);
  if (isMultipart(part)) {
    // body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
    let out = '(';
    if (part.parts.length === 0) out += emptyTextPart(extended);
    for (const child of part.parts) out += formatPart(child, extended, utf8, depth + 1);
    out += ` ${imapString(part.written?.subtype ?? part.subtype, utf8)}`;
    if (extended) {
      // body-ext-mpart = body-fld-param [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]
      out += ` ${formatParams(part.params, utf8)} ${formatDisposition(part, utf8)} ${formatLanguage(part, utf8)} ${imapNString(part.location, utf8)}`;
    }
    return `${out})`;
  }
  // body-fields = body-fld-param SP body-fld-id SP body-fld-desc SP body-fld-enc SP body-fld-octets
  let out =
    `(${imapString(part.written?.type ?? part.type, utf8)} ${imapString(part.written?.subtype ?? part.subtype, utf8)} ` +
    `${formatParams(part.params, utf8)} ` +
    `${imapNString(part.id, utf8)} ${imapNString(part.description, utf8)} ${imapString(part.encoding, utf8)} ` +
    `${Math.max(0, part.end - part.bodyStart)}`;
  const asMessage = isMessagePart(part) && (part.subtype === 'rfc822' || utf8);
  if (asMessage) {
    // body-type-msg = media-message SP body-fields SP envelope SP body SP body-fld-lines
    const child = part.parts[0];
    if (child === undefined) out += ` ${formatEnvelope(null)} ${emptyTextPart(extended)}`;
    else out += ` ${formatEnvelope(child.envelope, { utf8 })} ${formatPart(child, extended, utf8, depth + 1)}`;
    out += ` ${part.bodyLines}`;
  } else if (part.type === 'text') {
    // body-type-text = media-text SP body-fields SP body-fld-lines
    out += ` ${part.bodyLines}`;
  }
  if (extended) {
    // body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]
    out += ` ${imapNString(part.md5, utf8)} ${formatDisposition(part, utf8)} ${formatLanguage(part, utf8)} ${imapNString(part.location, utf8)}`;
  }
  return `${out})`;
}

// --- sections ---------------------------------------------------------------------------

/**
 * The part a section number names (rfc3501 6.4.5): part N of a multipart is its Nth child; a
 * part that is not multipart has only part 1 (itself), and only a message/rfc822 part may be
 * followed by more numbers, which then number the parts of its encapsulated message. So a
 * non-multipart message's part 1 is the message itself. `[]` is the root. Null when there is
 * no such part. As Dovecot's imap_msgpart_find.
 */
export function findSection(root: MimePart, path: readonly number[]): MimePart | null {
  let part: MimePart | null = root;
  for (let i = 0; i < path.length && part !== null; i++) {
    const num = path[i]!;
    const more = i + 1 < path.length;
    if (!Number.isInteger(num) || num < 1) return null;
    if (isMultipart(part)) {
      part = part.parts[num - 1] ?? null;
    } else if (num !== 1 || (more && !isMessagePart(part))) {
      return null;
    }
    if (part !== null && more && isMessagePart(part)) part = part.parts[0] ?? null;
  }
  return part;
}

export interface SectionRange {
  start: number;
  end: number;
}

/**
 * The byte range [start, end) of a BODY[section] (rfc3501 6.4.5), spec as in the FETCH:
 * `''` (the whole message), `HEADER`, `TEXT`, `N`, `N.MIME`, `N.HEADER`, `N.TEXT` (N a dotted
 * part number), and `[N.]HEADER.FIELDS[.NOT]` (the header range; filter it with
 * filterHeaderFields). Case-insensitive; a field list after the keyword is ignored. Null when
 * the part does not exist or the spec does not apply (HEADER/TEXT of a part that is not
 * message/rfc822, MIME without a part number); the IMAP layer then returns an empty string.
 */
export function sectionRange(root: MimePart, spec: string): SectionRange | null {
  const cut = spec.search(/[ (]/);
  const words = (cut === -1 ? spec : spec.slice(0, cut)).trim().split('.');
  const path: number[] = [];
  while (words.length > 0 && /^\d+$/.test(words[0]!)) path.push(Number(words.shift()!));
  if (words.length === 1 && words[0] === '') words.length = 0;
  const text = words.join('.').toUpperCase();
  if (text !== '' && !/^(HEADER|TEXT|MIME|HEADER\.FIELDS|HEADER\.FIELDS\.NOT)$/.test(text)) return null;
  if (path.length === 0) {
    if (text === '') return { start: 0, end: root.end };
    if (text === 'TEXT') return { start: root.bodyStart, end: root.end };
    if (text === 'MIME') return null; // rfc3501 6.4.5: MIME needs a part number
    return { start: root.headerStart, end: root.bodyStart };
  }
  const part = findSection(root, path);
  if (part === null) return null;
  if (text === '') return { start: part.bodyStart, end: part.end };
  if (text === 'MIME') return { start: part.headerStart, end: part.bodyStart };
  // HEADER, HEADER.FIELDS[.NOT], TEXT: of the message encapsulated in a message/rfc822 part.
  const message = isMessagePart(part) ? part.parts[0] : undefined;
  if (message === undefined) return null;
  if (text === 'TEXT') return { start: message.bodyStart, end: message.end };
  return { start: message.headerStart, end: message.bodyStart };
}

/**
 * HEADER.FIELDS / HEADER.FIELDS.NOT (rfc3501 6.4.5): the fields of a header block whose names
 * are (or, with `not`, are not) in `names` (case-insensitive), each whole with its folds and
 * line end, in the order of the message, followed by the empty line. Lines that are not
 * fields are dropped.
 */
export function filterHeaderFields(headerBytes: Buffer, names: readonly string[], not: boolean): Buffer {
  const wanted = new Set(names.map((name) => name.toLowerCase()));
  const pieces: Buffer[] = [];
  for (const field of parseHeaderBlock(headerBytes, { final: true }).fields) {
    if (wanted.has(field.name.toLowerCase()) === not) continue;
    const bytes = headerBytes.subarray(field.offset, field.offset + field.length);
    pieces.push(bytes);
    if (bytes[bytes.length - 1] !== 0x0a) pieces.push(CRLF);
  }
  pieces.push(CRLF);
  return Buffer.concat(pieces);
}

const CRLF = Buffer.from('\r\n');
