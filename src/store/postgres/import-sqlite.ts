/**
 * Copies a whole embedded site (the SQLite database and its message bytes) into an empty
 * PostgreSQL store: `fulmar migrate --to postgres://...`.
 *
 * Invariants
 * - Ids, UIDs, UIDVALIDITY, MODSEQs, flags, quotas, queue state and collector state are kept as
 *   they are, so IMAP clients see the same mailboxes (no resync) and POP3 clients the same UIDLs.
 * - The target must hold no domain yet: nothing is merged or overwritten.
 * - Tables are copied in batches inside one transaction, so a failure leaves the target empty;
 *   message bytes are streamed blob by blob (never a whole large message in memory).
 * - Afterwards every table's row count is compared; a difference is an error.
 */
import Database from 'better-sqlite3';
import type { StagedBlob, Store } from '../types.js';
import type { Queryable } from './db.js';
import type { PostgresStore } from './pg-store.js';

interface TableCopy {
  table: string;
  columns: string[];
  /** Columns stored as 0/1 in SQLite and boolean in PostgreSQL. */
  booleans?: string[];
  /** Identity column whose sequence must continue after the copied ids. */
  identity?: string;
}

/** In dependency order. messages.id is not copied (PostgreSQL numbers its rows itself). */
const TABLES: TableCopy[] = [
  { table: 'settings', columns: ['key', 'value'] },
  { table: 'counters', columns: ['name', 'value'] },
  { table: 'domains', columns: ['id', 'name', 'max_message_size', 'created_at'], identity: 'id' },
  {
    table: 'accounts',
    columns: ['id', 'address', 'local_part', 'domain_id', 'password_hash', 'quota_bytes', 'used_bytes', 'real_name', 'disabled', 'apop_secret', 'send_as', 'created_at'],
    booleans: ['disabled'],
    identity: 'id',
  },
  { table: 'aliases', columns: ['id', 'address', 'domain_id', 'target', 'created_at'], identity: 'id' },
  { table: 'dkim_keys', columns: ['domain_id', 'selector', 'algorithm', 'private_key_pem', 'public_key', 'created_at'] },
  { table: 'mailboxes', columns: ['id', 'account_id', 'name', 'special_use', 'uidvalidity', 'uidnext', 'highestmodseq'], identity: 'id' },
  { table: 'subscriptions', columns: ['account_id', 'name'] },
  { table: 'blob_refs', columns: ['hash', 'size', 'refcount'] },
  { table: 'blob_meta', columns: ['hash', 'envelope', 'structure', 'search'] },
  { table: 'messages', columns: ['mailbox_id', 'uid', 'modseq', 'blob_hash', 'blob_size', 'prefix', 'size', 'internal_date', 'flags'] },
  { table: 'expunged', columns: ['mailbox_id', 'uid', 'modseq'] },
  { table: 'message_search', columns: ['mailbox_id', 'uid', 'subject', 'from_addr', 'to_addr', 'cc_addr', 'bcc_addr'] },
  {
    table: 'queue_messages',
    columns: ['id', 'blob_hash', 'size', 'mail_from', 'env_id', 'ret', 'created_at', 'held', 'prefix'],
    booleans: ['held'],
    identity: 'id',
  },
  {
    table: 'queue_recipients',
    columns: ['id', 'queue_id', 'address', 'orcpt', 'notify', 'status', 'attempts', 'next_attempt_at', 'last_error', 'remote_mta', 'delay_warned'],
    booleans: ['delay_warned'],
    identity: 'id',
  },
  {
    table: 'collect_sources',
    columns: ['id', 'kind', 'name', 'account_id', 'config', 'enabled', 'created_at', 'last_run_at', 'last_ok_at', 'last_error', 'last_collected', 'total_collected'],
    booleans: ['enabled'],
    identity: 'id',
  },
  { table: 'collect_seen', columns: ['source_id', 'uidl', 'first_seen', 'state'] },
  { table: 'collect_dedupe', columns: ['source_id', 'key', 'recipient', 'uidl', 'seen_at'] },
];

const BATCH = 500;

export interface ImportProgress {
  (line: string): void;
}

export interface ImportReport {
  tables: Array<{ table: string; rows: number }>;
  blobs: number;
  blobBytes: number;
}

/**
 * Copies the SQLite database at `sqlitePath` (its bytes read through `source.blobs`) into
 * `target`. The source should not be written meanwhile (stop the server first).
 */
