/**
 * The IMAP command framer: splits the client's byte stream into commands, each a list of
 * segments (the text between literals, and the literals), without parsing them.
 *
 * Purpose: the one place that knows where an IMAP command ends. IMAP commands are lines, except
 * that a line ending in a literal announcement (`{n}`, `{n+}`, `~{n}`, `~{n+}`) continues after
 * n octets of literal data. The framer finds those boundaries; `imap/parser.ts` turns the
 * segments into a typed command; the session decides what to do with each literal (hold it in
 * memory, stream it to a spool file, or refuse it) and when to send the "+ " continuation.
 *
 * Usage: `push(chunk)` whenever bytes arrive, then call `next()` until it returns null. After a
 * `literal` event the framer is paused (next() returns null) until the session calls
 * `acceptLiteral('buffer' | 'stream')` or `rejectLiteral()`. While paused, input pushed is only
 * queued: the session should stop reading the socket (`pendingBytes` tells how much is queued).
 *
 * Invariants
 * - Pure and resumable: no I/O, no timers. Feeding the same bytes in any split yields the same
 *   events (literal-chunk events aside, whose boundaries follow the pushes).
 * - A command's segments alternate text, literal, text, ..., text: they start and end with a
 *   text segment (possibly empty). Text segments hold neither the CRLF nor the literal
 *   announcement that ended their line; the literal segment that follows stands for it.
 * - `push` and `next` never throw, whatever the input. `acceptLiteral`/`rejectLiteral` throw only
 *   when called out of turn or against the limits (programming errors of the session).
 * - A command that fails (an `error` event) is dropped whole: no `command` event follows for it,
 *   and the framer discards its remaining bytes itself, including any non-synchronizing literals
 *   announced after the failure, then returns to the start of a command. A synchronizing
 *   literal announced on a failed line ends the command: no "+ " goes out, so the client sends
 *   nothing more of it.
 * - `rejectLiteral()` of a synchronizing literal ends the command with no event (the session
 *   answers at once). Of a non-synchronizing one, the framer skips the literal and the rest of
 *   the command, then emits `error` with reason `literal-rejected`, the cue for the session's
 *   answer (rfc7888 4). No other path emits `literal-rejected`.
 * - After a `bad-literal` error (a size too large for a number), a non-synchronizing literal's
 *   octets cannot be skipped: the framer goes back to the start of a command, and the session
 *   should close the connection when `pendingBytes` or further errors show it is out of step.
 *
 * Security: the input is untrusted and unauthenticated. Memory held by the framer is bounded by
 * the limits, whatever is fed: a text line never grows past `maxLineLength` (+2 for CRLF) before
 * it is refused and discarded by scanning; one command's in-memory text and buffered literals
 * never exceed `maxCommandBytes`; its segment count never exceeds `maxSegments`; a literal in
 * stream mode passes through as the slices that were pushed, never accumulated. Only the input
 * queue (what the caller pushed and has not been consumed yet) is the caller's to bound.
 *
 * Tolerated deviations: a bare LF ends a line like CRLF (Dovecot does the same; some clients and
 * test tools send bare LF). A bare CR inside a line is refused (`bare-cr`).
 *
 * Standards: rfc3501 2.2 and 4.3 (commands, literals), rfc9051 2.2.1 and 4.3, rfc7888
 * (LITERAL+ / LITERAL-: `{n+}`), rfc3516 4.2 (literal8 `~{n}`).
 */

export type Segment =
  /** Command text between literals (no CRLF, no literal announcement). */
  | { kind: 'text'; bytes: Buffer }
  /** A literal held in memory. */
  | { kind: 'literal'; bytes: Buffer; binary: boolean }
  /** A literal the session streamed elsewhere (via literal-chunk events). */
  | { kind: 'streamed'; id: number; size: number; binary: boolean };

export interface LiteralAnnouncement {
  /** Unique per framer; literal-chunk / literal-end events and the streamed segment carry it. */
  id: number;
  size: number;
  /** true for `{n}` (the client waits for "+ "); false for `{n+}` (rfc7888: the data follows). */
  sync: boolean;
  /** true for literal8 `~{n}` (rfc3516): the data may contain NUL. */
  binary: boolean;
  /** The command's tag, when the text so far starts with a valid one. */
  tag: string | null;
  /** Upper-cased command name from the text so far, with its 'UID ' prefix (e.g. 'UID FETCH'). */
  command: string | null;
  /**
   * Whether `acceptLiteral('buffer')` may be used: size ≤ maxLiteralInMemory and the command's
   * in-memory total stays ≤ maxCommandBytes. Otherwise stream it or reject it.
   */
  bufferable: boolean;
}

