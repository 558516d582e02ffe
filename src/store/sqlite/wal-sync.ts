/**
 * Makes committed WAL frames durable without blocking the event loop.
 *
 * Delivery transactions commit with synchronous=NORMAL (SQLite writes the WAL but does not
 * fsync it), then call sync(), which fsyncs the WAL file on libuv's thread pool. fsync(2)
 * flushes the file, whatever descriptor names it, so once sync() resolves every frame committed
 * before the call is on disk: the same guarantee synchronous=FULL gives, while the main thread
 * goes on serving sessions. A checkpoint in between is safe: SQLite syncs the WAL before and the
 * database after every checkpoint, in any synchronous mode.
 *
 * Calls that arrive while an fsync runs share the next one (group commit): at most one fsync is
 * in flight and at most one waits.
 */
import { open } from 'node:fs/promises';

export class WalSync {
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;

  constructor(private readonly walPath: string) {}

  /** Resolves once everything committed before this call is durable. */
  sync(): Promise<void> {
    if (this.queued) return this.queued;
    if (!this.running) return this.start();
    // The running fsync may have started before our commit: wait for it, then run a new one.
    this.queued = this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return this.start();
      });
    return this.queued;
  }

  private start(): Promise<void> {
    const run = fsyncFile(this.walPath).finally(() => {
      if (this.running === run) this.running = null;
    });
    this.running = run;
    return run;
  }
}

async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
