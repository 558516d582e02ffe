/**
 * The store's interfaces: the only way anything above `store/` reaches persistent data.
 *
 * Invariants
 * - Every method is asynchronous, although the SQLite adapter is synchronous underneath:
 *   the PostgreSQL adapter must fit behind the same surface.
 * - `MailStore.commitDelivery` is the one write on the ingest path. When its promise resolves,
 *   the message bytes and every row that references them are on disk (fsynced); concurrent
 *   commits share fsyncs (group commit). It is designed not to fail once recipients were
 *   accepted: quotas are checked before, not inside, the commit.
 * - Addresses are stored and looked up lower-cased (the domain always; the local part too,
 *   as every mail server people run does in practice).
 * - Message bytes live once in the BlobStore, content-addressed by SHA-256; each mailbox
 *   message row references its blob and adds its own per-delivery header lines (`prefix`:
 *   Return-Path, Delivered-To, X-Rcpt-To). The message a client reads is prefix + blob.
 */
import type { Readable } from 'node:stream';

export type SpecialUse = '\\Sent' | '\\Drafts' | '\\Trash' | '\\Junk' | '\\Archive';

export interface Domain {
  id: number;
  name: string;
  /** Per-domain message size limit in bytes; null = only the global limit applies. */
  maxMessageSize: number | null;
  createdAt: Date;
}

export interface Account {
  id: number;
  /** Full lower-cased address, `local@domain`. */
  address: string;
  localPart: string;
  domain: string;
  passwordHash: string;
  /** Quota in bytes; null = unlimited. */
  quotaBytes: number | null;
  /** Bytes used by all messages in all the account's mailboxes. */
  usedBytes: number;
  realName: string | null;
  disabled: boolean;
  /** Extra sender addresses allowed at submission (see DirectoryStore.setSendAs). */
  sendAs: string[];
  createdAt: Date;
}

/** A DKIM signing key (RFC 6376), stored per domain. */
export interface DkimKey {
  selector: string;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  /** The p= value of the DNS TXT record (base64 of the public key as RFC 6376/8463 want it). */
  publicKey: string;
  createdAt: Date;
}

export interface NewAccount {
  address: string;
  passwordHash: string;
  quotaBytes: number | null;
  realName?: string | null;
}

export interface NewMailbox {
  name: string;
  specialUse: SpecialUse | null;
}

/** An alias: `address` is `local@domain`, or `@domain` for a catch-all. Targets may be local or remote. */
export interface Alias {
  address: string;
  targets: string[];
}

export interface Mailbox {
  id: number;
  accountId: number;
  /** Full name with `/` as hierarchy delimiter; `INBOX` is always spelled so. */
  name: string;
  specialUse: SpecialUse | null;
  uidValidity: number;
  uidNext: number;
  highestModSeq: number;
  subscribed: boolean;
  messageCount: number;
}

export interface MessageRecord {
  id: number;
  mailboxId: number;
  uid: number;
  modSeq: number;
  blobHash: string;
  blobSize: number;
  /** Per-delivery header lines placed before the blob (CRLF line ends). */
  prefix: Buffer;
  /** prefix.length + blobSize: the RFC822.SIZE clients see. */
  size: number;
  internalDate: Date;
  /** System flags (`\Seen`, ...) and keywords, in the order they were set. */
  flags: string[];
}

/** The part of a message row that FETCH FLAGS, STORE and CONDSTORE need. */
export interface MessageFlags {
  uid: number;
  modSeq: number;
  flags: string[];
}

/**
 * Parsed-once facts about a blob (the same for every delivery of it), cached as JSON written by
 * `message/`: the store keeps them opaque. Offsets inside are relative to the blob, not to the
 * per-delivery prefix.
 */
