/**
 * Runs async tasks one at a time, in submission order. The SQLite store runs every operation
 * that both moves blob files and changes blob_refs in this lane (delivery flushes, account and
 * domain removal), so a flush can never dedupe against a blob file that a removal is deleting.
 *
 * Across processes the lane cannot help: a CLI removing the last reference to a blob while the
 * server dedupes a new delivery of the very same bytes against that file could delete it under
 * the server. Identical bytes in two deliveries are near impossible in practice (each spooled
 * message carries its own Received line), so this is accepted rather than locked against.
 *
 * Invariant: a failing task does not stop the lane; its error goes to its own caller only.
 */
export class SerialLane {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T> | T): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves once every task submitted so far has settled. */
  async idle(): Promise<void> {
    await this.run(() => undefined);
  }
}
