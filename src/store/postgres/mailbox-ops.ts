/** Placeholder: being written (issue 8). */
import type { EventBus } from '../types.js';
import type { PgBlobStore } from './blob-store.js';
import type { Db } from './db.js';

export class PgMailboxOps {
  constructor(
    readonly db: Db,
    readonly blobs: PgBlobStore,
    readonly events: EventBus,
  ) {}
}