export interface BlobMeta {
  /** JSON of the message's envelope (what IMAP ENVELOPE and header SEARCH keys read). */
  envelope: string;
  /** JSON of the MIME structure with byte offsets (BODYSTRUCTURE, BODY[section]). */
  structure: string;
  /**
   * JSON of the text IMAP SEARCH matches its SUBJECT, FROM, TO, CC and BCC keys on: an object
   * `{ subject, from, to, cc, bcc }` (SearchFields), each the decoded (encoded words decoded),
   * lower-cased field, or null when the message has no such field. The store keeps one row of
   * these per message (searchHeaderField). Absent in meta cached before it existed.
   */
  search?: string;
}

/** What BlobMeta.search holds (its JSON); null = the message has no such field. */
export interface SearchFields {
  subject: string | null;
  /** Addresses as `display name <mailbox@host>`, names decoded, joined with ", ". */
  from: string | null;
  to: string | null;
  cc: string | null;
  bcc: string | null;
}

/** The header fields MailStore.searchHeaderField answers for. */
export type SearchField = keyof SearchFields;

/**
 * Computes meta for messages a store holds without `search` text (stored before it existed, or
 * committed without meta), so its backfill can index them: the store does not parse messages
 * itself (the layer that does lends it this at open).
 */
export interface MetaIndexer {
  /** BlobMeta.search for meta cached without it (from its envelope). */
  search(meta: BlobMeta): string;
  /** The whole meta of a blob, from its bytes. */
  build(bytes: AsyncIterable<Buffer>): Promise<BlobMeta>;
}

/** A message row with its blob's cached meta, when asked for. */
export interface MessageWithMeta extends MessageRecord {
  meta: BlobMeta | null;
}

/** Counts STATUS and SELECT report. */
export interface MailboxCounts {
  messages: number;
  unseen: number;
  deleted: number;
  /** Sum of message sizes (STATUS SIZE, RFC 8438). */
  size: number;
  /** UID of the first message without \Seen, or null. */
  firstUnseenUid: number | null;
}

export interface FlagUpdate {
  uids: number[];
  mode: 'add' | 'remove' | 'set';
  flags: string[];
  /** CONDSTORE UNCHANGEDSINCE (RFC 7162 3.1.3): messages with a greater MODSEQ are not changed. */
  unchangedSince?: number;
}

export interface FlagUpdateResult {
  /** Messages whose flags changed (or, for UNCHANGEDSINCE, that passed the test), with the new state. */
  updated: MessageFlags[];
  /** UIDs that failed the UNCHANGEDSINCE test (RFC 7162 MODIFIED response code). */
  modified: number[];
}

/** The result of COPY and MOVE: UIDPLUS COPYUID data. */
export interface CopyResult {
  uidValidity: number;
  /** [source uid, destination uid] pairs, in source UID order. */
  mapping: Array<[number, number]>;
}

/** One local delivery inside a commit. */
export interface LocalDelivery {
  accountId: number;
  /** Mailbox name, normally `INBOX`; `Junk` for mail a filter judged spam. */
  mailbox: string;
  prefix: Buffer;
  flags: string[];
  /**
   * IMAP APPEND: the commit fails with NotFound when `mailbox` does not exist, instead of falling
   * back to INBOX as delivery does.
   */
  exactMailbox?: boolean;
}

/** Recipients of a message that must leave for another server (the outbound queue takes them). */
export interface OutboundEnvelope {
  /** Envelope sender; '' for the null reverse-path. */
  mailFrom: string;
  recipients: OutboundRecipient[];
  /** RFC 3461 DSN parameters, recorded for the queue. */
  envId?: string | null;
  ret?: 'FULL' | 'HDRS' | null;
  /** Header lines sent before the blob (see OutboundPrefix). */
  prefix?: Buffer | null;
}

export interface OutboundRecipient {
  address: string;
  /** RFC 3461 ORCPT, as received (`rfc822;addr`), when given. */
  orcpt?: string | null;
  notify?: string | null;
}

