/**
 * The multi-line body of RETR and TOP (RFC 1939 3): lines end in CRLF, a line starting with "."
 * gets another ".", and ".\r\n" ends it. Streaming and pure: bytes in, bytes out, at most one
 * pending CR held between chunks.
 *
 * For TOP, `bodyLines` limits the output to the header, the blank line and that many body lines;
 * `done` then tells the caller to stop reading.
 */
const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const TERMINATOR = Buffer.from('.\r\n');

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
    const out: Buffer[] = [];
    let start = 0;
    let i = 0;
    const flush = (end: number): void => {
      if (end > start) out.push(chunk.subarray(start, end));
    };
    for (; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.pendingCr) {
        this.pendingCr = false;
        if (b !== LF) {
          // A bare CR: end the line as CRLF (the CR itself was not copied yet).
          out.push(CRLF);
          if (this.endLine()) return Buffer.concat(out);
          start = i;
        }
      }
      if (this.atLineStart) {
        this.atLineStart = false;
        this.lineEmpty = b === CR || b === LF;
        if (b === DOT) {
          flush(i);
          out.push(Buffer.from('.'));
          start = i;
        }
      }
      if (b === CR) {
        flush(i);
        start = i + 1;
        this.pendingCr = true;
        continue;
      }
      if (b === LF) {
        flush(i);
        out.push(CRLF);
        start = i + 1;
        if (this.endLine()) return Buffer.concat(out);
      }
    }
    flush(i);
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
