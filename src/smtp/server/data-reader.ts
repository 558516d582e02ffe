/**
 * Streaming decoders for a message body: DATA (dot-stuffed, ends at CRLF "." CRLF) and BDAT
 * (rfc3030 CHUNKING, exact byte counts).
 *
 * Purpose: turn what the socket read into the bytes to spool, chunk by chunk, while counting
 * what the session needs to decide on the message (size, bare CR/LF, overlong lines).
 *
 * Invariants
 * - Pure and total: `push()` never throws. Chunks may split anywhere (inside CR LF, inside the
 *   dot line); state carries across calls.
 * - The end of DATA is ONLY CR LF "." CR LF, where the first CR LF may be the one that ended the
 *   DATA command. A bare LF or bare CR next to the dot is never the end: "\n.\n", "\r\n.\n",
 *   "\n.\r\n" and "\r.\r" stay data (SMTP smuggling, CVE-2023-51764/51765/51766).
 * - Memory: at most two bytes ("." and/or CR) are held across calls. The body returned by a
 *   push is usually a view of the pushed chunk (zero-copy) and is built fresh otherwise.
 *
 * Security: the bytes are untrusted. Lines are not collected, only measured, so an endless line
 * costs nothing. With bareNewline 'normalize', every bare LF and bare CR becomes CR LF in the
 * output, so a relayed copy cannot carry a smuggled terminator (our client dot-stuffs it).
 * With 'reject', the bytes pass unchanged and `stats.bareNewline` tells the session to refuse
 * the message once the end is reached.
 *
 * Standards: rfc5321 4.1.1.4 (DATA, end of mail data), 4.5.2 (transparency: dot-stuffing),
 * 4.5.3.1.6 (text line 1000 octets with CR LF: maxLineLength 998), 2.3.8 (bare CR and LF);
 * rfc3030 2 (BDAT).
 */

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const LF_ONLY = Buffer.from('\n');
const EMPTY = Buffer.alloc(0);

export type BareNewlinePolicy = 'normalize' | 'reject';

export interface DataReaderOptions {
  /** The longest line, in bytes, without its line end (rfc5321 4.5.3.1.6: 998). Only counted. */
  maxLineLength: number;
  /** 'normalize': bare CR / LF become CR LF. 'reject': passed unchanged, and flagged. */
  bareNewline: BareNewlinePolicy;
  /**
   * Whether the line before the body (the DATA command) ended in CR LF, so that a body of just
   * ".\r\n" ends at once. Default true; false when the session let a bare-LF command through.
   */
  precededByCrlf?: boolean;
}

export interface DataStats {
  /** Bytes returned as body so far (after unstuffing and normalisation). */
  bodyBytes: number;
  /** Bytes consumed from the input so far (excluding what follows the terminator). */
  inputBytes: number;
  /** Any bare LF (not after CR) or bare CR (not before LF) seen. */
  bareNewline: boolean;
  bareLfCount: number;
  bareCrCount: number;
  /** Any line longer than maxLineLength (without its line end). */
  longLine: boolean;
  /** The longest line seen, in bytes without its line end. */
  longestLine: number;
}

export type DataStep =
  | { done: false; body: Buffer }
  /** `rest` holds the bytes after the terminator: the next pipelined commands. */
  | { done: true; body: Buffer; rest: Buffer; stats: DataStats };

/** Collects output ranges, merging adjacent views of the same buffer to avoid copies. */
class Output {
  private parts: Buffer[] = [];
  private src: Buffer | null = null;
  private start = 0;
  private end = 0;
  length = 0;

  range(buf: Buffer, start: number, end: number): void {
    if (end <= start) return;
    this.length += end - start;
    if (this.src === buf && this.end === start) {
      this.end = end;
      return;
    }
    this.flushRun();
    this.src = buf;
    this.start = start;
    this.end = end;
  }

  bytes(b: Buffer): void {
    this.flushRun();
    this.parts.push(b);
    this.length += b.length;
  }

  private flushRun(): void {
    if (this.src !== null) {
      this.parts.push(this.src.subarray(this.start, this.end));
      this.src = null;
    }
  }

  take(): Buffer {
    this.flushRun();
    const parts = this.parts;
    this.parts = [];
    this.length = 0;
    if (parts.length === 0) return EMPTY;
    if (parts.length === 1) return parts[0]!;
    return Buffer.concat(parts);
  }
}

function newStats(): DataStats {
  return { bodyBytes: 0, inputBytes: 0, bareNewline: false, bareLfCount: 0, bareCrCount: 0, longLine: false, longestLine: 0 };
}

/**
 * Shared line accounting: emits the content [start, end) of a line (no LF inside) handling
 * bare CRs within it, and records its length.
 */