export async function importSqliteSite(sqlitePath: string, source: Store, target: PostgresStore, progress: ImportProgress): Promise<ImportReport> {
  const sqlite = new Database(sqlitePath, { readonly: true, fileMustExist: true });
  try {
    const existing = await target.db.one<{ n: number }>('SELECT count(*) AS n FROM domains');
    if ((existing?.n ?? 0) > 0) {
      throw new Error('the PostgreSQL database already holds domains; migrate into an empty database (or a new one: it is created on first use)');
    }
    const report: ImportReport = { tables: [], blobs: 0, blobBytes: 0 };
    await target.db.tx(async (tx) => {
      for (const copy of TABLES) {
        const rows = await copyTable(sqlite, tx, copy, progress);
        report.tables.push({ table: copy.table, rows });
      }
      const hashes = sqlite.prepare<[], { hash: string; size: number }>('SELECT hash, size FROM blob_refs ORDER BY hash').all();
      let done = 0;
      for (const { hash } of hashes) {
        const staged = await stageFrom(source, target, hash);
        report.blobBytes += staged.size;
        if (staged.hash !== hash) throw new Error(`message bytes ${hash} read back with hash ${staged.hash}: the source is damaged`);
        await target.blobs.persist([staged]);
        await target.blobs.ensureBlobBytes(tx, staged);
        await target.blobs.settle(staged);
        done++;
        if (done % 1000 === 0 || done === hashes.length) progress(`message bytes: ${done} of ${hashes.length} (${formatMb(report.blobBytes)})`);
      }
      report.blobs = done;
      await checkCounts(sqlite, tx, target.blobs.mode === 'database');
    });
    progress('row counts checked: every table matches');
    return report;
  } finally {
    sqlite.close();
  }
}

async function copyTable(sqlite: Database.Database, tx: Queryable, copy: TableCopy, progress: ImportProgress): Promise<number> {
  const total = sqlite.prepare<[], { n: number }>(`SELECT count(*) AS n FROM ${copy.table}`).get()!.n;
  const select = sqlite.prepare<[], Record<string, unknown>>(`SELECT ${copy.columns.join(', ')} FROM ${copy.table}`);
  let batch: unknown[][] = [];
  let copied = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const params: unknown[] = [];
    const tuples = batch.map((row) => `(${row.map((value) => `$${params.push(value)}`).join(', ')})`);
    await tx.query(`INSERT INTO ${copy.table} (${copy.columns.join(', ')}) VALUES ${tuples.join(', ')}`, params);
    copied += batch.length;
    batch = [];
    if (total >= 10 * BATCH && copied % (20 * BATCH) === 0) progress(`${copy.table}: ${copied} of ${total}`);
  };
  const booleans = new Set(copy.booleans ?? []);
  for (const row of select.iterate()) {
    batch.push(copy.columns.map((c) => (booleans.has(c) ? row[c] !== 0 : row[c])));
    if (batch.length >= BATCH) await flush();
  }
  await flush();
  if (copy.identity) {
    await tx.query(
      `SELECT setval(pg_get_serial_sequence('${copy.table}', '${copy.identity}'), greatest((SELECT max(${copy.identity}) FROM ${copy.table}), 1), (SELECT count(*) > 0 FROM ${copy.table}))`,
    );
  }
  if (copy.table === 'queue_messages') {
    // SQLite numbered queue entries from a counter past deleted ids: continue after it.
    const counter = sqlite.prepare<[], { value: number }>("SELECT value FROM counters WHERE name = 'queue_id'").get();
    if (counter) await tx.query(`SELECT setval(pg_get_serial_sequence('queue_messages', 'id'), $1, true)`, [counter.value]);
  }
  progress(`${copy.table}: ${copied} row(s)`);
  return copied;
}

async function stageFrom(source: Store, target: PostgresStore, hash: string): Promise<StagedBlob> {
  const writer = await target.blobs.createWriter();
  try {
    for await (const chunk of source.blobs.open(hash) as AsyncIterable<Buffer>) await writer.write(chunk);
    return await writer.finish();
  } catch (e) {
    await writer.abort().catch(() => {});
    throw e;
  }
}

async function checkCounts(sqlite: Database.Database, tx: Queryable, bytesInDatabase: boolean): Promise<void> {
  const differences: string[] = [];
  for (const { table } of TABLES) {
    const want = sqlite.prepare<[], { n: number }>(`SELECT count(*) AS n FROM ${table}`).get()!.n;
    const got = Number((await tx.one<{ n: number }>(`SELECT count(*) AS n FROM ${table}`))?.n ?? 0);
    if (want !== got) differences.push(`${table}: ${want} in SQLite, ${got} in PostgreSQL`);
  }
  const refs = sqlite.prepare<[], { n: number }>('SELECT count(*) AS n FROM blob_refs').get()!.n;
  const bytes = Number((await tx.one<{ n: number }>('SELECT count(*) AS n FROM blob_objects'))?.n ?? 0);
  if (bytesInDatabase && bytes < refs) differences.push(`message bytes: ${refs} referenced, ${bytes} stored in PostgreSQL`);
  if (differences.length > 0) throw new Error(`the copy does not match the source: ${differences.join('; ')}`);
}

function formatMb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
