/**
 * LockStore inside one process: what the embedded (SQLite) store uses, since one server process
 * serves its mailboxes. Expiry is kept, so the behaviour matches the shared (PostgreSQL) locks.
 */
import type { LockStore } from './types.js';

export class MemoryLocks implements LockStore {
  private readonly held = new Map<string, { owner: string; until: number }>();

  async acquire(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const current = this.held.get(name);
    if (current && current.owner !== owner && current.until > now) return false;
    this.held.set(name, { owner, until: now + ttlMs });
    return true;
  }

  async release(name: string, owner: string): Promise<void> {
    if (this.held.get(name)?.owner === owner) this.held.delete(name);
  }
}
