/**
 * One POP3 session per maildrop (RFC 1939 8: the server should lock the maildrop), across every
 * node that shares the store (LockStore). IMAP sessions are not affected. A held lock is renewed
 * while the session lasts; a node that dies frees its locks when they expire (LOCK_TTL_MS).
 */
import { randomUUID } from 'node:crypto';
import type { LockStore } from '../store/types.js';

const LOCK_TTL_MS = 120_000;

export class MaildropLocks {
  private readonly node = randomUUID();
  private sessions = 0;

  constructor(
    private readonly locks: LockStore,
    private readonly ttlMs = LOCK_TTL_MS,
  ) {}

  /** Takes the lock of an account's maildrop; resolves to its release function, or null when held. */
  async acquire(accountId: number): Promise<(() => void) | null> {
    const name = `pop3:${accountId}`;
    const owner = `${this.node}/${++this.sessions}`;
    if (!(await this.locks.acquire(name, owner, this.ttlMs))) return null;
    const renew = setInterval(() => {
      this.locks.acquire(name, owner, this.ttlMs).catch(() => {});
    }, this.ttlMs / 3);
    renew.unref();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      clearInterval(renew);
      this.locks.release(name, owner).catch(() => {});
    };
  }
}
