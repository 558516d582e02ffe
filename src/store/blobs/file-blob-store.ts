/**
 * Message bytes as files, content-addressed by SHA-256: `<data>/blobs/ab/<hash>` where `ab` is
 * the hash's first two hex digits (256 folders, created at open). Bytes are first staged in
 * `<data>/blobs/tmp/<random>.tmp`, then moved into place by `persist`.
 *
 * Invariants
 * - A file under a fan-out folder is complete and fsynced, and so is its directory entry:
 *   `persist` renames staged files in and fsyncs each touched folder before it resolves.
 * - The same bytes are stored once: when the final file exists, `persist` drops the staged copy.
 * - A writer holds at most SPILL_THRESHOLD bytes in memory; past that, every chunk goes to its
 *   temporary file as it arrives. A message that fits the buffer costs one write + one fsync.
 * - Files in `tmp/` untouched for STALE_TMP_MS are crash leftovers and are deleted at open. Younger
 *   ones are kept: another process (the CLI, a second server) may be writing them right now.
 * - Ranges are half-open: `open(hash, { start, end })` streams bytes start..end-1.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { InvalidInput, NotFound } from '../../util/errors.js';
import type { BlobStore, BlobWriter, StagedBlob } from '../types.js';

/** Bytes a writer buffers in memory before it spills to its temporary file. */
export const SPILL_THRESHOLD = 256 * 1024;
/** Age after which a file in `tmp/` cannot belong to a live writer (SMTP's data timeout is 10 min). */
export const STALE_TMP_MS = 60 * 60 * 1000;

const HASH = /^[0-9a-f]{64}$/;
const FILE_MODE = 0o600;

export class FileBlobStore implements BlobStore {
  readonly root: string;
  readonly tmpDir: string;

  private constructor(
    root: string,
    readonly inlineLimit: number,
  ) {
    this.root = root;
    this.tmpDir = join(root, 'tmp');
  }

  /** Opens (creating when needed) the store under `<dataDir>/blobs`. */
  static async openAt(dataDir: string, options: { staleTmpMs?: number; inlineLimit?: number } = {}): Promise<FileBlobStore> {
    const store = new FileBlobStore(join(dataDir, 'blobs'), Math.min(options.inlineLimit ?? 0, SPILL_THRESHOLD));
    await mkdir(store.tmpDir, { recursive: true });
    await Promise.all(
      Array.from({ length: 256 }, (_, i) => mkdir(join(store.root, i.toString(16).padStart(2, '0')), { recursive: true })),
    );
    await Promise.all([fsyncDir(store.root), fsyncDir(dataDir)]);
    await store.removeStaleTemps(options.staleTmpMs ?? STALE_TMP_MS);
    return store;
  }

  /** Path of a blob's final file; validates the hash so no caller can escape the folder. */
  pathOf(hash: string): string {
    if (!HASH.test(hash)) throw new InvalidInput(`"${hash}" is not a SHA-256 hex digest`);
    return join(this.root, hash.slice(0, 2), hash);
  }

  async createWriter(): Promise<BlobWriter> {
    return new FileBlobWriter(this.tmpDir, this.inlineLimit);
  }

  async persist(blobs: StagedBlob[]): Promise<void> {
    const unique = new Map<string, StagedBlob & { stagingPath: string }>();
    for (const b of blobs) if (b.stagingPath !== null) unique.set(b.stagingPath, b as StagedBlob & { stagingPath: string });
    const folders = new Set<string>();
    // allSettled: when one blob fails, the others still finish (and get their folder fsynced),
    // so no operation of this call is in flight when the caller retries.
    const results = await Promise.allSettled(
      [...unique.values()].map(async (blob) => {
        this.checkStaged(blob);
        const target = this.pathOf(blob.hash);
        if (await fileExists(target)) {
          // Dedupe; also the idempotent case of a blob persisted before.
          await unlinkIfPresent(blob.stagingPath);
        } else {
          try {
            await rename(blob.stagingPath, target);
          } catch (e) {
            throw new NotFound(`staged blob ${blob.stagingPath} is gone: ${(e as Error).message}`);
          }
        }
        // Even on dedupe: an earlier, interrupted call may have renamed it without the fsync.
        folders.add(join(this.root, blob.hash.slice(0, 2)));
      }),
    );
    await Promise.all([...folders].map(fsyncDir));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
  }

  async discard(blob: StagedBlob): Promise<void> {
    if (blob.stagingPath === null) return;
    this.checkStaged(blob as StagedBlob & { stagingPath: string });
    await unlinkIfPresent(blob.stagingPath);
  }

  private checkStaged(blob: StagedBlob & { stagingPath: string }): void {
    if (dirname(blob.stagingPath) !== this.tmpDir) {
      throw new InvalidInput(`${blob.stagingPath} is not a staged blob of this store`);
    }
  }

  open(hash: string, range?: { start: number; end?: number }): Readable {
    const path = this.pathOf(hash);
    const start = range?.start ?? 0;
    const end = range?.end;
    if (start < 0 || (end !== undefined && end < start)) {
      throw new InvalidInput(`bad byte range ${start}..${end ?? ''}`);
    }
    return Readable.from(readFile(path, hash, start, end), { objectMode: false });
  }