class LineAccounting {
  readonly stats: DataStats = newStats();
  /** Bytes of the current line seen so far (it may span chunks). */
  lineLength = 0;
  private crBuf: Buffer | null = null;
  private crFrom = 0;
  private crPos = -1;

  constructor(
    private readonly maxLineLength: number,
    private readonly normalize: boolean,
  ) {}

  /**
   * Emits [start, end), which contains no LF, so every CR in it is bare. Line lengths count
   * bytes between LFs whatever the policy (a bare CR does not end a line for the count).
   */
  content(out: Output, buf: Buffer, start: number, end: number): void {
    this.lineLength += end - start;
    let p = start;
    for (;;) {
      const cr = this.nextCr(buf, p);
      if (cr === -1 || cr >= end) break;
      this.bareCr();
      if (this.normalize) {
        // rfc5321 2.3.8: the bare CR becomes a line end, so nothing downstream reads it otherwise.
        out.range(buf, p, cr + 1);
        out.bytes(LF_ONLY);
        p = cr + 1;
      } else {
        out.range(buf, p, cr + 1);
        p = cr + 1;
      }
    }
    out.range(buf, p, end);
  }

  /** Forgets the CR search cache (a caller may reuse a Buffer object with new bytes). */
  resetSearch(): void {
    this.crBuf = null;
  }

  /**
   * The next CR at or after p, remembering the last search so that lines without CRs do not
   * rescan the rest of the buffer each time.
   */
  private nextCr(buf: Buffer, p: number): number {
    if (this.crBuf === buf && p >= this.crFrom && (this.crPos === -1 || this.crPos >= p)) return this.crPos;
    this.crBuf = buf;
    this.crFrom = p;
    this.crPos = buf.indexOf(CR, p);
    return this.crPos;
  }

  bareCr(): void {
    this.stats.bareNewline = true;
    this.stats.bareCrCount++;
  }

  bareLf(): void {
    this.stats.bareNewline = true;
    this.stats.bareLfCount++;
  }

  /** Ends the current line; `extra` is its length not yet added. */
  endLine(extra: number): void {
    const len = this.lineLength + extra;
    if (len > this.stats.longestLine) this.stats.longestLine = len;
    if (len > this.maxLineLength) this.stats.longLine = true;
    this.lineLength = 0;
  }

  /** Emits a line end: CR LF as received (a view), or a bare LF normalised or kept. */
  lineEnd(out: Output, buf: Buffer, lf: number, crlf: boolean): void {
    if (crlf) {
      out.range(buf, lf - 1, lf + 1);
    } else {
      this.bareLf();
      if (this.normalize) out.bytes(CRLF);
      else out.range(buf, lf, lf + 1);
    }
  }
}

/**
 * The DATA decoder. Feed it what follows the DATA command's line (the LineReader's
 * `takeRemaining()` first, then socket chunks) until a step says `done`.
 */
export class DataReader {
  private readonly acct: LineAccounting;
  /** At the start of a line: nothing of the current line consumed yet. */
  private lineStart = true;
  /** The line before ended in CR LF (meaningful at a line start). */
  private prevCrlf: boolean;
  /** Up to two bytes held over from the previous chunk: ".", ".\r" at a line start, or "\r". */
  private carry: Buffer = EMPTY;
  private finished = false;

  constructor(options: DataReaderOptions) {
    this.acct = new LineAccounting(Math.max(0, options.maxLineLength), options.bareNewline === 'normalize');
    this.prevCrlf = options.precededByCrlf ?? true;
  }

  get stats(): DataStats {
    return { ...this.acct.stats };
  }

  get done(): boolean {
    return this.finished;
  }

