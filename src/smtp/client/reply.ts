/**
 * The SMTP client's reply parser: bytes from a server in, complete replies out.
 *
 * Purpose: split what a remote server sends into replies (one or more lines sharing a code,
 * `250-` continuing and `250 ` ending), take the RFC 3463 enhanced status code off each line,
 * and read the EHLO keywords. Pure: the connection pushes what the socket read and pulls replies.
 *
 * Invariants
 * - `next()` never throws. It returns a reply, an error, or null (need more bytes). After an
 *   error the reader is spent: every later `next()` returns the same error, because the
 *   conversation can no longer be followed and the connection must be closed.
 * - A reply's lines are decoded as UTF-8 (invalid bytes become U+FFFD), and control characters
 *   are replaced by spaces, so reply text can go into logs and bounces as it is.
 *
 * Security: everything is untrusted server output. A line is at most `maxLineLength` bytes
 * (rfc5321 4.5.3.1.5 says 512; real servers send longer, so 4 KB by default) and a reply at most
 * `maxLines` lines (100): a server that goes beyond either gets a `too-long` error, not memory.
 * Bytes held between pushes are bounded by the line reader (one line plus one chunk) and by the
 * lines of the reply being assembled.
 *
 * Standards: rfc5321 4.2 (reply syntax, multi-line replies), 4.2.1 (reply code classes),
 * 4.1.1.1 and 4.1.2 (EHLO response: ehlo-keyword and ehlo-param), rfc3463 and rfc2034 (enhanced
 * status codes on every line), rfc1870 3 (SIZE parameter).
 */
import { LineReader } from '../../net/line-reader.js';

export interface SmtpClientReply {
  /** The three-digit reply code (rfc5321 4.2: first digit 2-5). */
  code: number;
  /** The rfc3463 enhanced status code of the first line (e.g. `5.1.1`), when the server sent one. */
  enhanced: string | null;
  /** The text of each line, after the code, the separator and the enhanced status code. */
  lines: string[];
}

export type ReplyErrorKind =
  /** A line exceeded maxLineLength, or a reply exceeded maxLines. */
  | 'too-long'
  /** A line that does not start with a reply code and a separator. */
  | 'bad-syntax'
  /** A continuation line with another code than the first line of its reply (rfc5321 4.2.1). */
  | 'code-mismatch';

export type ReplyResult = { ok: true; reply: SmtpClientReply } | { ok: false; error: ReplyErrorKind; detail: string };

export interface ReplyReaderOptions {
  /** Longest accepted line in bytes, without the line end (default 4096). */
  maxLineLength?: number;
  /** Most lines in one reply (default 100). */
  maxLines?: number;
}

export const DEFAULT_MAX_REPLY_LINE = 4096;
export const DEFAULT_MAX_REPLY_LINES = 100;

/** One parsed reply line. */
export interface ReplyLine {
  code: number;
  /** True for the last line of a reply (code followed by SP or by nothing). */
  last: boolean;
  text: string;
}

/**
 * rfc5321 4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ]
 * CRLF; Reply-code = %x32-35 %x30-35 %x30-39. Returns null when the line is not a reply line.
 */
export function parseReplyLine(line: string): ReplyLine | null {
  const m = /^([2-5][0-5][0-9])(?:([ -])(.*))?$/s.exec(line);
  if (m === null) return null;
  return { code: Number(m[1]), last: m[2] !== '-', text: m[3] ?? '' };
}

/**
 * rfc3463 2: status-code = class "." subject "." detail; class = "2" / "4" / "5";
 * subject = 1*3digit; detail = 1*3digit. rfc2034 4: it starts the text, followed by SP. The class
 * must match the reply code's first digit, otherwise the text is not taken as a status code.
 */
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: +|$)/;

function splitEnhanced(code: number, text: string): { enhanced: string | null; text: string } {
  const m = ENHANCED.exec(text);
  if (m === null || Number(m[1]) !== Math.floor(code / 100)) return { enhanced: null, text };
  return { enhanced: `${m[1]}.${Number(m[2])}.${Number(m[3])}`, text: text.slice(m[0].length) };
}

const CONTROL = /[\u0000-\u001f\u007f]/g;

export class ReplyReader {
  private readonly lines: LineReader;
  private readonly maxLines: number;
  /** Lines of the reply being assembled. */
  private pending: ReplyLine[] = [];
  private pendingEnhanced: string | null = null;
  private error: ReplyResult | null = null;

  constructor(options: ReplyReaderOptions = {}) {
    this.lines = new LineReader({ maxLineLength: options.maxLineLength ?? DEFAULT_MAX_REPLY_LINE });
    this.maxLines = options.maxLines ?? DEFAULT_MAX_REPLY_LINES;
  }

  /** Bytes pushed and not yet parsed into lines (bounded only by the caller's reading). */
  get unparsedBytes(): number {
    return this.lines.bufferedBytes;
  }

  push(chunk: Buffer): void {
    if (this.error === null) this.lines.push(chunk);
  }