  async exists(hash: string): Promise<boolean> {
    return fileExists(this.pathOf(hash));
  }

  /** Deletes the blob's file; absent is not an error. Callers ensure nothing references it. */
  async remove(hash: string): Promise<void> {
    await unlinkIfPresent(this.pathOf(hash));
  }

  /** Hashes of the stored files last modified more than `minAgeMs` ago. */
  async *listOlderThan(minAgeMs: number): AsyncGenerator<string> {
    const now = Date.now();
    for (let i = 0; i < 256; i++) {
      const dir = join(this.root, i.toString(16).padStart(2, '0'));
      for (const name of await readdir(dir)) {
        if (!HASH.test(name)) continue;
        try {
          if (now - (await stat(join(dir, name))).mtimeMs >= minAgeMs) yield name;
        } catch (e) {
          if (!isMissing(e)) throw e;
        }
      }
    }
  }

  private async removeStaleTemps(maxAgeMs: number): Promise<void> {
    const now = Date.now();
    for (const name of await readdir(this.tmpDir)) {
      const path = join(this.tmpDir, name);
      try {
        if (now - (await stat(path)).mtimeMs >= maxAgeMs) await unlink(path);
      } catch (e) {
        if (!isMissing(e)) throw e;
      }
    }
  }
}

async function* readFile(path: string, hash: string, start: number, end: number | undefined): AsyncGenerator<Buffer> {
  if (end === start) return;
  let handle: FileHandle;
  try {
    handle = await open(path, fsConstants.O_RDONLY);
  } catch (e) {
    if (isMissing(e)) throw new NotFound(`blob ${hash} does not exist`);
    throw e;
  }
  // createReadStream's `end` is inclusive; ours is exclusive. The stream closes the handle.
  const stream = handle.createReadStream({ start, end: end === undefined ? undefined : end - 1 });
  yield* stream as AsyncIterable<Buffer>;
}

/** Hashes and counts as bytes arrive; small bodies stay in memory until finish(). */
class FileBlobWriter implements BlobWriter {
  private readonly hash: Hash = createHash('sha256');
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private handle: FileHandle | null = null;
  /** Serializes file operations so chunks land in call order even if a caller forgets to await. */
  private tail: Promise<void> = Promise.resolve();
  private state: 'open' | 'finished' | 'aborted' = 'open';
  private written = 0;

  /** The temporary file, named when the body first spills out of memory. */
  private path: string | null = null;

  constructor(
    private readonly tmpDir: string,
    private readonly inlineLimit: number,
  ) {}

  private openFile(): Promise<FileHandle> {
    this.path = join(this.tmpDir, `${randomBytes(12).toString('hex')}.tmp`);
    return open(this.path, 'wx', FILE_MODE);
  }

  get bytesWritten(): number {
    return this.written;
  }

  write(chunk: Buffer): Promise<void> {
    if (this.state !== 'open') return Promise.reject(new InvalidInput(`blob writer is ${this.state}`));
    this.hash.update(chunk);
    this.written += chunk.length;
    if (this.handle === null && this.bufferedBytes + chunk.length <= SPILL_THRESHOLD) {
      // Copied: the caller may reuse its buffer, and a slice could pin a larger socket buffer.
      this.buffered.push(Buffer.from(chunk));
      this.bufferedBytes += chunk.length;
      return this.tail;
    }
    return this.enqueue(async () => {
      if (this.handle === null) {
        this.handle = await this.openFile();
        await writeAll(this.handle, this.takeBuffered());
      }
      await writeAll(this.handle, chunk);
    });
  }

  async finish(): Promise<StagedBlob> {
    if (this.state !== 'open') throw new InvalidInput(`blob writer is ${this.state}`);
    this.state = 'finished';
    if (this.handle === null && this.path === null && this.written <= this.inlineLimit) {
      await this.tail;
      return { hash: this.hash.digest('hex'), size: this.written, stagingPath: null, inline: this.takeBuffered() };
    }
    await this.enqueue(async () => {
      if (this.handle === null) {
        this.handle = await this.openFile();
        await writeAll(this.handle, this.takeBuffered());
      }
      await this.handle.sync();
      await this.handle.close();
      this.handle = null;
    }).catch(async (e: unknown) => {
      await this.cleanup();
      throw e;
    });
    return { hash: this.hash.digest('hex'), size: this.written, stagingPath: this.path, inline: null };
  }

  async abort(): Promise<void> {
    if (this.state === 'aborted') return;
    this.state = 'aborted';
    await this.tail.catch(() => undefined);
    await this.cleanup();
  }

  private async cleanup(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    this.buffered = [];
    this.bufferedBytes = 0;
    await handle?.close().catch(() => undefined);
    if (this.path !== null) await unlinkIfPresent(this.path);
  }

  private takeBuffered(): Buffer {
    const parts = this.buffered;
    this.buffered = [];
    this.bufferedBytes = 0;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  private enqueue(op: () => Promise<void>): Promise<void> {
    const next = this.tail.then(op);
    // A failed write poisons the writer: later operations see the same error.
    this.tail = next;
    return next;
  }
}

async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (isMissing(e)) return false;
    throw e;
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if (!isMissing(e)) throw e;
  }
}

function isMissing(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}
