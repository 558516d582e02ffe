/**
 * The in-process mailbox event bus: delivery publishes, IMAP IDLE/NOTIFY sessions subscribe per
 * account. Used with the SQLite store (one process serves the mailboxes).
 *
 * Invariants
 * - publish() never throws: a failing listener is reported as a process warning and the other
 *   listeners still run, so a broken IDLE session cannot fail the delivery that published.
 * - No limit on listeners per account: one per open IMAP connection is normal.
 */
import { EventEmitter } from 'node:events';
import type { EventBus, MailEvent } from './types.js';

export class MemoryEventBus implements EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  publish(event: MailEvent): void {
    this.emitter.emit(String(event.accountId), event);
  }

  subscribe(accountId: number, listener: (event: MailEvent) => void): () => void {
    const guarded = (event: MailEvent): void => {
      try {
        listener(event);
      } catch (e) {
        process.emitWarning(`mail event listener failed: ${(e as Error).stack ?? String(e)}`);
      }
    };
    const key = String(accountId);
    this.emitter.on(key, guarded);
    return () => {
      this.emitter.off(key, guarded);
    };
  }
}
