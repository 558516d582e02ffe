/**
 * Header fields: folding and unfolding, splitting a header section into fields with byte
 * offsets, and the header lines Fulmar writes itself (Received, dates).
 *
 * Purpose: the one place that knows the RFC 5322 line rules for header fields, so spooling,
 * filters, delivery and IMAP FETCH agree on where a field starts and ends.
 *
 * Invariants
 * - Pure and total: nothing here throws on any input.
 * - Offsets are byte offsets into the buffer given; a field's `length` includes its line end(s).
 * - Values we write never contain a CR or LF that is not a fold (no header injection).
 *
 * Security: parseHeaderBlock reads untrusted message bytes; it is linear in the input and holds
 * nothing beyond the field list, so the caller bounds memory by how much it passes (the spool
 * passes the first bytes of the message only). Lines may end in CR LF or a bare LF. Values that
 * come from clients (HELO name, authenticated user) are sanitised before formatReceived writes
 * them.
 *
 * Standards: rfc5322 2.2 (header fields), 2.2.3 (folding and unfolding), 2.1.1 (78/998
 * characters), 3.3 (date-time), 3.6.7 (trace fields), 4.5 (obsolete: space before the colon);
 * rfc5321 4.4 (Received: Stamp); rfc3848 (with ESMTPA/ESMTPS/ESMTPSA); rfc6532 (UTF-8 values).
 */

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const TAB = 0x09;

// --- folding ----------------------------------------------------------------------------

/** Removes every line break that is followed by whitespace (rfc5322 2.2.3); bare LF too. */
export function unfold(value: string): string {
  return value.replace(/\r?\n(?=[ \t])/g, '');
}

/**
 * Folds a whole line (already starting with "Name:") at whitespace: CR LF is inserted before a
 * whitespace run, which stays at the start of the continuation line. Never breaks inside a word;
 * a word longer than the limit stays whole on its own line. Returns the lines joined by CR LF,
 * without a final CR LF.
 */
function foldLine(line: string, maxLineLength: number, keepFirst: number): string {
  const tokens = line.match(/[ \t]*[^ \t]+|[ \t]+$/g);
  if (tokens === null) return line;
  let out = '';
  let current = '';
  let index = 0;
  for (const token of tokens) {
    // The first `keepFirst` tokens stay together: "Name:" and the first word of the value.
    if (index < keepFirst || current === '' || !/^[ \t]/.test(token) || /^[ \t]+$/.test(token)) {
      current += token;
    } else if (current.length + token.length > maxLineLength) {
      out += `${current}\r\n`;
      current = token;
    } else {
      current += token;
    }
    index++;
  }
  return out + current;
}

/**
 * `Name: value`, folded to lines of at most maxLineLength characters where whitespace allows
 * (rfc5322 2.1.1, 2.2.3). CR and LF in the value that are not folds become spaces. Returned
 * without the final CR LF.
 */
export function foldHeader(name: string, value: string, maxLineLength = 78): string {
  const clean = unfold(value).replace(/\r\n|[\r\n]/g, ' ');
  return foldLine(`${name}: ${clean}`, maxLineLength, 2);
}

// --- parsing ----------------------------------------------------------------------------

export interface HeaderField {
  /** The field name as written (without trailing whitespace before the colon). */
  name: string;
  /** The value, unfolded, without the leading whitespace after the colon and the line end. */
  value: string;
  /** Byte offset of the field's first byte in the buffer. */
  offset: number;
  /** Bytes of the field, line ends included. */
  length: number;
}

export interface HeaderBlock {
  fields: HeaderField[];
  /**
   * When complete: bytes of the header section, including the empty line that ends it (so the
   * body starts here). When not: bytes of the complete fields read so far.
   */
  headerLength: number;
  /** The empty line was found (or `final` was given and the input ended). */
  complete: boolean;
}

export interface HeaderBlockOptions {
  /**
   * The buffer is the whole message: a header section that reaches the end without an empty
   * line ends there (a message with no body), and its last field is taken as it is.
   */
  final?: boolean;
}

/** rfc5322 3.6.8 field-name = 1*ftext, ftext = %d33-57 / %d59-126 */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/**
 * Splits the header section at the start of `buf` into fields (rfc5322 2.2). Streaming-friendly:
 * when the section has not ended yet, `complete` is false and the fields returned are those
 * known to be whole; call again with more bytes. Lines without a colon (an mbox "From " line,
 * garbage) and stray continuation lines at the start are skipped.
 */
export function parseHeaderBlock(buf: Buffer, options: HeaderBlockOptions = {}): HeaderBlock {
  const fields: HeaderField[] = [];
  const len = buf.length;
  let pos = 0;
  while (pos < len) {
    // The empty line ends the header section.
    if (buf[pos] === LF) return { fields, headerLength: pos + 1, complete: true };
    if (buf[pos] === CR) {
      if (pos + 1 >= len) break;
      if (buf[pos + 1] === LF) return { fields, headerLength: pos + 2, complete: true };
    }
    // Find the end of this field: a line end not followed by SP or TAB.
    let q = pos;
    let end = -1;
    for (;;) {
      const lf = buf.indexOf(LF, q);
      if (lf === -1 || lf + 1 >= len) break;
      const next = buf[lf + 1];
      if (next === SP || next === TAB) {
        q = lf + 1;
        continue;
      }
      end = lf + 1;
      break;
    }
    if (end === -1) {
      if (!options.final) return { fields, headerLength: pos, complete: false };
      end = len;
    }
    const field = toField(buf, pos, end);
    if (field !== null) fields.push(field);
    pos = end;
  }
  if (options.final) return { fields, headerLength: len, complete: true };
  return { fields, headerLength: pos, complete: false };
}

