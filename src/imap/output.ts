/**
 * The response side of an IMAP connection: batches small response lines into large writes,
 * streams literals with backpressure, and compresses when COMPRESS=DEFLATE is active.
 *
 * Invariants
 * - Bytes leave in the order they were given: text, buffers and streams never overtake each
 *   other.
 * - `flush()` sends everything batched so far (and, with compression, ends the deflate block
 *   with a sync flush so the client can decode it, rfc4978 4). Sessions flush after each
 *   command's responses, so a client never waits on a batched line.
 * - Memory is bounded: a batch is written once it passes BATCH_BYTES, and streams wait for the
 *   socket to drain.
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { constants as zlib, createDeflateRaw, type DeflateRaw } from 'node:zlib';

const BATCH_BYTES = 64 * 1024;

export class ImapOutput {
  private batch: string[] = [];
  private batchBytes = 0;
  private deflate: DeflateRaw | null = null;

  constructor(private socket: Socket) {}

  /** The socket changed (STARTTLS). */
  replaceSocket(socket: Socket): void {
    this.socket = socket;
  }

  get compressed(): boolean {
    return this.deflate !== null;
  }

  get alive(): boolean {
    return !this.socket.destroyed && this.socket.writable;
  }

  /** Everything written from now on is deflated (rfc4978). Call after the tagged OK was flushed. */
  startCompression(): void {
    const deflate = createDeflateRaw({ level: 6, windowBits: 15, memLevel: 8 });
    deflate.on('data', (chunk: Buffer) => {
      if (this.alive && !this.socket.write(chunk)) {
        // The socket is full: stop deflating (so the deflate stream backs up too) until it drains.
        deflate.pause();
        this.socket.once('drain', () => deflate.resume());
      }
    });
    deflate.on('error', () => this.socket.destroy());
    this.deflate = deflate;
  }

  /** Adds text (usually whole CRLF-ended lines) to the batch. */
  text(s: string): void {
    this.batch.push(s);
    this.batchBytes += s.length;
    if (this.batchBytes >= BATCH_BYTES) this.writeBatch();
  }

  /** Adds text and waits for the socket when the batch went out and the socket is full. */
  async textAsync(s: string): Promise<void> {
    this.text(s);
    if (this.batchBytes === 0) await this.drained();
  }

  /** Waits only when the socket is full: call between chunks of a long response. */
  async settle(): Promise<void> {
    if (this.socket.writableNeedDrain || this.deflate?.writableNeedDrain) await this.drained();
  }

  async bytes(b: Buffer): Promise<void> {
    this.writeBatch();
    if (!this.write(b)) await this.drained();
  }

  /** Streams bytes (a literal's body), with backpressure. */
  async stream(source: Readable): Promise<number> {
    this.writeBatch();
    let sent = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (!this.alive) {
        source.destroy();
        break;
      }
      sent += chunk.length;
      if (!this.write(chunk)) await this.drained();
    }
    return sent;
  }

  async flush(): Promise<void> {
    this.writeBatch();
    if (this.deflate) await new Promise<void>((resolve) => this.deflate!.flush(zlib.Z_SYNC_FLUSH, () => resolve()));
    if (this.socket.writableNeedDrain) await this.drained();
  }

  /** Writes the batch and then `last`, then ends the socket. */
  end(last?: string): void {
    if (last) this.text(last);
    this.writeBatch();
    if (this.deflate) {
      this.deflate.flush(zlib.Z_SYNC_FLUSH, () => this.socket.end());
      return;
    }
    this.socket.end();
  }

  private writeBatch(): void {
    if (this.batch.length === 0) return;
    const data = this.batch.length === 1 ? this.batch[0]! : this.batch.join('');
    this.batch = [];
    this.batchBytes = 0;
    this.write(Buffer.from(data, 'utf8'));
  }

  private write(data: Buffer): boolean {
    if (!this.alive) return true;
    if (this.deflate) return this.deflate.write(data);
    return this.socket.write(data);
  }

  private drained(): Promise<void> {
    const target = this.deflate ?? this.socket;
    if (!this.alive) return Promise.resolve();
    if (this.deflate ? !this.deflate.writableNeedDrain && !this.socket.writableNeedDrain : !this.socket.writableNeedDrain) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = (): void => {
        target.off('drain', done);
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      if (this.deflate?.writableNeedDrain) target.once('drain', done);
      else this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }
}