  next(): ReplyResult | null {
    if (this.error !== null) return this.error;
    for (;;) {
      const result = this.lines.next();
      if (result === null) return null;
      if (result.tooLong) {
        return this.fail('too-long', `reply line longer than ${this.lines.maxLineLength} bytes`);
      }
      // A bare LF is accepted: the client side is lenient in what it reads (rfc5321 4.5.3.1.5
      // servers are not all careful), and it costs nothing here.
      const text = result.line.toString('utf8').replace(CONTROL, ' ');
      const line = parseReplyLine(text);
      if (line === null) return this.fail('bad-syntax', `malformed reply line: ${truncate(text)}`);
      const first = this.pending[0];
      if (first !== undefined && first.code !== line.code) {
        // rfc5321 4.2.1: every line of a multi-line reply carries the same code.
        return this.fail('code-mismatch', `reply code changed from ${first.code} to ${line.code} within a reply`);
      }
      if (this.pending.length >= this.maxLines) {
        return this.fail('too-long', `reply longer than ${this.maxLines} lines`);
      }
      const split = splitEnhanced(line.code, line.text);
      if (first === undefined) this.pendingEnhanced = split.enhanced;
      // rfc2034 4: each line carries the status code; it is taken off every line, not only the first.
      this.pending.push({ code: line.code, last: line.last, text: split.enhanced === null ? line.text : split.text });
      if (!line.last) continue;
      const reply: SmtpClientReply = { code: line.code, enhanced: this.pendingEnhanced, lines: this.pending.map((l) => l.text) };
      this.pending = [];
      this.pendingEnhanced = null;
      return { ok: true, reply };
    }
  }

  private fail(error: ReplyErrorKind, detail: string): ReplyResult {
    this.error = { ok: false, error, detail };
    this.pending = [];
    return this.error;
  }
}

function truncate(text: string, max = 80): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/** The reply class: 2 positive, 3 intermediate, 4 transient negative, 5 permanent negative. */
export function replyClass(reply: { code: number }): 2 | 3 | 4 | 5 {
  return Math.floor(reply.code / 100) as 2 | 3 | 4 | 5;
}

/**
 * The status code to report for a reply: its own, or `X.0.0` from the reply class when the
 * server sent none (rfc3463 3.1 "Other undefined status"), as Postfix does.
 */
export function replyStatus(reply: SmtpClientReply): string {
  if (reply.enhanced !== null) return reply.enhanced;
  const cls = replyClass(reply);
  return `${cls === 3 ? 2 : cls}.0.0`;
}

/**
 * One line for logs, queue records and bounces: `550 5.1.1 <x@y>: no such user`. The lines of a
 * multi-line reply are joined with spaces; the status code is the server's or `X.0.0`.
 */
export function formatClientReply(reply: SmtpClientReply, maxLength = 1000): string {
  const text = reply.lines
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' ');
  const out = `${reply.code} ${replyStatus(reply)}${text === '' ? '' : ` ${text}`}`;
  return out.length > maxLength ? `${out.slice(0, maxLength)}...` : out;
}

/** What a server offered in its EHLO reply. */
export interface EhloInfo {
  /** The domain the server named on the first line (its first word). */
  serverName: string;
  /** Upper-case ehlo-keyword → its ehlo-params (possibly none). */
  keywords: Map<string, string[]>;
}

/**
 * rfc5321 4.1.1.1: ehlo-ok-rsp lines after the first are `ehlo-keyword *( SP ehlo-param )`;
 * keywords are case-insensitive. The obsolete `AUTH=PLAIN LOGIN` form (before rfc2554 was final)
 * is read like `AUTH PLAIN LOGIN`, as Postfix and others still advertise both.
 */
export function parseEhlo(reply: SmtpClientReply): EhloInfo {
  const serverName = (reply.lines[0] ?? '').trim().split(/\s+/)[0] ?? '';
  const keywords = new Map<string, string[]>();
  for (const line of reply.lines.slice(1)) {
    const m = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:[ =](.*))?$/.exec(line.trim());
    if (m === null) continue;
    const keyword = m[1]!.toUpperCase();
    const params = (m[2] ?? '').split(' ').filter((p) => p !== '');
    const known = keywords.get(keyword);
    if (known === undefined) keywords.set(keyword, params);
    else for (const p of params) if (!known.includes(p)) known.push(p);
  }
  return { serverName, keywords };
}

/**
 * rfc1870 4: `SIZE [number]`; a missing or zero number means no fixed limit (null here), as does
 * a SIZE that is not a number (a broken server should not stop mail it would take).
 */
export function ehloSizeLimit(info: EhloInfo): number | null {
  const params = info.keywords.get('SIZE');
  if (params === undefined || params.length === 0) return null;
  const value = params[0]!;
  if (!/^\d{1,20}$/.test(value)) return null;
  const n = Number(value);
  return n > 0 ? n : null;
}

/** The SASL mechanisms of `AUTH`, upper-case (rfc4954 3). */
export function ehloAuthMechanisms(info: EhloInfo): string[] {
  return (info.keywords.get('AUTH') ?? []).map((m) => m.toUpperCase());
}