export type FramerErrorReason = 'line-too-long' | 'command-too-long' | 'bad-literal' | 'literal-rejected' | 'bare-cr';

export type FramerEvent =
  | { type: 'command'; segments: Segment[] }
  /** The framer pauses until the session calls acceptLiteral or rejectLiteral. */
  | { type: 'literal'; literal: LiteralAnnouncement }
  /** Only after acceptLiteral('stream'). */
  | { type: 'literal-chunk'; id: number; chunk: Buffer }
  /** Only after acceptLiteral('stream'). */
  | { type: 'literal-end'; id: number }
  | { type: 'error'; tag: string | null; reason: FramerErrorReason; message: string };

export interface FramerLimits {
  /** Longest text line, CRLF excluded. */
  maxLineLength: number;
  /** Largest in-memory size of one command: its text plus its buffered literals. */
  maxCommandBytes: number;
  /** Largest literal that acceptLiteral('buffer') takes. */
  maxLiteralInMemory: number;
  /** Most segments in one command (default 1000): bounds the per-segment overhead. */
  maxSegments?: number;
}

const LF = 0x0a;
const CR = 0x0d;
/** Bytes kept from the end of a discarded line, enough to recognise a literal announcement. */
const TAIL_BYTES = 64;
/** Longest digit run accepted in a literal announcement (leading zeros included). */
const MAX_LITERAL_DIGITS = 20;

type Mode =
  | { kind: 'line' }
  | { kind: 'paused'; literal: LiteralAnnouncement }
  | { kind: 'literal-buffer'; id: number; size: number; binary: boolean; remaining: number; parts: Buffer[] }
  | { kind: 'literal-stream'; id: number; size: number; binary: boolean; remaining: number }
  /** Dropping the current command: skipping `remaining` literal octets. */
  | { kind: 'discard-literal'; remaining: number }
  /** Dropping the current command: skipping a text line, keeping only its tail. */
  | { kind: 'discard-line' };

type Announcement = { size: number; sync: boolean; binary: boolean; length: number } | { bad: true; sync: boolean };

/**
 * Recognise a literal announcement at the very end of a line (rfc9051 4.3: `"{" number64 ["+"]
 * "}"`; rfc3516: `"~{" number64 ["+"] "}"`). Returns null when the line does not end in one.
 */
function announcementAtEnd(line: Buffer): Announcement | null {
  let end = line.length - 1;
  if (end < 2 || line[end] !== 0x7d /* } */) return null;
  end--;
  const sync = line[end] !== 0x2b; /* + */
  if (!sync) end--;
  let start = end;
  while (start >= 0 && line[start]! >= 0x30 && line[start]! <= 0x39) start--;
  const digits = end - start;
  if (digits === 0 || start < 0 || line[start] !== 0x7b /* { */) return null;
  if (digits > MAX_LITERAL_DIGITS) return { bad: true, sync };
  const size = Number(line.toString('latin1', start + 1, end + 1));
  if (!Number.isSafeInteger(size)) return { bad: true, sync };
  const binary = start > 0 && line[start - 1] === 0x7e; /* ~ */
  return { size, sync, binary, length: line.length - start + (binary ? 1 : 0) };
}

/** rfc9051 9: tag = 1*<any ASTRING-CHAR except "+">. */
function isTagChar(c: number): boolean {
  return c > 0x20 && c < 0x7f && c !== 0x28 && c !== 0x29 && c !== 0x7b && c !== 0x25 && c !== 0x2a && c !== 0x22 && c !== 0x5c && c !== 0x2b;
}

/**
 * The tag and command name at the start of a command's first text, as far as they are complete:
 * the tag only when a space follows it, the command name only when a space or the end follows.
 */
export function peekTagAndCommand(text: Buffer): { tag: string | null; command: string | null } {
  let i = 0;
  while (i < text.length && isTagChar(text[i]!)) i++;
  if (i === 0 || text[i] !== 0x20) return { tag: null, command: null };
  const tag = text.toString('latin1', 0, i);
  const word = (from: number): [string, number] | null => {
    let j = from;
    while (j < text.length && text[j]! > 0x20 && text[j]! < 0x7f && text[j] !== 0x28 && text[j] !== 0x7b) j++;
    if (j === from || (j < text.length && text[j] !== 0x20)) return null;
    return [text.toString('latin1', from, j).toUpperCase(), j];
  };
  const first = word(i + 1);
  if (first === null) return { tag, command: null };
  if (first[0] === 'UID' && text[first[1]] === 0x20) {
    const second = word(first[1] + 1);
    if (second !== null) return { tag, command: `UID ${second[0]}` };
  }
  return { tag, command: first[0] };
}

