/**
 * A bounded line reader for line-based protocols (SMTP, POP3, IMAP commands).
 *
 * Purpose: split a byte stream into lines ending at LF, telling CRLF from a bare LF, without
 * copying the stream byte by byte. Pure: the caller pushes what the socket read and pulls lines.
 *
 * Invariants
 * - `next()` never throws; it returns a line, a one-off `tooLong` marker, or null (need more).
 * - Pushed chunks are kept by reference, not copied; the caller must not modify them afterwards.
 *   A returned `line` may share memory with a pushed chunk, and stays valid (nothing is reused).
 *
 * Security: every byte is untrusted client input. `maxLineLength` bounds a line (its content,
 * without the CR LF). A longer line yields `{ tooLong: true }` once, and the reader then drops
 * bytes up to and including the next LF (draining) instead of buffering them. Provided the
 * caller pulls lines until `next()` returns null after each push, memory held between pushes is
 * at most maxLineLength + 1 bytes (plus one chunk).
 *
 * Standards: rfc5321 2.3.8 (lines end in CRLF), 4.5.3.1.4 (command line limit: 512 octets with
 * the CRLF, so SMTP passes maxLineLength 510); rfc9051 2.2 / rfc1939 3 for IMAP and POP3.
 */

const LF = 0x0a;
const CR = 0x0d;

export interface LineReaderOptions {
  /** The longest accepted line, in bytes, not counting the CR LF or LF that ends it. */
  maxLineLength: number;
}

export type LineResult =
  /** A complete line, without its line end; `crlf` is false when it ended in a bare LF. */
  | { tooLong: false; line: Buffer; crlf: boolean }
  /** A line exceeded maxLineLength; its bytes were (or will be) discarded up to the next LF. */
  | { tooLong: true };

const EMPTY = Buffer.alloc(0);

export class LineReader {
  readonly maxLineLength: number;
  /** Buffered chunks; the live data is chunks[head] from `offset` to the last chunk's end. */
  private chunks: Buffer[] = [];
  private head = 0;
  private offset = 0;
  private buffered = 0;
  /** Number of chunks from `head` already searched without finding an LF, and their bytes. */
  private scanned = 0;
  private scannedBytes = 0;
  /** Dropping bytes up to and including the next LF after a too-long line. */
  private draining = false;

  constructor(options: LineReaderOptions) {
    this.maxLineLength = Math.max(0, Math.floor(options.maxLineLength));
  }

  /** Bytes held, not yet returned as lines. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** True while the rest of a too-long line is being discarded. */
  get isDraining(): boolean {
    return this.draining;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.draining && this.buffered === 0) {
      // Drop the overlong line's bytes at once instead of holding them.
      const lf = chunk.indexOf(LF);
      if (lf === -1) return;
      this.draining = false;
      chunk = chunk.subarray(lf + 1);
      if (chunk.length === 0) return;
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  next(): LineResult | null {
    for (;;) {
      if (this.buffered === 0) return null;
      const found = this.findLf();
      if (this.draining) {
        if (found === null) {
          this.clear();
          return null;
        }
        this.consume(found.distance + 1);
        this.draining = false;
        continue;
      }
      if (found === null) {
        // No line end yet: is the partial line already too long? The last byte may be the CR
        // of a CR LF, so allow one byte more in that case only.
        const last = this.lastByte();
        const limit = last === CR ? this.maxLineLength + 1 : this.maxLineLength;
        if (this.buffered > limit) {
          this.clear();
          this.draining = true;
          return { tooLong: true };
        }
        return null;
      }
      const crlf = found.distance > 0 && this.byteBefore(found) === CR;
      const contentLength = crlf ? found.distance - 1 : found.distance;
      if (contentLength > this.maxLineLength) {
        this.consume(found.distance + 1);
        return { tooLong: true };
      }
      const bytes = this.take(found.distance + 1);
      return { tooLong: false, line: bytes.subarray(0, contentLength), crlf };
    }
  }

  /**
   * Returns and forgets every buffered byte, and leaves draining state: used when the protocol
   * switches to data mode, and to discard what a client pipelined after STARTTLS
   * (CVE-2011-0411; rfc3207 4.2: the session starts again from nothing after the handshake).
   */
  takeRemaining(): Buffer {
    const out = this.take(this.buffered);
    this.draining = false;
    return out;
  }

  /** Where the next LF is: chunk index, index in it, and distance from the read position. */
  private findLf(): { chunk: number; index: number; distance: number } | null {
    // Chunks already searched are skipped, so a line arriving in many small chunks is scanned once.
    let distance = this.scannedBytes;
    for (let c = this.head + this.scanned; c < this.chunks.length; c++) {
      const chunk = this.chunks[c]!;
      const start = c === this.head ? this.offset : 0;
      const i = chunk.indexOf(LF, start);
      if (i !== -1) return { chunk: c, index: i, distance: distance + (i - start) };
      distance += chunk.length - start;
      this.scanned++;
      this.scannedBytes = distance;
    }
    return null;
  }

  private byteBefore(pos: { chunk: number; index: number }): number {
    if (pos.index > 0) return this.chunks[pos.chunk]![pos.index - 1]!;
    const prev = this.chunks[pos.chunk - 1]!;
    return prev[prev.length - 1]!;
  }

  private lastByte(): number {
    const chunk = this.chunks[this.chunks.length - 1]!;
    return chunk[chunk.length - 1]!;
  }

  /** Removes n bytes from the front and returns them (zero-copy when within one chunk). */
  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.chunks[this.head]!;
    if (first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.consume(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    let c = this.head;
    let start = this.offset;
    while (written < n) {
      const chunk = this.chunks[c]!;
      const count = Math.min(chunk.length - start, n - written);
      chunk.copy(out, written, start, start + count);
      written += count;
      c++;
      start = 0;
    }
    this.consume(n);
    return out;
  }

  private consume(n: number): void {
    this.buffered -= n;
    this.scanned = 0;
    this.scannedBytes = 0;
    if (this.buffered === 0) {
      this.clear();
      return;
    }
    while (n > 0) {
      const chunk = this.chunks[this.head]!;
      const left = chunk.length - this.offset;
      if (n < left) {
        this.offset += n;
        return;
      }
      n -= left;
      this.head++;
      this.offset = 0;
    }
    if (this.head > 32 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  private clear(): void {
    this.chunks = [];
    this.head = 0;
    this.offset = 0;
    this.buffered = 0;
    this.scanned = 0;
    this.scannedBytes = 0;
  }
}
