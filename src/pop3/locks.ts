/**
 * One POP3 session per maildrop (RFC 1939 8: the server should lock the maildrop). IMAP sessions
 * are not affected. The lock lives in this process: the PostgreSQL issue moves it into the store
 * so that it holds across nodes.
 */
export class MaildropLocks {
  private readonly held = new Set<number>();

  /** Takes the lock of an account's maildrop; returns its release function, or null when held. */
  acquire(accountId: number): (() => void) | null {
    if (this.held.has(accountId)) return null;
    this.held.add(accountId);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held.delete(accountId);
    };
  }
}