export interface DeliveryCommit {
  blob: StagedBlob;
  /**
   * A message collected from a remote POP3 mailbox: its UIDL is recorded as collected (and its
   * dedupe keys as seen) in the same transaction as the deliveries. The commit fails with
   * AlreadyExists, delivering nothing, when the UIDL was collected already.
   */
  collected?: CollectedMark | null;
  /** Parsed-once facts about the blob; stored with it when given (kept if already there). */
  meta?: BlobMeta | null;
  internalDate: Date;
  local: LocalDelivery[];
  outbound: OutboundEnvelope | null;
}

export interface DeliveryOutcome {
  delivered: Array<{ accountId: number; mailboxId: number; uid: number }>;
  /** Id of the outbound queue entry, when the commit had remote recipients. */
  queueId: number | null;
}

export interface QueuedMessage {
  id: number;
  blobHash: string;
  /** Header lines sent before the blob's bytes (empty for mail that came by SMTP). */
  prefix: Buffer;
  /** Bytes of the blob (the prefix not counted). */
  size: number;
  mailFrom: string;
  createdAt: Date;
  envId: string | null;
  ret: 'FULL' | 'HDRS' | null;
  held: boolean;
  recipients: Array<{
    id: number;
    address: string;
    orcpt: string | null;
    notify: string | null;
    status: 'queued' | 'deferred' | 'delivered' | 'failed';
    attempts: number;
    nextAttemptAt: Date;
    lastError: string | null;
    /** Remote MTA of the last answer (DSN Remote-MTA). */
    remoteMta: string | null;
    /** The sender was told of the delay already. */
    delayWarned: boolean;
  }>;
}

export interface DirectoryStore {
  addDomain(name: string): Promise<Domain>;
  /** Refuses (InvalidInput) while the domain still has accounts or aliases, unless `force`. */
  removeDomain(name: string, options?: { force?: boolean }): Promise<void>;
  getDomain(name: string): Promise<Domain | null>;
  listDomains(): Promise<Domain[]>;
  setDomainMaxMessageSize(name: string, bytes: number | null): Promise<void>;

  /** Creates the account and its mailboxes in one transaction. */
  createAccount(account: NewAccount, mailboxes: NewMailbox[]): Promise<Account>;
  /** Removes the account, its mailboxes and message references (blobs are released). */
  removeAccount(address: string): Promise<void>;
  getAccount(address: string): Promise<Account | null>;
  getAccountById(id: number): Promise<Account | null>;
  listAccounts(domain?: string): Promise<Account[]>;
  setPassword(address: string, passwordHash: string): Promise<void>;
  setQuota(address: string, quotaBytes: number | null): Promise<void>;
  /**
   * The APOP shared secret (RFC 1939 7), kept in clear because APOP needs it so; null turns APOP
   * off for the account. Never the login password.
   */
  setApopSecret(address: string, secret: string | null): Promise<void>;
  getApopSecret(accountId: number): Promise<string | null>;

  /**
   * The domain's DKIM signing key (one active key per domain, removed with the domain); null
   * removes it. NotFound for an unknown domain; InvalidInput for a malformed key.
   */
  setDkimKey(domain: string, key: DkimKey | null): Promise<void>;
  /** Null when the domain has no key or does not exist. */
  getDkimKey(domain: string): Promise<DkimKey | null>;
  /**
   * Extra sender addresses an account may use at submission beyond its own address and the
   * aliases that reach it: exact addresses or `@domain` for a whole domain. [] = none. Stored
   * lower-cased and without duplicates; NotFound for an unknown account.
   */
  setSendAs(address: string, patterns: string[]): Promise<void>;

  /** Adds targets to an alias, creating it when absent; duplicate targets are ignored. */
  addAlias(address: string, targets: string[]): Promise<Alias>;
  removeAlias(address: string): Promise<void>;
  getAlias(address: string): Promise<Alias | null>;
  listAliases(): Promise<Alias[]>;
}