/** The first `n` bytes of a list of pieces (copied). */
function prefixOf(pieces: Buffer[], n: number): Buffer {
  const out: Buffer[] = [];
  let left = n;
  for (const p of pieces) {
    if (left <= 0) break;
    out.push(p.length <= left ? p : p.subarray(0, left));
    left -= p.length;
  }
  return Buffer.concat(out);
}

/** The last `n` bytes of a list of pieces (copied, so a large input chunk is not retained). */
function suffixOf(pieces: Buffer[], n: number): Buffer {
  const out: Buffer[] = [];
  let left = n;
  for (let i = pieces.length - 1; i >= 0 && left > 0; i--) {
    const p = pieces[i]!;
    out.unshift(p.length <= left ? p : p.subarray(p.length - left));
    left -= p.length;
  }
  return Buffer.concat(out);
}

export class CommandFramer {
  private readonly maxLineLength: number;
  private readonly maxCommandBytes: number;
  private readonly maxLiteralInMemory: number;
  private readonly maxSegments: number;

  /** Pushed input not consumed yet; `queue[0]` starts at `queueOffset`. */
  private queue: Buffer[] = [];
  private queueOffset = 0;
  private queueBytes = 0;

  /** The text line being collected (mode 'line'). */
  private line: Buffer[] = [];
  private lineBytes = 0;
  /** The last bytes of the line being discarded (mode 'discard-line'). */
  private tail: Buffer = Buffer.alloc(0);

  /** The command being assembled. */
  private segments: Segment[] = [];
  private commandBytes = 0;
  private firstText: Buffer | null = null;

  private mode: Mode = { kind: 'line' };
  /** A non-synchronizing literal of this command was rejected: report it when the command ends. */
  private rejected = false;
  private readonly out: FramerEvent[] = [];
  private nextLiteralId = 1;

  constructor(limits: FramerLimits) {
    this.maxLineLength = limits.maxLineLength;
    this.maxCommandBytes = limits.maxCommandBytes;
    this.maxLiteralInMemory = limits.maxLiteralInMemory;
    this.maxSegments = limits.maxSegments ?? 1000;
  }

  /** Bytes held: queued input, the line being collected, and the command's text and literals. */
  get pendingBytes(): number {
    let literal = 0;
    if (this.mode.kind === 'literal-buffer') literal = this.mode.size - this.mode.remaining;
    return this.queueBytes - this.queueOffset + this.lineBytes + this.commandBytes + literal + this.tail.length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.queue.push(chunk);
    this.queueBytes += chunk.length;
  }

  next(): FramerEvent | null {
    for (;;) {
      const event = this.out.shift();
      if (event !== undefined) return event;
      if (!this.step()) return null;
    }
  }

  /** Take the pending literal: into memory ('buffer') or as literal-chunk events ('stream'). */
  acceptLiteral(mode: 'buffer' | 'stream'): void {
    if (this.mode.kind !== 'paused') throw new Error('acceptLiteral: no literal announcement is pending');
    const { id, size, binary } = this.mode.literal;
    if (mode === 'stream') {
      this.mode = { kind: 'literal-stream', id, size, binary, remaining: size };
      return;
    }
    if (size > this.maxLiteralInMemory) {
      throw new Error(`acceptLiteral('buffer'): ${size} octets exceed maxLiteralInMemory (${this.maxLiteralInMemory})`);
    }
    if (this.commandBytes + size > this.maxCommandBytes) {
      // The session did not check `bufferable`. The client will send the octets (a "+ " may
      // have gone out already), so skip them, and the rest of the command, instead of holding them.
      this.fail('command-too-long', `Command too long (limit ${this.maxCommandBytes} bytes)`);
      this.mode = { kind: 'discard-literal', remaining: size };
      return;
    }
    this.mode = { kind: 'literal-buffer', id, size, binary, remaining: size, parts: [] };
  }

  /**
   * Refuse the pending literal. Synchronizing: the client will not send it, so the command ends
   * here (no event). Non-synchronizing: its octets and the rest of the command (with any further
   * literals) are skipped without buffering. The session sends the tagged reply either way.
   */
  rejectLiteral(): void {
    if (this.mode.kind !== 'paused') throw new Error('rejectLiteral: no literal announcement is pending');
    const { size, sync } = this.mode.literal;
    if (sync) {
      this.resetCommand();
      return;
    }
    this.rejected = true;
    this.segments = [];
    this.commandBytes = 0;
    this.mode = { kind: 'discard-literal', remaining: size };
  }

