/**
 * The SQLite schema as an ordered list of migrations. `schema_version` holds one row per applied
 * step; `migrate` applies the missing ones in order, each in its own IMMEDIATE transaction.
 *
 * Invariants
 * - Never edit a released step: append a new one. Step N is MIGRATIONS[N - 1].
 * - Several processes may open the database at once (server + CLI): each step re-reads the
 *   version inside its write transaction, so a step is applied exactly once.
 * - Timestamps are integer milliseconds since the epoch; booleans are 0/1; message flags are a
 *   JSON array of strings.
 */
import type Database from 'better-sqlite3';
import { TemporaryFailure } from '../../util/errors.js';

export const MIGRATIONS: readonly string[] = [
  // 1: directory, mailboxes, messages, blob references, outbound queue, settings.
  `
  CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;

  -- Named monotonic counters (the UIDVALIDITY clock).
  CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE domains (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    max_message_size INTEGER,
    created_at       INTEGER NOT NULL
  );

  CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    address       TEXT NOT NULL UNIQUE,
    local_part    TEXT NOT NULL,
    domain_id     INTEGER NOT NULL REFERENCES domains(id),
    password_hash TEXT NOT NULL,
    quota_bytes   INTEGER,
    used_bytes    INTEGER NOT NULL DEFAULT 0,
    real_name     TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
  );
  CREATE INDEX accounts_domain ON accounts(domain_id);

  -- One row per (alias, target); address is 'local@domain' or '@domain' (catch-all).
  CREATE TABLE aliases (
    id         INTEGER PRIMARY KEY,
    address    TEXT NOT NULL,
    domain_id  INTEGER NOT NULL REFERENCES domains(id),
    target     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (address, target)
  );
  CREATE INDEX aliases_domain ON aliases(domain_id);

  CREATE TABLE mailboxes (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    special_use   TEXT,
    uidvalidity   INTEGER NOT NULL,
    uidnext       INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    subscribed    INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
  );

  CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid           INTEGER NOT NULL,
    modseq        INTEGER NOT NULL,
    blob_hash     TEXT NOT NULL,
    blob_size     INTEGER NOT NULL,
    prefix        BLOB NOT NULL,
    size          INTEGER NOT NULL,
    internal_date INTEGER NOT NULL,
    flags         TEXT NOT NULL DEFAULT '[]',
    UNIQUE (mailbox_id, uid)
  );

  CREATE TABLE blob_refs (
    hash     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    refcount INTEGER NOT NULL CHECK (refcount > 0)
  ) WITHOUT ROWID;

  CREATE TABLE queue_messages (
    id         INTEGER PRIMARY KEY,
    blob_hash  TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mail_from  TEXT NOT NULL,
    env_id     TEXT,
    ret        TEXT CHECK (ret IN ('FULL', 'HDRS')),
    created_at INTEGER NOT NULL
  );

  CREATE TABLE queue_recipients (
    id              INTEGER PRIMARY KEY,
    queue_id        INTEGER NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
    address         TEXT NOT NULL,
    orcpt           TEXT,
    notify          TEXT,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'deferred', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT
  );
  CREATE INDEX queue_recipients_queue ON queue_recipients(queue_id);
  CREATE INDEX queue_recipients_due ON queue_recipients(status, next_attempt_at);
  `,
  // 2: small message bodies live in the database instead of in files: they become durable with
  // the delivery's own transaction (one WAL fsync per batch), with no file or folder fsync.
  `
  CREATE TABLE blob_data (
    hash TEXT PRIMARY KEY,
    data BLOB NOT NULL
  );
  `,
  // 3: the per-account APOP secret (POP3); null = APOP off for the account.
  `
  ALTER TABLE accounts ADD COLUMN apop_secret TEXT;
  `,
  // 4: IMAP. Subscriptions become names of their own (RFC 3501 6.3.6: kept when the mailbox
  // goes); parsed-once blob meta (ENVELOPE, BODYSTRUCTURE), removed with the blob's last
  // reference; expunge tombstones for QRESYNC VANISHED. messages_imap holds what a session
  // reads in bulk (UIDs, MODSEQ, size, flags) in one contiguous run per mailbox, so the UID
  // map, STATUS counts, FETCH FLAGS and CHANGEDSINCE never touch the table rows (a mailbox's
  // rows are scattered among every other mailbox's deliveries).
  `
  CREATE TABLE subscriptions (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
  ) WITHOUT ROWID;
  INSERT INTO subscriptions (account_id, name) SELECT account_id, name FROM mailboxes WHERE subscribed = 1;
  ALTER TABLE mailboxes DROP COLUMN subscribed;

  CREATE TABLE blob_meta (
    hash      TEXT PRIMARY KEY,
    envelope  TEXT NOT NULL,
    structure TEXT NOT NULL
  );

  CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
  ) WITHOUT ROWID;

  CREATE INDEX messages_imap ON messages(mailbox_id, uid, modseq, size, flags);
  `,
  // 5: outbound delivery. Queue leases (a worker owns a message until lease_until, ms; another
  // may take it over after that), held messages, per-recipient Remote-MTA and delay warning;
  // the due index covers only recipients still waiting, so claiming and the scheduler's sleep
  // read it in next_attempt_at order. DKIM keys per domain; extra sender addresses per account.
  `
  ALTER TABLE queue_messages ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE queue_messages ADD COLUMN lease_owner TEXT;
  ALTER TABLE queue_messages ADD COLUMN lease_until INTEGER;
  ALTER TABLE queue_recipients ADD COLUMN remote_mta TEXT;
  ALTER TABLE queue_recipients ADD COLUMN delay_warned INTEGER NOT NULL DEFAULT 0;
  DROP INDEX queue_recipients_due;
  CREATE INDEX queue_recipients_waiting ON queue_recipients(next_attempt_at, queue_id)
    WHERE status IN ('queued', 'deferred');

  CREATE TABLE dkim_keys (
    domain_id       INTEGER PRIMARY KEY REFERENCES domains(id) ON DELETE CASCADE,
    selector        TEXT NOT NULL,
    algorithm       TEXT NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
    private_key_pem TEXT NOT NULL,
    public_key      TEXT NOT NULL,
    created_at      INTEGER NOT NULL
  );

  ALTER TABLE accounts ADD COLUMN send_as TEXT NOT NULL DEFAULT '[]';
  `,
  // 6: header SEARCH without loading messages. blob_meta.search is the JSON of the decoded,
  // lower-cased SUBJECT / FROM / TO / CC / BCC text (BlobMeta.search); message_search holds it
  // per message, clustered by (mailbox_id, uid), so SEARCH SUBJECT is one range scan matched
  // with instr() (search-rows.ts). Existing messages are indexed after the migration, in JS (the
  // store does not parse messages in SQL): see backfillSearchRows.
  `
  ALTER TABLE blob_meta ADD COLUMN search TEXT;

  CREATE TABLE message_search (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid        INTEGER NOT NULL,
    subject    TEXT,
    from_addr  TEXT,
    to_addr    TEXT,
    cc_addr    TEXT,
    bcc_addr   TEXT,
    PRIMARY KEY (mailbox_id, uid)
  ) WITHOUT ROWID;
  `,
  // 7: POP3 collectors (DomainPOP, MultiPOP). collect_seen is the set of remote UIDLs dealt
  // with, written in the delivery's own transaction (exactly once); collect_dedupe the
  // (Message-ID, recipient) pairs delivered, kept while their message is on the server.
  // queue_messages.prefix: header lines sent before the blob (a collected message's Received).
  `
  CREATE TABLE collect_sources (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('domainpop', 'multipop')),
    name            TEXT NOT NULL,
    account_id      INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    config          TEXT NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    run_owner       TEXT,
    run_until       INTEGER,
    last_run_at     INTEGER,
    last_ok_at      INTEGER,
    last_error      TEXT,
    last_collected  INTEGER NOT NULL DEFAULT 0,
    total_collected INTEGER NOT NULL DEFAULT 0,
    UNIQUE (kind, name)
  );

  CREATE TABLE collect_seen (
    source_id  INTEGER NOT NULL REFERENCES collect_sources(id) ON DELETE CASCADE,
    uidl       TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('collected', 'large')),
    PRIMARY KEY (source_id, uidl)
  ) WITHOUT ROWID;

  CREATE TABLE collect_dedupe (
    source_id INTEGER NOT NULL REFERENCES collect_sources(id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    recipient TEXT NOT NULL,
    uidl      TEXT NOT NULL,
    seen_at   INTEGER NOT NULL,
    PRIMARY KEY (source_id, key, recipient)
  ) WITHOUT ROWID;

  ALTER TABLE queue_messages ADD COLUMN prefix BLOB;
  `,
];

/** Brings the database to the latest schema; returns the resulting version. */
export function migrate(db: Database.Database): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
  )`);
  const current = db.prepare<[], { v: number | null }>('SELECT max(version) AS v FROM schema_version');
  const record = db.prepare<[number, number]>('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)');
  const version = (): number => current.get()?.v ?? 0;

  const found = version();
  if (found > MIGRATIONS.length) {
    throw new TemporaryFailure(
      `database schema version ${found} is newer than this Fulmar (${MIGRATIONS.length}); upgrade Fulmar`,
    );
  }
  for (let step = found + 1; step <= MIGRATIONS.length; step++) {
    db.transaction(() => {
      if (version() >= step) return; // another process applied it meanwhile
      db.exec(MIGRATIONS[step - 1]!);
      record.run(step, Date.now());
    }).immediate();
  }
  return version();
}
