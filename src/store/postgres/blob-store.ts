/**
 * Message bytes for the PostgreSQL store, in one of two places chosen in the config:
 * - `database`: every blob in blob_chunks (256 KB per row), so the nodes share nothing but the
 *   database. Blobs stream into a local staging file (small ones stay in memory); persist()
 *   copies a staged file into chunks, one chunk at a time, in a transaction of its own; small
 *   ones are written by the delivery's own transaction. The staging file stays until settle(), so
 *   the delivery can write the bytes again if another node released them meanwhile.
 * - a shared folder (every node mounts it): small blobs still go into the database with the
 *   delivery; larger ones are files there (FileBlobStore), placed by persist() before it.
 *
 * Invariants
 * - A blob's chunks and its blob_objects row are written in one transaction: a blob_objects row
 *   means the bytes are complete. Rows are never updated (content-addressed: same hash, same bytes).
 * - The writer of a reference takes the blob_refs row first (blob-refs.ts addBlobRefs) and only
 *   then checks for the bytes (ensureBlobBytes), so a concurrent release of the last reference on
 *   another node either finishes before (and the bytes are written again) or waits.
 * - No read or write holds more than a few chunks in memory, whatever the message size.
 * - Database bytes nothing references go with the last reference, in its transaction. Files of
 *   the shared folder are removed only by the orphan sweep, once unreferenced and an hour old
 *   (persist touches a deduplicated file), so no node deletes a file another is committing.
 */
import { createReadStream } from 'node:fs';
import { stat, utimes } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { FileBlobStore } from '../blobs/file-blob-store.js';
import { InvalidInput, NotFound } from '../../util/errors.js';
import type { BlobStore, BlobWriter, StagedBlob } from '../types.js';
import type { Db, Queryable } from './db.js';

export const CHUNK_SIZE = 256 * 1024;
/** Bodies up to this size are staged in memory and written by the delivery transaction. */
export const PG_INLINE_LIMIT = 64 * 1024;
const HASH = /^[0-9a-f]{64}$/;

export class PgBlobStore implements BlobStore {
  constructor(
    private readonly db: Db,
    /** Staging (both modes) and, in folder mode, the shared folder's files. */
    readonly files: FileBlobStore,
    readonly mode: 'database' | 'folder',
  ) {}

  get inlineLimit(): number {
    return this.files.inlineLimit;
  }

  createWriter(): Promise<BlobWriter> {
    return this.files.createWriter();
  }

  /**
   * Makes staged blobs durable and readable: database mode copies each staged file into chunks
   * (unless the bytes are there); folder mode places the files (touching deduplicated ones).
   * NotFound for a blob whose staging file is gone (discarded). Idempotent.
   */
  async persist(blobs: StagedBlob[]): Promise<void> {
    if (this.mode === 'database') {
      const seen = new Set<string>();
      for (const blob of blobs) {
        if (blob.stagingPath === null || seen.has(blob.stagingPath)) continue;
        seen.add(blob.stagingPath);
        if (!(await fileExists(blob.stagingPath))) throw new NotFound(`staged blob ${blob.stagingPath} is gone`);
        await this.db.tx((tx) => this.ensureBlobBytes(tx, blob));
      }
      return;
    }
    await this.files.persist(blobs);
    const now = new Date();
    for (const blob of blobs) {
      if (blob.stagingPath !== null) await utimes(this.files.pathOf(blob.hash), now, now).catch(() => {});
    }
  }

  async discard(blob: StagedBlob): Promise<void> {
    await this.files.discard(blob);
  }

  open(hash: string, range?: { start: number; end?: number }): Readable {
    if (!HASH.test(hash)) throw new InvalidInput(`"${hash}" is not a SHA-256 hex digest`);
    const start = range?.start ?? 0;
    const end = range?.end;
    if (start < 0 || (end !== undefined && end < start)) throw new InvalidInput(`bad byte range ${start}..${end}`);
    return Readable.from(this.read(hash, start, end), { objectMode: false });
  }