  /**
   * Take every byte pushed but not yet framed (and reset to the start of a command): for
   * COMPRESS (rfc4978 3), where what follows the command must go through the inflater first.
   */
  takeRemaining(): Buffer {
    const parts = this.mode.kind === 'line' ? [...this.line] : [];
    const front = this.queue[0];
    if (front !== undefined) parts.push(front.subarray(this.queueOffset), ...this.queue.slice(1));
    this.queue = [];
    this.queueOffset = 0;
    this.queueBytes = 0;
    this.line = [];
    this.lineBytes = 0;
    this.rejected = false;
    this.resetCommand();
    return Buffer.concat(parts);
  }

  // --- internals ------------------------------------------------------------------------------

  /** Advance by one unit of work; false when blocked (more input needed, or paused). */
  private step(): boolean {
    const mode = this.mode;
    switch (mode.kind) {
      case 'paused':
        return false;
      case 'line':
        return this.stepLine();
      case 'discard-line':
        return this.stepDiscardLine();
      case 'literal-buffer': {
        if (mode.remaining > 0) {
          const piece = this.take(mode.remaining);
          if (piece === null) return false;
          mode.parts.push(piece);
          mode.remaining -= piece.length;
          if (mode.remaining > 0) return true;
        }
        // Copied (concat always copies), so a small literal does not pin a large input chunk.
        const bytes = Buffer.concat(mode.parts, mode.size);
        this.segments.push({ kind: 'literal', bytes, binary: mode.binary });
        this.commandBytes += mode.size;
        this.mode = { kind: 'line' };
        return true;
      }
      case 'literal-stream': {
        if (mode.remaining > 0) {
          const piece = this.take(mode.remaining);
          if (piece === null) return false;
          mode.remaining -= piece.length;
          this.out.push({ type: 'literal-chunk', id: mode.id, chunk: piece });
          return true;
        }
        this.out.push({ type: 'literal-end', id: mode.id });
        this.segments.push({ kind: 'streamed', id: mode.id, size: mode.size, binary: mode.binary });
        this.mode = { kind: 'line' };
        return true;
      }
      case 'discard-literal': {
        if (mode.remaining > 0) {
          const piece = this.take(mode.remaining);
          if (piece === null) return false;
          mode.remaining -= piece.length;
          if (mode.remaining > 0) return true;
        }
        this.tail = Buffer.alloc(0);
        this.mode = { kind: 'discard-line' };
        return true;
      }
    }
  }

  /** Take up to `max` bytes from the queue (a slice, not a copy), or null when it is empty. */
  private take(max: number): Buffer | null {
    const front = this.queue[0];
    if (front === undefined) return null;
    const available = front.length - this.queueOffset;
    if (available <= max) {
      const piece = this.queueOffset === 0 ? front : front.subarray(this.queueOffset);
      this.dropFront();
      return piece;
    }
    const piece = front.subarray(this.queueOffset, this.queueOffset + max);
    this.queueOffset += max;
    return piece;
  }

  private dropFront(): void {
    const front = this.queue.shift();
    if (front !== undefined) this.queueBytes -= front.length;
    this.queueOffset = 0;
  }

  /** Take the bytes up to the next LF (LF consumed, not returned); `found` false if none queued. */
  private takeToLf(): { piece: Buffer; found: boolean } | null {
    const front = this.queue[0];
    if (front === undefined) return null;
    const lf = front.indexOf(LF, this.queueOffset);
    if (lf < 0) {
      const piece = front.subarray(this.queueOffset);
      this.dropFront();
      return { piece, found: false };
    }
    const piece = front.subarray(this.queueOffset, lf);
    this.queueOffset = lf + 1;
    if (this.queueOffset === front.length) this.dropFront();
    return { piece, found: true };
  }

  private stepLine(): boolean {
    const got = this.takeToLf();
    if (got === null) return false;
    this.line.push(got.piece);
    this.lineBytes += got.piece.length;
    if (!got.found) {
      // +1: the last byte may be the CR of a CRLF still to come.
      if (this.lineBytes > this.maxLineLength + 1) {
        this.failLineTooLong(prefixOf(this.line, this.maxLineLength));
        this.tail = suffixOf(this.line, TAIL_BYTES);
        this.line = [];
        this.lineBytes = 0;
        this.mode = { kind: 'discard-line' };
      }
      return true;
    }
    const pieces = this.line;
    const total = this.lineBytes;
    this.line = [];
    this.lineBytes = 0;
    // rfc9051 2.2: lines end in CRLF; a bare LF is tolerated as a line end.
    const last = suffixOf(pieces, 1);
    const length = last[0] === CR ? total - 1 : total;
    if (length > this.maxLineLength) {
      // Checked before joining the pieces: the last one may be a large input chunk.
      this.failLineTooLong(prefixOf(pieces, this.maxLineLength));
      this.endDroppedLine(suffixOf(pieces, TAIL_BYTES).subarray(0, length === total ? undefined : -1));
      return true;
    }
    const joined = Buffer.concat(pieces, total); // a copy: the text must not pin the input chunk
    const line = joined.subarray(0, length);
    if (line.includes(CR)) {
      this.fail('bare-cr', 'CR not followed by LF', line);
      this.endDroppedLine(line);
      return true;
    }
    this.endLine(line);
    return true;
  }

