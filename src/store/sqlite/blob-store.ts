/**
 * The embedded backend's BlobStore: small bodies inline in the database (table blob_data,
 * written by the delivery transaction itself), larger ones as files (FileBlobStore).
 *
 * Why: a 4 KB message stored as a file costs a file fsync and a folder fsync of its own, while
 * rows share one WAL fsync per group commit. Inline bodies make a delivery one fsync per batch.
 */
import type Database from 'better-sqlite3';
import { Readable } from 'node:stream';
import type { FileBlobStore } from '../blobs/file-blob-store.js';
import { InvalidInput } from '../../util/errors.js';
import type { BlobStore, BlobWriter, StagedBlob } from '../types.js';

/** Bodies up to this size are kept in the database. */
export const INLINE_LIMIT = 64 * 1024;

export class SqliteBlobStore implements BlobStore {
  private readonly readInline: Database.Statement<[string], { data: Buffer }>;
  private readonly hasInline: Database.Statement<[string], { one: number }>;

  constructor(
    db: Database.Database,
    readonly files: FileBlobStore,
  ) {
    this.readInline = db.prepare('SELECT data FROM blob_data WHERE hash = ?');
    this.hasInline = db.prepare('SELECT 1 AS one FROM blob_data WHERE hash = ?');
  }

  get inlineLimit(): number {
    return this.files.inlineLimit;
  }

  createWriter(): Promise<BlobWriter> {
    return this.files.createWriter();
  }

  persist(blobs: StagedBlob[]): Promise<void> {
    return this.files.persist(blobs);
  }

  discard(blob: StagedBlob): Promise<void> {
    return this.files.discard(blob);
  }

  /** The bytes of a blob kept in the database, or null when it is a file. */
  inlineBytes(hash: string): Buffer | null {
    return this.readInline.get(hash)?.data ?? null;
  }

  open(hash: string, range?: { start: number; end?: number }): Readable {
    const row = this.readInline.get(hash);
    if (!row) return this.files.open(hash, range);
    const start = range?.start ?? 0;
    const end = range?.end ?? row.data.length;
    if (start < 0 || end < start) throw new InvalidInput(`bad byte range ${start}..${end}`);
    return Readable.from([row.data.subarray(start, end)], { objectMode: false });
  }

  async exists(hash: string): Promise<boolean> {
    return this.hasInline.get(hash) !== undefined || this.files.exists(hash);
  }

  /** Removes the file form; the inline form goes with its last reference, in the same transaction. */
  remove(hash: string): Promise<void> {
    return this.files.remove(hash);
  }
}
