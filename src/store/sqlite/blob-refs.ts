/**
 * Reference counts of message blobs (table blob_refs): one reference per mailbox message and one
 * per outbound queue entry. A row exists only while its count is positive; the blob's inline
 * bytes (blob_data) and cached meta (blob_meta) go in the same statement group as its last row.
 *
 * Invariants
 * - Call inside a write transaction. The caller deletes the files of the hashes `release`
 *   returns after that transaction commits, never before (a rollback would leave rows pointing
 *   at a deleted file). A crash between commit and deletion leaves an orphan file: harmless,
 *   as nothing references it.
 */
import type Database from 'better-sqlite3';
import type { BlobStore } from '../types.js';

export class BlobRefs {
  private readonly addStmt;
  private readonly decrementStmt;
  private readonly deleteStmt;
  private readonly existsStmt;
  private readonly addInlineStmt;
  private readonly deleteInlineStmt;
  private readonly deleteMetaStmt;

  constructor(db: Database.Database) {
    this.addStmt = db.prepare<[string, number, number]>(
      `INSERT INTO blob_refs (hash, size, refcount) VALUES (?, ?, ?)
       ON CONFLICT (hash) DO UPDATE SET refcount = refcount + excluded.refcount`,
    );
    this.decrementStmt = db.prepare<[number, string, number]>(
      'UPDATE blob_refs SET refcount = refcount - ? WHERE hash = ? AND refcount > ?',
    );
    this.deleteStmt = db.prepare<[string]>('DELETE FROM blob_refs WHERE hash = ?');
    this.existsStmt = db.prepare<[string], { one: number }>('SELECT 1 AS one FROM blob_refs WHERE hash = ?');
    this.addInlineStmt = db.prepare<[string, Buffer]>('INSERT OR IGNORE INTO blob_data (hash, data) VALUES (?, ?)');
    this.deleteInlineStmt = db.prepare<[string]>('DELETE FROM blob_data WHERE hash = ?');
    this.deleteMetaStmt = db.prepare<[string]>('DELETE FROM blob_meta WHERE hash = ?');
  }

  /** Adds references; `inline` bytes are stored with them when the body is kept in the database. */
  add(hash: string, size: number, count: number, inline: Buffer | null = null): void {
    if (count <= 0) return;
    this.addStmt.run(hash, size, count);
    if (inline !== null) this.addInlineStmt.run(hash, inline);
  }

  /** Drops `count` references per hash; returns the hashes no longer referenced at all. */
  release(counts: Map<string, number>): string[] {
    const unreferenced: string[] = [];
    for (const [hash, count] of counts) {
      if (this.decrementStmt.run(count, hash, count).changes > 0) continue;
      // The count would reach zero (CHECK refcount > 0 forbids storing it): the row goes.
      if (this.deleteStmt.run(hash).changes > 0) {
        this.deleteInlineStmt.run(hash);
        this.deleteMetaStmt.run(hash);
        unreferenced.push(hash);
      }
    }
    return unreferenced;
  }

  isReferenced(hash: string): boolean {
    return this.existsStmt.get(hash) !== undefined;
  }
}

/** Deletes unreferenced blob files; a failure only leaves an orphan file, so it is not raised. */
export async function removeBlobFiles(blobs: BlobStore, hashes: Iterable<string>): Promise<void> {
  await Promise.allSettled([...hashes].map((hash) => blobs.remove(hash)));
}