  async exists(hash: string): Promise<boolean> {
    if (await this.hasBytes(hash)) return true;
    return this.mode === 'folder' ? this.files.exists(hash) : false;
  }

  /** Removes the bytes (database rows and, in folder mode, the file). */
  async remove(hash: string): Promise<void> {
    await this.db.query('DELETE FROM blob_objects WHERE hash = $1', [hash]);
    if (this.mode === 'folder') await this.files.remove(hash);
  }

  private async hasBytes(hash: string): Promise<boolean> {
    return (await this.db.one('SELECT 1 AS one FROM blob_objects WHERE hash = $1', [hash])) !== undefined;
  }

  private async *read(hash: string, start: number, end: number | undefined): AsyncGenerator<Buffer> {
    const object = await this.db.one<{ size: number }>('SELECT size FROM blob_objects WHERE hash = $1', [hash]);
    if (!object) {
      if (this.mode === 'folder') {
        yield* this.files.open(hash, end === undefined ? { start } : { start, end }) as AsyncIterable<Buffer>;
        return;
      }
      throw new NotFound(`message bytes ${hash} are missing from the database`);
    }
    const stop = Math.min(end ?? object.size, object.size);
    // A few chunks per query: bounded memory, few round trips.
    for (let seq = Math.floor(start / CHUNK_SIZE); seq * CHUNK_SIZE < stop; seq += 4) {
      const rows = await this.db.query<{ seq: number; data: Buffer }>(
        'SELECT seq, data FROM blob_chunks WHERE hash = $1 AND seq >= $2 AND seq < $3 ORDER BY seq',
        [hash, seq, seq + 4],
      );
      for (const row of rows) {
        const base = row.seq * CHUNK_SIZE;
        const from = Math.max(0, start - base);
        const to = Math.min(row.data.length, stop - base);
        if (to > from) yield row.data.subarray(from, to);
      }
    }
  }

  /**
   * Makes a staged blob's bytes present in the database, in the caller's transaction, after the
   * caller took its blob_refs row (addBlobRefs): inline bytes always, a staged file in database
   * mode (folder mode placed it with persist). Nothing when the bytes are there already.
   */
  async ensureBlobBytes(tx: Queryable, blob: StagedBlob): Promise<void> {
    if (blob.inline === null && (this.mode === 'folder' || blob.stagingPath === null)) return;
    const claimed = await tx.query('INSERT INTO blob_objects (hash, size, created_at) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING RETURNING 1 AS one', [
      blob.hash,
      blob.size,
      Date.now(),
    ]);
    if (claimed.length === 0) return; // the same bytes are stored already
    if (blob.inline !== null) {
      for (let seq = 0; seq === 0 || seq * CHUNK_SIZE < blob.inline.length; seq++) {
        await tx.query('INSERT INTO blob_chunks (hash, seq, data) VALUES ($1, $2, $3)', [blob.hash, seq, blob.inline.subarray(seq * CHUNK_SIZE, (seq + 1) * CHUNK_SIZE)]);
      }
      return;
    }
    let seq = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async (): Promise<void> => {
      await tx.query('INSERT INTO blob_chunks (hash, seq, data) VALUES ($1, $2, $3)', [blob.hash, seq++, Buffer.concat(pending)]);
      pending = [];
      pendingBytes = 0;
    };
    for await (const chunk of createReadStream(blob.stagingPath!, { highWaterMark: CHUNK_SIZE }) as AsyncIterable<Buffer>) {
      let offset = 0;
      while (offset < chunk.length) {
        const take = Math.min(CHUNK_SIZE - pendingBytes, chunk.length - offset);
        pending.push(chunk.subarray(offset, offset + take));
        pendingBytes += take;
        offset += take;
        if (pendingBytes === CHUNK_SIZE) await flush();
      }
    }
    if (pendingBytes > 0 || seq === 0) await flush();
  }

  /** After the delivery committed (or failed): removes the local staging file, if any. */
  async settle(blob: StagedBlob): Promise<void> {
    if (this.mode === 'database') await this.files.discard(blob);
  }
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
