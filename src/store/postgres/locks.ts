/** LockStore shared by every node of the database (table locks); see types.ts LockStore. */
import type { LockStore } from '../types.js';
import type { Db } from './db.js';

export class PgLocks implements LockStore {
  constructor(private readonly db: Db) {}

  async acquire(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const rows = await this.db.query(
      `INSERT INTO locks (name, owner, until) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
       WHERE locks.owner = excluded.owner OR locks.until <= $4
       RETURNING 1 AS one`,
      [name, owner, now + ttlMs, now],
    );
    return rows.length > 0;
  }

  async release(name: string, owner: string): Promise<void> {
    await this.db.query('DELETE FROM locks WHERE name = $1 AND owner = $2', [name, owner]);
  }
}
