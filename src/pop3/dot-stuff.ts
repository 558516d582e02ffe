/**
 * The multi-line body of RETR and TOP (RFC 1939 3): lines end in CRLF, a line starting with "."
 * gets another ".", and ".\r\n" ends it. Streaming and pure: bytes in, bytes out, at most one
 * pending CR held between chunks. The output may share memory with the input chunk (unchanged
 * runs are passed through as views, not copied).
 *
 * For TOP, `bodyLines` limits the output to the header, the blank line and that many body lines;
 * `done` then tells the caller to stop reading.
 */
const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const TERMINATOR = Buffer.from('.\r\n');
const DOT_BUFFER = Buffer.from('.');

export class DotStuffer {
  private atLineStart = true;
  private pendingCr = false;
  private inBody = false;
  /** The previous line was empty (to find the end of the header). */
  private lineEmpty = true;
  private bodyLinesLeft: number;
  done = false;

  constructor(options: { bodyLines?: number } = {}) {
    this.bodyLinesLeft = options.bodyLines ?? Infinity;
  }

  push(chunk: Buffer): Buffer {
    if (this.done) return Buffer.alloc(0);
    // Line ends are found with indexOf (memchr), not byte by byte, and the input is copied to
    // the output in runs: a CRLF line without a leading dot is passed through as it is, so a
    // message with CRLF line ends and no dot lines comes out as the chunk itself.
    const out: Buffer[] = [];
    const n = chunk.length;
    /** Start of the input bytes not yet copied to `out`. */
    let start = 0;
    let i = 0;
    const flush = (end: number): void => {
      if (end > start) out.push(chunk.subarray(start, end));
    };
    if (this.pendingCr && n > 0) {
      // The chunk before ended in a CR (not copied): this line ends as CRLF either way.
      this.pendingCr = false;
      out.push(CRLF);
      if (chunk[0] === LF) start = i = 1;
      if (this.endLine()) return Buffer.concat(out);
    }
    // Next CR and LF at or after i (-1: none left in the chunk), searched again only once passed.
    let cr = -2;
    let lf = -2;
    while (i < n) {
      if (this.atLineStart) {
        const b = chunk[i]!;
        this.atLineStart = false;
        this.lineEmpty = b === CR || b === LF;
        if (b === DOT) {
          flush(i);
          out.push(DOT_BUFFER);
          start = i;
        }
      }
      if (cr !== -1 && cr < i) cr = chunk.indexOf(CR, i);
      if (lf !== -1 && lf < i) lf = chunk.indexOf(LF, i);
      if (cr === -1 && lf === -1) break; // the line goes on in the next chunk
      if (lf !== -1 && (cr === -1 || lf < cr)) {
        // A bare LF: written as CRLF.
        flush(lf);
        out.push(CRLF);
        start = i = lf + 1;
        if (this.endLine()) return Buffer.concat(out);
        continue;
      }
      // A CR.
      if (cr + 1 === n) {
        // Its LF, if any, is in the next chunk.
        flush(cr);
        start = i = n;
        this.pendingCr = true;
        break;
      }
      if (chunk[cr + 1] === LF) {
        // CRLF: copied as it is.
        i = cr + 2;
        if (this.endLine()) {
          flush(i);
          return Buffer.concat(out);
        }
        continue;
      }
      // A bare CR: written as CRLF.
      flush(cr);
      out.push(CRLF);
      start = i = cr + 1;
      if (this.endLine()) return Buffer.concat(out);
    }
    flush(n);
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /** Bytes that finish the response: a pending line end and the terminating ".\r\n". */
  end(): Buffer {
    const parts: Buffer[] = [];
    if (this.pendingCr || !this.atLineStart) parts.push(CRLF);
    this.pendingCr = false;
    this.atLineStart = true;
    parts.push(TERMINATOR);
    this.done = true;
    return Buffer.concat(parts);
  }

  /** Called after each line end; true when the TOP line limit has been reached. */
  private endLine(): boolean {
    this.atLineStart = true;
    if (this.inBody) {
      this.bodyLinesLeft--;
    } else if (this.lineEmpty) {
      this.inBody = true;
    }
    if (this.inBody && this.bodyLinesLeft <= 0) {
      this.done = true;
      return true;
    }
    return false;
  }
}