  private stepDiscardLine(): boolean {
    const got = this.takeToLf();
    if (got === null) return false;
    this.tail = suffixOf([this.tail, got.piece], TAIL_BYTES);
    if (!got.found) return true;
    let line = this.tail;
    this.tail = Buffer.alloc(0);
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    this.endDroppedLine(line);
    return true;
  }

  /** A complete line of a live command. */
  private endLine(line: Buffer): void {
    const ann = announcementAtEnd(line);
    if (ann === null) {
      if (this.commandBytes + line.length > this.maxCommandBytes) {
        this.fail('command-too-long', `Command too long (limit ${this.maxCommandBytes} bytes)`, line);
        this.resetCommand();
        return;
      }
      this.segments.push({ kind: 'text', bytes: line });
      const segments = this.segments;
      this.resetCommand();
      this.out.push({ type: 'command', segments });
      return;
    }
    if ('bad' in ann) {
      this.fail('bad-literal', 'Invalid literal size', line);
      this.resetCommand();
      return;
    }
    const text = line.subarray(0, line.length - ann.length);
    if (this.firstText === null) this.firstText = text;
    if (this.commandBytes + text.length > this.maxCommandBytes || this.segments.length + 3 > this.maxSegments) {
      const what = this.segments.length + 3 > this.maxSegments ? `${this.maxSegments} segments` : `${this.maxCommandBytes} bytes`;
      this.fail('command-too-long', `Command too long (limit ${what})`, text);
      this.dropAfterAnnouncement(ann.sync, ann.size);
      return;
    }
    this.segments.push({ kind: 'text', bytes: text });
    this.commandBytes += text.length;
    const { tag, command } = peekTagAndCommand(this.firstText);
    const bufferable = ann.size <= this.maxLiteralInMemory && this.commandBytes + ann.size <= this.maxCommandBytes;
    const literal: LiteralAnnouncement = { id: this.nextLiteralId++, size: ann.size, sync: ann.sync, binary: ann.binary, tag, command, bufferable };
    this.mode = { kind: 'paused', literal };
    this.out.push({ type: 'literal', literal });
  }

  /** The end of a line of a command already failed: skip any literal it announces, and go on. */
  private endDroppedLine(line: Buffer): void {
    const ann = announcementAtEnd(line);
    if (ann === null || 'bad' in ann) {
      this.resetCommand();
      return;
    }
    this.dropAfterAnnouncement(ann.sync, ann.size);
  }

  /**
   * The command has failed at a literal announcement. A synchronizing literal will not be sent
   * (no "+ " goes out), so the command ends; a non-synchronizing one is on its way and is skipped.
   */
  private dropAfterAnnouncement(sync: boolean, size: number): void {
    if (sync) this.resetCommand();
    else this.mode = { kind: 'discard-literal', remaining: size };
  }

  /** `start` is the first maxLineLength bytes of the line (for the tag, if it is the first line). */
  private failLineTooLong(start: Buffer): void {
    this.fail('line-too-long', `Line too long (limit ${this.maxLineLength} bytes)`, start);
  }

  /** Queue an error event for the current command; `line` is the current line (its first, if so). */
  private fail(reason: FramerErrorReason, message: string, line?: Buffer): void {
    const first = this.firstText ?? line ?? null;
    const tag = first === null ? null : peekTagAndCommand(first).tag;
    this.out.push({ type: 'error', tag, reason, message });
    this.segments = [];
    this.commandBytes = 0;
  }

  private resetCommand(): void {
    if (this.rejected) {
      // rfc7888 4: the rejected non-synchronizing literal and the rest of its command are gone;
      // now the session may answer.
      this.rejected = false;
      const tag = this.firstText === null ? null : peekTagAndCommand(this.firstText).tag;
      this.out.push({ type: 'error', tag, reason: 'literal-rejected', message: 'Literal rejected' });
    }
    this.segments = [];
    this.commandBytes = 0;
    this.firstText = null;
    this.tail = Buffer.alloc(0);
    this.mode = { kind: 'line' };
  }
}