function toField(buf: Buffer, start: number, end: number): HeaderField | null {
  const text = buf.toString('utf8', start, end);
  const colon = text.indexOf(':');
  if (colon === -1) return null;
  const name = text.slice(0, colon).replace(/[ \t]+$/, ''); // rfc5322 4.5.8 obs-optional
  if (!FIELD_NAME.test(name)) return null;
  const value = unfold(text.slice(colon + 1))
    .replace(/\r?\n$/, '')
    .replace(/^[ \t]+/, '');
  return { name, value, offset: start, length: end - start };
}

// --- dates ------------------------------------------------------------------------------

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * rfc5322 3.3 date-time, e.g. `Tue, 25 Nov 2025 11:21:00 +0000`. `offsetMinutes` is the zone to
 * write it in (east of UTC positive); by default the local zone of this process.
 */
export function formatDate(date: Date, offsetMinutes: number = -date.getTimezoneOffset()): string {
  const shifted = new Date(date.getTime() + offsetMinutes * 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  const zone = `${sign}${pad2(Math.floor(abs / 60))}${pad2(abs % 60)}`;
  return (
    `${DAYS[shifted.getUTCDay()]}, ${shifted.getUTCDate()} ${MONTHS[shifted.getUTCMonth()]} ${shifted.getUTCFullYear()} ` +
    `${pad2(shifted.getUTCHours())}:${pad2(shifted.getUTCMinutes())}:${pad2(shifted.getUTCSeconds())} ${zone}`
  );
}

// --- Received ---------------------------------------------------------------------------

export interface ReceivedInfo {
  /** The name the client gave in EHLO/HELO, as given. */
  from: string;
  /** The client's IP address. */
  fromIp: string;
  /** The client's verified reverse-DNS name; "unknown" is written when absent. */
  fromHostname?: string | null;
  /** Our host name. */
  by: string;
  /** rfc5321 4.4 / rfc3848 protocol: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTPS... */
  with: string;
  /** The queue or message id. */
  id?: string;
  /** The recipient, written only when the message has exactly one (rfc5321 4.4 "FOR"). */
  for?: string;
  tls?: { version: string; cipher: string; bits?: number };
  /** The authenticated SASL user name. */
  auth?: string;
  date: Date;
  /** Zone for the date; see formatDate. */
  offsetMinutes?: number;
  /** The comment after our host name; default "Fulmar". */
  software?: string;
}

/** Client-chosen text written outside a comment: one token, printable, no parentheses. */
function sanitizeToken(s: string): string {
  const clean = s.replace(/[^\x21-\x7e\u0080-\uffff]|[()\\;]/g, '?');
  return clean === '' ? '?' : clean;
}

/** Text written inside a comment: controls dropped, parentheses and backslash quoted (rfc5322 3.2.2). */
function sanitizeComment(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, '').replace(/([()\\])/g, '\\$1');
}

/** A path written in angle brackets: it may hold a quoted local part with spaces. */
function sanitizePath(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f<>]/g, '?');
}

function ipLiteral(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return `[${mapped[1]}]`;
  return ip.includes(':') ? `[IPv6:${ip.toLowerCase()}]` : `[${ip}]`; // rfc5321 4.1.3
}

/**
 * The Received: field a server prepends (rfc5321 4.4), in Postfix's layout:
 *
 *   Received: from helo.example (host.example [192.0.2.1])
 *   	(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))
 *   	(Authenticated sender: user@example.org)
 *   	by mx.example.org (Fulmar) with ESMTPSA id 4AbC
 *   	for <rcpt@example.org>; Tue, 25 Nov 2025 11:21:00 +0000
 *
 * Returned with its final CR LF; lines longer than 78 characters are folded further.
 */
export function formatReceived(info: ReceivedInfo): string {
  const host = info.fromHostname ? sanitizeToken(info.fromHostname) : 'unknown';
  const lines: string[] = [`Received: from ${sanitizeToken(info.from)} (${host} ${ipLiteral(info.fromIp)})`];
  if (info.tls) {
    const bits = info.tls.bits ? ` (${info.tls.bits}/${info.tls.bits} bits)` : '';
    lines.push(`\t(using ${sanitizeComment(info.tls.version)} with cipher ${sanitizeComment(info.tls.cipher)}${bits})`);
  }
  if (info.auth !== undefined) lines.push(`\t(Authenticated sender: ${sanitizeComment(info.auth)})`);
  let by = `\tby ${sanitizeToken(info.by)} (${sanitizeComment(info.software ?? 'Fulmar')}) with ${sanitizeToken(info.with)}`;
  if (info.id !== undefined) by += ` id ${sanitizeToken(info.id)}`;
  const date = formatDate(info.date, info.offsetMinutes);
  if (info.for !== undefined) {
    lines.push(by);
    lines.push(`\tfor <${sanitizePath(info.for)}>; ${date}`);
  } else {
    lines.push(`${by};`);
    lines.push(`\t${date}`);
  }
  return `${lines.map((l) => foldLine(l, 78, 1)).join('\r\n')}\r\n`;
}
