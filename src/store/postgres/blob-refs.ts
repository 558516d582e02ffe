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

/**
 * Drops `count` references per hash; returns the hashes no longer referenced at all. Set-based:
 * a handful of statements whatever the number of blobs (emptying a Trash of 30,000 messages).
 */
export async function releaseBlobRefs(tx: Queryable, counts: Map<string, number>): Promise<string[]> {
  if (counts.size === 0) return [];
  const hashes = [...counts.keys()].sort();
  // Locked first, in hash order (as every writer of these rows locks them): a concurrent
  // addBlobRefs waits, so the counts read are the counts changed, and no two releases deadlock.
  const rows = await tx.query<{ hash: string; refcount: number }>(
    'SELECT hash, refcount FROM blob_refs WHERE hash = ANY($1::text[]) ORDER BY hash FOR UPDATE',
    [hashes],
  );
  const unreferenced: string[] = [];
  const decremented: string[] = [];
  const by: number[] = [];
  for (const row of rows) {
    const count = counts.get(row.hash)!;
    if (row.refcount > count) {
      decremented.push(row.hash);
      by.push(count);
    } else unreferenced.push(row.hash);
  }
  if (unreferenced.length > 0) {
    await tx.query('DELETE FROM blob_refs WHERE hash = ANY($1::text[])', [unreferenced]);
    await tx.query('DELETE FROM blob_objects WHERE hash = ANY($1::text[])', [unreferenced]);
    await tx.query('DELETE FROM blob_meta WHERE hash = ANY($1::text[])', [unreferenced]);
  }
  if (decremented.length > 0) {
    await tx.query(
      `UPDATE blob_refs r SET refcount = r.refcount - d.n FROM unnest($1::text[], $2::integer[]) AS d(hash, n) WHERE r.hash = d.hash`,
      [decremented, by],
    );
  }
  return unreferenced;
}
