/**
 * Reference counts of message blobs (table blob_refs): one per mailbox message and one per
 * outbound queue entry; the same model as store/sqlite/blob-refs.ts. Call inside a transaction.
 *
 * Invariants
 * - addBlobRefs comes before ensureBlobBytes (blob-store.ts): its upsert locks the row, which
 *   orders it with a concurrent release of the last reference (see blob-store.ts).
 * - When the count would reach zero the row goes, and with it the blob's database bytes and its
 *   cached meta, in the same transaction.
 */
import type { Queryable } from './db.js';

export async function addBlobRefs(tx: Queryable, hash: string, size: number, count: number): Promise<void> {
  if (count <= 0) return;
  await tx.query(
    `INSERT INTO blob_refs (hash, size, refcount) VALUES ($1, $2, $3)
     ON CONFLICT (hash) DO UPDATE SET refcount = blob_refs.refcount + excluded.refcount`,
    [hash, size, count],
  );
}

/** Drops `count` references per hash; returns the hashes no longer referenced at all. */
export async function releaseBlobRefs(tx: Queryable, counts: Map<string, number>): Promise<string[]> {
  const unreferenced: string[] = [];
  // Sorted, so two transactions releasing the same blobs lock them in one order (no deadlock).
  for (const [hash, count] of [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    // Locked first: a concurrent addBlobRefs waits, so the count read is the count changed.
    const row = await tx.one<{ refcount: number }>('SELECT refcount FROM blob_refs WHERE hash = $1 FOR UPDATE', [hash]);
    if (!row) continue;
    if (row.refcount > count) {
      await tx.query('UPDATE blob_refs SET refcount = refcount - $1 WHERE hash = $2', [count, hash]);
    } else {
      await tx.query('DELETE FROM blob_refs WHERE hash = $1', [hash]);
      await tx.query('DELETE FROM blob_objects WHERE hash = $1', [hash]);
      await tx.query('DELETE FROM blob_meta WHERE hash = $1', [hash]);
      unreferenced.push(hash);
    }
  }
  return unreferenced;
}