  push(chunk: Buffer): DataStep {
    if (this.finished) return { done: true, body: EMPTY, rest: chunk, stats: this.stats };
    const carried = this.carry.length;
    const buf = carried === 0 ? chunk : Buffer.concat([this.carry, chunk]);
    this.carry = EMPTY;
    const out = new Output();
    const acct = this.acct;
    acct.resetSearch();
    const len = buf.length;
    let p = 0;
    while (p < len) {
      if (this.lineStart) {
        if (buf[p] === DOT) {
          // rfc5321 4.5.2: a leading dot is removed when the line has other characters; a
          // line of just "." after CR LF, ended by CR LF, is the end of the data (4.1.1.4).
          if (p + 1 >= len) {
            this.carry = buf.subarray(p);
            break;
          }
          const b1 = buf[p + 1];
          if (b1 === CR) {
            if (p + 2 >= len) {
              this.carry = buf.subarray(p);
              break;
            }
            if (buf[p + 2] === LF) {
              if (this.prevCrlf) {
                acct.stats.inputBytes += p + 3;
                acct.stats.bodyBytes += out.length;
                this.finished = true;
                const body = out.take();
                return { done: true, body, rest: buf.subarray(p + 3), stats: this.stats };
              }
              // "." CR LF after a bare LF: data, the dot kept (no other characters).
              out.range(buf, p, p + 3);
              acct.endLine(1);
              this.prevCrlf = true;
              p += 3;
              continue;
            }
            // "." then a bare CR: the line has other characters; drop the dot.
            p += 1;
            acct.lineLength = 1;
          } else if (b1 === LF) {
            // "." bare LF: never the end (smuggling); data, the dot kept.
            out.range(buf, p, p + 1);
            acct.lineEnd(out, buf, p + 1, false);
            acct.endLine(1);
            this.prevCrlf = false;
            p += 2;
            continue;
          } else {
            p += 1; // a stuffed dot
            acct.lineLength = 1;
          }
        }
        this.lineStart = false;
      }
      // Inside a line: find its end.
      const lf = buf.indexOf(LF, p);
      if (lf === -1) {
        // Hold a final CR: it may be the first half of CR LF.
        let end = len;
        if (buf[len - 1] === CR) {
          end = len - 1;
          this.carry = buf.subarray(end);
        }
        acct.content(out, buf, p, end);
        break;
      }
      const crlf = lf > p && buf[lf - 1] === CR;
      const contentEnd = crlf ? lf - 1 : lf;
      acct.content(out, buf, p, contentEnd);
      acct.lineEnd(out, buf, lf, crlf);
      acct.endLine(0);
      this.prevCrlf = crlf;
      this.lineStart = true;
      p = lf + 1;
    }
    // A carry is counted when it is consumed, in the next push.
    acct.stats.inputBytes += len - this.carry.length;
    acct.stats.bodyBytes += out.length;
    return { done: false, body: out.take() };
  }
}

export interface BdatReaderOptions {
  /** As for DataReader: counted only. */
  maxLineLength: number;
  /** 'normalize': bare CR / LF become CR LF. 'reject': passed unchanged (and flagged). */
  bareNewline: BareNewlinePolicy;
}

/**
 * The BDAT decoder for one message (rfc3030 2). Call `beginChunk(size)` for each BDAT command,
 * push socket bytes until the step is done (its `rest` is the next command), and after the
 * LAST chunk call `finish()` for any byte still held. Line-end accounting spans chunks, since a
 * CR LF may straddle two BDAT chunks. With 'reject', the bytes pass unchanged (use it for
 * BODY=BINARYMIME too, ignoring the flag).
 */
export class BdatReader {
  private readonly acct: LineAccounting;
  private remaining = 0;
  /** A CR at the end of the previous input, not yet known to be bare. */
  private heldCr = false;

  constructor(options: BdatReaderOptions) {
    this.acct = new LineAccounting(Math.max(0, options.maxLineLength), options.bareNewline === 'normalize');
  }

  get stats(): DataStats {
    return { ...this.acct.stats };
  }

  /** Bytes of the current chunk still expected. */
  get remainingBytes(): number {
    return this.remaining;
  }

  beginChunk(size: number): void {
    this.remaining = Math.max(0, Math.floor(size));
  }

  push(chunk: Buffer): DataStep {
    const take = Math.min(this.remaining, chunk.length);
    const data = chunk.subarray(0, take);
    this.remaining -= take;
    this.acct.stats.inputBytes += take;
    const out = new Output();
    this.decode(out, data);
    const body = out.take();
    this.acct.stats.bodyBytes += body.length;
    if (this.remaining > 0) return { done: false, body };
    return { done: true, body, rest: chunk.subarray(take), stats: this.stats };
  }

  /** After the LAST chunk: returns a held final CR (as a bare CR, normalised or not). */
  finish(): Buffer {
    if (!this.heldCr) return EMPTY;
    this.heldCr = false;
    const out = new Output();
    const cr = Buffer.from('\r');
    this.acct.resetSearch();
    this.acct.content(out, cr, 0, 1);
    this.acct.endLine(0);
    const body = out.take();
    this.acct.stats.bodyBytes += body.length;
    return body;
  }

  private decode(out: Output, data: Buffer): void {
    if (data.length === 0) return;
    const buf = this.heldCr ? Buffer.concat([Buffer.from('\r'), data]) : data;
    this.heldCr = false;
    const len = buf.length;
    const acct = this.acct;
    acct.resetSearch();
    let p = 0;
    while (p < len) {
      const lf = buf.indexOf(LF, p);
      if (lf === -1) {
        let end = len;
        if (buf[len - 1] === CR) {
          end = len - 1;
          this.heldCr = true;
        }
        acct.content(out, buf, p, end);
        return;
      }
      const crlf = lf > p && buf[lf - 1] === CR;
      acct.content(out, buf, p, crlf ? lf - 1 : lf);
      acct.lineEnd(out, buf, lf, crlf);
      acct.endLine(0);
      p = lf + 1;
    }
  }
}
