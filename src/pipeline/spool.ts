/**
 * The spool: streams one message body into a blob, with the trace header first, counting the
 * size and keeping the header section (bounded) for the filters. Bytes past the size limit are
 * counted but not stored, so an oversized message costs no disk and no memory.
 */
import type { BlobMeta, BlobStore, BlobWriter, StagedBlob } from '../store/types.js';
import { MessageMetaBuilder } from './message-meta.js';

export interface SpoolLimits {
  /** Body bytes (without the trace header) allowed; Infinity for none. */
  maxSize: number;
  /** Largest header section kept and allowed. */
  maxHeaderSize: number;
}

export type SpoolResult =
  | { ok: true; blob: StagedBlob; size: number; header: Buffer; meta: BlobMeta }
  | { ok: false; reason: 'too-big' | 'header-too-big'; size: number };

const CRLFCRLF = Buffer.from('\r\n\r\n');

export class SpoolWriter {
  private size = 0;
  private tooBig = false;
  private headerDone = false;
  private headerTooBig = false;
  private readonly headerChunks: Buffer[] = [];
  private headerBytes = 0;
  /** The envelope and MIME structure, parsed as the bytes pass (cached for IMAP). */
  private readonly meta = new MessageMetaBuilder();
  private constructor(
    private readonly writer: BlobWriter,
    private readonly limits: SpoolLimits,
  ) {}

  static async open(blobs: BlobStore, traceHeaders: string, limits: SpoolLimits): Promise<SpoolWriter> {
    const writer = await blobs.createWriter();
    const spool = new SpoolWriter(writer, limits);
    if (traceHeaders.length > 0) {
      const trace = Buffer.from(traceHeaders, 'utf8');
      spool.meta.write(trace);
      await writer.write(trace);
    }
    return spool;
  }

  get bytes(): number {
    return this.size;
  }

  get overLimit(): boolean {
    return this.tooBig || this.headerTooBig;
  }

  async write(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return;
    this.size += chunk.length;
    if (!this.headerDone) this.trackHeader(chunk);
    if (this.overLimit) return;
    if (this.size > this.limits.maxSize) {
      this.tooBig = true;
      return;
    }
    this.meta.write(chunk);
    await this.writer.write(chunk);
  }

  private trackHeader(chunk: Buffer): void {
    const room = this.limits.maxHeaderSize - this.headerBytes;
    const part = chunk.subarray(0, Math.max(0, Math.min(chunk.length, room + 3)));
    this.headerChunks.push(part);
    this.headerBytes += part.length;
    // The header ends at the first empty line; a body that starts with CRLF has no header.
    const joined = this.headerChunks.length === 1 ? this.headerChunks[0]! : Buffer.concat(this.headerChunks);
    this.headerChunks.length = 0;
    this.headerChunks.push(joined);
    const end = joined.subarray(0, 2).equals(CRLFCRLF.subarray(0, 2)) ? 0 : joined.indexOf(CRLFCRLF);
    if (end >= 0) {
      this.headerDone = true;
      this.headerChunks[0] = joined.subarray(0, end === 0 ? 0 : end + 2);
      this.headerBytes = this.headerChunks[0].length;
      if (this.headerBytes > this.limits.maxHeaderSize) this.headerTooBig = true;
    } else if (this.headerBytes > this.limits.maxHeaderSize) {
      this.headerDone = true;
      this.headerTooBig = true;
    }
  }

  async finish(): Promise<SpoolResult> {
    if (this.overLimit) {
      await this.writer.abort();
      return { ok: false, reason: this.headerTooBig ? 'header-too-big' : 'too-big', size: this.size };
    }
    const blob = await this.writer.finish();
    const header = this.headerDone ? (this.headerChunks[0] ?? Buffer.alloc(0)) : Buffer.concat(this.headerChunks);
    return { ok: true, blob, size: this.size, header, meta: this.meta.finish() };
  }

  async abort(): Promise<void> {
    await this.writer.abort();
  }
}
