/**
 * The folder form of a DomainPOP archive (`--archive /folder`): a raw copy of every downloaded
 * message, byte-identical to what RETR returned, one file per message. The folder is the
 * administrator's, outside the data folder and the store (an export, like a maildir another
 * program reads), which is why this module writes files itself rather than through store/.
 *
 * Invariants: a copy is written to a temporary name, fsynced, then renamed and the folder
 * fsynced, so a file in the folder is always whole; its name comes from the source and the UIDL.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { CollectSource } from '../store/types.js';

export interface ArchiveFile {
  handle: FileHandle;
  /** Puts the copy in place under a name made of the source and the UIDL (so a copy made twice is one file). */
  commit(key: string, source: CollectSource): Promise<void>;
  discard(): Promise<void>;
}

/** A raw copy written to a temporary name, fsynced and renamed into the archive folder. */
export async function openArchiveFile(folder: string): Promise<ArchiveFile> {
  await mkdir(folder, { recursive: true });
  const temp = join(folder, `.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const handle = await open(temp, 'w', 0o640);
  let done = false;
  return {
    handle,
    async commit(key, source) {
      if (done) return;
      done = true;
      await handle.sync();
      await handle.close();
      const name = `${source.kind}-${source.id}-${createHash('sha256').update(key).digest('hex').slice(0, 32)}.eml`;
      await rename(temp, join(folder, name));
      const dir = await open(folder, 'r');
      await dir.sync().finally(() => dir.close());
    },
    async discard() {
      if (done) return;
      done = true;
      await handle.close().catch(() => {});
      await unlink(temp).catch(() => {});
    },
  };
}