export interface MailStore {
  listMailboxes(accountId: number): Promise<Mailbox[]>;
  getMailbox(accountId: number, name: string): Promise<Mailbox | null>;
  getMailboxById(mailboxId: number): Promise<Mailbox | null>;
  /**
   * Creates a mailbox and any missing superiors (RFC 3501 6.3.3); AlreadyExists when `name`
   * exists; InvalidInput for an invalid name. Publishes a `mailbox` event.
   */
  createMailbox(accountId: number, name: string, specialUse?: SpecialUse | null): Promise<Mailbox>;
  /**
   * Deletes a mailbox and its messages (quota and blob references released). NotFound when absent;
   * InvalidInput for INBOX, and for a mailbox that has children (Dovecot's rule: delete them
   * first). Publishes a `mailbox` event.
   */
  deleteMailbox(accountId: number, name: string): Promise<void>;
  /**
   * Renames a mailbox and its children, keeping UIDVALIDITY and messages. Renaming INBOX moves
   * its messages into a new mailbox named `to` and leaves INBOX empty (RFC 3501 6.3.5).
   * NotFound / AlreadyExists / InvalidInput (a name inside itself). Publishes `mailbox` events.
   */
  renameMailbox(accountId: number, from: string, to: string): Promise<void>;
  /** Subscriptions are names, kept even when no mailbox has the name (RFC 3501 6.3.6). */
  setSubscribed(accountId: number, name: string, subscribed: boolean): Promise<void>;
  listSubscriptions(accountId: number): Promise<string[]>;
  /** NotFound when the mailbox is gone. */
  mailboxCounts(mailboxId: number): Promise<MailboxCounts>;
  /** Every UID of the mailbox, ascending: the session's sequence-number map. */
  listUids(mailboxId: number): Promise<number[]>;
  /** Flags of the given UIDs (missing ones skipped), in UID order; `changedSince` keeps MODSEQ > it. */
  listFlags(mailboxId: number, uids: number[], changedSince?: number): Promise<MessageFlags[]>;
  /** Whole rows of the given UIDs (missing ones skipped), in UID order, with blob meta when cached. */
  listMessagesByUid(mailboxId: number, uids: number[]): Promise<MessageWithMeta[]>;
  /**
   * UIDs of the mailbox (ascending) whose `field` contains `needle` as a substring, compared on
   * the decoded, lower-cased text of BlobMeta.search (the caller lower-cases `needle`). A message
   * without the field never matches; '' matches every message that has it (rfc9051 6.4.4).
   * Answers from one row per message kept with the message through every write (delivery, COPY,
   * MOVE, EXPUNGE, RENAME, DELETE); a message whose blob has no `search` meta yet is not found
   * until its meta is set (setBlobMeta) or the store's backfill (see the adapter) indexes it.
   */
  searchHeaderField(mailboxId: number, field: SearchField, needle: string): Promise<number[]>;
  /** UIDs expunged from the mailbox with a MODSEQ greater than `sinceModSeq` (QRESYNC VANISHED). */
  listVanished(mailboxId: number, sinceModSeq: number): Promise<number[]>;
  getBlobMeta(hash: string): Promise<BlobMeta | null>;
  /**
   * Caches meta for a blob (lazily computed for messages stored before meta existed), replacing
   * any; ignored when no message references the blob (meta goes with the blob's last reference).
   * With `search`, the messages of the blob that had no search row get one.
   */
  setBlobMeta(hash: string, meta: BlobMeta): Promise<void>;
  /**
   * Flags are stored canonically: system flags spelled `\Seen` etc. whatever the case given,
   * keywords compared case-insensitively, `\Recent` ignored; InvalidInput for another `\` flag
   * or a keyword that is not an atom. The same rule applies to LocalDelivery.flags.
   * Changes flags in one durable transaction; each changed message gets a new MODSEQ and a
   * `flags` event is published for it. Messages whose flags would not change are not touched
   * (not in `updated`), except under UNCHANGEDSINCE where passing messages are reported.
   */
  storeFlags(mailboxId: number, update: FlagUpdate): Promise<FlagUpdateResult>;
  /**
   * Copies messages to another mailbox of the same account, in one durable transaction (blob
   * references added, no bytes copied); flags kept; QuotaExceeded when the account's quota would
   * be passed. Publishes `exists` events.
   */
  copyMessages(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<CopyResult>;
  /**
   * Copy then expunge from the source, atomically (RFC 6851); `exists` and `expunge` events.
   * Not quota-checked: the account's usage does not change.
   */
  moveMessages(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<CopyResult>;
  /** Messages of a mailbox in UID order. */
  listMessages(mailboxId: number): Promise<MessageRecord[]>;
  /** UID and size of every message of a mailbox, in UID order: what POP3 needs at login. */
  listMessageSizes(mailboxId: number): Promise<Array<{ uid: number; size: number }>>;
  getMessage(mailboxId: number, uid: number): Promise<MessageRecord | null>;
  /** The bytes a client reads: prefix then blob, streamed. */
  openMessage(message: MessageRecord): Readable;
  /** The same bytes at once, for messages small enough to hold in memory (callers check `size`). */
  readMessage(message: MessageRecord): Promise<Buffer>;
  /** Durable before it resolves; see the module invariants. */
  commitDelivery(commit: DeliveryCommit): Promise<DeliveryOutcome>;
  /**
   * Removes messages of one mailbox by UID, in one durable transaction (the quota usage and blob
   * references go with them; blobs nothing references any more are deleted after). UIDs that are
   * not there are skipped. Resolves with the UIDs removed, once the removal is on disk. Expunged
   * UIDs are remembered with their MODSEQ (listVanished).
   */
  expungeMessages(mailboxId: number, uids: number[]): Promise<number[]>;
}

/** What one delivery attempt learned about one recipient. */
export interface RecipientResult {
  recipientId: number;
  outcome: 'delivered' | 'deferred' | 'failed';
  /** The remote's reply or our reason (`550 5.1.1 ... (mx.example.org)`), kept for `queue show` and bounces. */
  error: string | null;
  /** When a deferred recipient is due again (the caller applies the retry schedule). */
  nextAttemptAt?: Date;
  /** The remote MTA that answered, for the DSN's Remote-MTA field. */
  remoteMta?: string | null;
}

/** A message leased to one worker, with only the recipients that were due. */
export interface LeasedMessage extends QueuedMessage {
  leaseOwner: string;
}

export interface QueueStore {
  listQueued(): Promise<QueuedMessage[]>;
  getQueued(id: number): Promise<QueuedMessage | null>;
  /**
   * Leases up to `limit` messages that have recipients due (status queued or deferred,
   * next attempt <= now, message not held, no live lease of another owner), for `leaseMs`.
   * Each comes with its due recipients only, oldest due first. A lease that expired (its worker
   * died) can be taken over: that is how a crash mid-delivery is retried. A live lease is never
   * handed out again by the store instance (process) that took it, even to the same owner, so a
   * worker may claim more while it delivers; another instance with the same owner (the worker
   * restarted) takes that owner's live leases back at once.
   */
  claimDue(owner: string, now: Date, limit: number, leaseMs: number): Promise<LeasedMessage[]>;
  /**
   * Records an attempt's per-recipient results in one durable transaction and ends the lease.
   * A recipient recorded `delivered` is never handed out again. When every recipient of the
   * message is delivered or failed, the message leaves the queue (its blob reference released):
   * commit any bounce that needs the message before recording the results that end it.
   * Ignored (returns false) when the lease is no longer `owner`'s, or the message is gone; an
   * expired lease nobody took over is still the owner's. A result for a recipient already
   * delivered or failed is ignored; InvalidInput (nothing recorded) for a deferred result
   * without nextAttemptAt or a recipient of another message. Empty results just end the lease.
   */
  recordResults(queueId: number, owner: string, results: RecipientResult[], options?: { keepLease?: boolean }): Promise<boolean>;
  /**
   * When the next recipient is due (for the scheduler's sleep), or null when nothing waits.
   * Held messages do not count; a leased message counts from the end of its lease.
   */
  nextDue(): Promise<Date | null>;
  /**
   * Makes waiting recipients of non-held messages due now (one message, or all); returns how
   * many were not due yet. NotFound for an unknown id.
   */
  retryNow(queueId?: number): Promise<number>;
  /**
   * A held message is not claimed until released; its schedule is kept (retryNow after release
   * to send at once). An attempt already under way finishes. NotFound for an unknown id.
   */
  setHeld(queueId: number, held: boolean): Promise<void>;
  /**
   * Removes a message from the queue without bouncing it (a worker holding it is then ignored,
   * see recordResults). NotFound for an unknown id.
   */
  deleteQueued(queueId: number): Promise<void>;
  /** Marks that the sender was warned of the delay (so it happens once per recipient); unknown ids are ignored. */
  markDelayWarned(recipientIds: number[]): Promise<void>;
}

/** Which collector a remote POP3 mailbox belongs to. */
export type CollectKind = 'domainpop' | 'multipop';

export interface CollectSource {
  id: number;
  kind: CollectKind;
  /** DomainPOP: the name the admin gave; MultiPOP: `<account address>/<host>`. */
  name: string;
  /** MultiPOP: the account the mail goes to. */
  accountId: number | null;
  /** The source's settings (collect/source-config.ts), JSON; it holds the password. */
  config: string;
  enabled: boolean;
  createdAt: Date;
  lastRunAt: Date | null;
  lastOkAt: Date | null;
  lastError: string | null;
  lastCollected: number;
  totalCollected: number;
  /** Who runs it now (see claimRun), and until when; null when nobody does. */
  runOwner: string | null;
  runUntil: Date | null;
}

/** A remote message the collector has dealt with, by UIDL. */
export interface SeenRemoteMessage {
  uidl: string;
  firstSeen: Date;
  /** collected: delivered here; large: not downloaded (over the size limit), postmaster warned. */
  state: 'collected' | 'large';
}

export interface CollectedMark {
  sourceId: number;
  uidl: string;
  state: 'collected' | 'large';
  at: Date;
  /** (dedupe key, recipient) pairs this message delivered; see CollectStore.seenDedupe. */
  dedupe: Array<{ key: string; recipient: string }>;
}

/** The collectors' persistent state: sources, UIDLs dealt with, dedupe keys, run status. */
export interface CollectStore {
  /** AlreadyExists when a source of that kind and name exists. */
  addSource(kind: CollectKind, name: string, accountId: number | null, config: string): Promise<CollectSource>;
  updateSource(id: number, config: string, enabled: boolean): Promise<void>;
  removeSource(id: number): Promise<void>;
  getSource(id: number): Promise<CollectSource | null>;
  listSources(kind?: CollectKind): Promise<CollectSource[]>;
  /**
   * Takes the source for one run until `now + leaseMs`, so two collectors (the schedule and a
   * `collect run`, or two nodes) never work one remote mailbox at once. False when taken.
   * `replacing` takes over the live claim of that owner (a collector known to be dead).
   */
  claimRun(sourceId: number, owner: string, now: Date, leaseMs: number, replacing?: string | null): Promise<boolean>;
  /** Ends a run: records its outcome and frees the claim. */
  finishRun(sourceId: number, owner: string, outcome: { at: Date; error: string | null; collected: number }): Promise<void>;
  listSeen(sourceId: number): Promise<SeenRemoteMessage[]>;
  /** Records a mark without a delivery (a duplicate, a large-message warning); false if present. */
  markSeen(mark: CollectedMark): Promise<boolean>;
  /** Forgets UIDLs the remote mailbox no longer holds. */
  forgetSeen(sourceId: number, uidls: string[]): Promise<void>;
  /** Of the given (key, recipient) pairs, those delivered before: `${key}\n${recipient}`. */
  seenDedupe(sourceId: number, pairs: Array<{ key: string; recipient: string }>): Promise<Set<string>>;
  /** Drops dedupe keys older than `before` whose message is no longer on the server. */
  pruneDedupe(sourceId: number, before: Date): Promise<number>;
}

/**
 * Named locks that hold across every process sharing the store (the POP3 maildrop lock), each
 * with an expiry its holder renews, so a node that dies frees its locks when they expire.
 */
export interface LockStore {
  /** Takes (or, for its owner, renews) `name` until now + ttlMs; false when another owner holds it. */
  acquire(name: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Lets go of `name` if `owner` holds it. */
  release(name: string, owner: string): Promise<void>;
}

export interface SettingsStore {
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  list(): Promise<Array<{ key: string; value: string }>>;
}

/** A message body being written; bytes go to a temporary file, hashed on the way. */
export interface BlobWriter {
  /** Resolves when the chunk is buffered or written; callers await it for backpressure. */
  write(chunk: Buffer): Promise<void>;
  /** Flushes, fsyncs and closes the temporary file; the blob is staged, not yet durable in place. */
  finish(): Promise<StagedBlob>;
  /** Drops the temporary file. Safe to call at any time, more than once. */
  abort(): Promise<void>;
  readonly bytesWritten: number;
}

export interface StagedBlob {
  hash: string;
  size: number;
  /** A temporary file holding the staged bytes, for bodies too large to keep inline. */
  stagingPath: string | null;
  /**
   * Small bodies: the bytes themselves. The adapter stores them inside the delivery's own
   * transaction, so they need no file, no file fsync and no folder fsync.
   */
  inline: Buffer | null;
}

export interface BlobStore {
  createWriter(): Promise<BlobWriter>;
  /**
   * Moves staged files into place and makes them durable (file and folder fsync); idempotent.
   * Inline blobs are skipped: the adapter's transaction stores them.
   */
  persist(blobs: StagedBlob[]): Promise<void>;
  /** Bodies up to this size are staged inline (see StagedBlob.inline); 0 = never. */
  readonly inlineLimit: number;
  /** Discards a staged blob that will not be committed. */
  discard(blob: StagedBlob): Promise<void>;
  /** Streams a blob's bytes; `end` is exclusive. */
  open(hash: string, range?: { start: number; end?: number }): Readable;
  exists(hash: string): Promise<boolean>;
  remove(hash: string): Promise<void>;
}

export type MailEvent =
  | { type: 'exists'; accountId: number; mailboxId: number; uid: number; modSeq: number }
  | { type: 'flags'; accountId: number; mailboxId: number; uid: number; modSeq: number; flags: string[] }
  | { type: 'expunge'; accountId: number; mailboxId: number; uid: number; modSeq: number }
  | { type: 'mailbox'; accountId: number; mailboxId: number; change: 'created' | 'deleted' | 'renamed' };

export interface EventBus {
  publish(event: MailEvent): void;
  /** Returns the unsubscribe function. */
  subscribe(accountId: number, listener: (event: MailEvent) => void): () => void;
}

/** Everything a backend provides; `app/` builds one and hands its parts to the services. */
export interface Store {
  readonly directory: DirectoryStore;
  readonly mail: MailStore;
  readonly queue: QueueStore;
  readonly settings: SettingsStore;
  readonly collect: CollectStore;
  readonly locks: LockStore;
  readonly blobs: BlobStore;
  readonly events: EventBus;
  /**
   * Housekeeping the server runs in the background: removes stored bytes that nothing references
   * and that are older than `minAgeMs` (leftovers of a crash between placing a file and committing
   * its rows). Returns how many were removed.
   */
  sweepOrphans(minAgeMs: number): Promise<number>;
  close(): Promise<void>;
}
