/**
 * The road every message takes, whatever brought it: a transaction that accepts or refuses
 * recipients one by one, spools the body once, and commits the message to local mailboxes and
 * the outbound queue in one durable step (after maddy's delivery contract:
 * start → addRecipient → body → commit | abort).
 *
 * Verdicts are protocol-neutral values; each edge maps them to its own replies.
 */
import { effectiveLimit, exceedsLimit } from '../filters/size.js';
import { resolveRecipient } from '../directory/resolve.js';
import type { Directory } from '../directory/directory.js';
import type { SettingsSnapshot } from '../store/runtime-settings.js';
import type { Account, BlobStore, CollectedMark, DeliveryOutcome, LocalDelivery, MailStore, OutboundRecipient } from '../store/types.js';
import { localPrefix } from '../delivery/local.js';
import { checkSpooledMessage, type AuthVerdict, type InboundClient } from '../filters/auth-results.js';
import { SpoolWriter, type SpoolResult } from './spool.js';

export interface IngestServices {
  directory: Directory;
  mail: MailStore;
  blobs: BlobStore;
  /** Told when a commit put mail in the outbound queue, so delivery starts at once. */
  onQueued?: () => void;
}

export interface IngestContext {
  /** True when the client proved who it is (SMTP AUTH): it may relay to remote addresses. */
  authenticated: boolean;
  settings: SettingsSnapshot;
  /**
   * Set for mail from an unauthenticated client on port 25: the message is checked (SPF, DKIM,
   * DMARC, ARC; filters/auth-results.ts) before the commit.
   */
  inbound?: InboundClient | null;
}

export type RecipientRefusal =
  | 'unknown-user'
  | 'relay-denied'
  | 'over-quota'
  | 'too-many-recipients'
  | 'too-big-for-domain'
  | 'duplicate';

export type RecipientVerdict = { ok: true } | { ok: false; reason: RecipientRefusal; detail: string };

export interface RecipientParams {
  orcpt?: string | null;
  notify?: string | null;
  /** Header lines (CRLF-ended) added to this recipient's local copies (a collector's notes). */
  headers?: string;
}

/** What a collector adds to a commit (collect/): see MessageTransaction.commit. */
export interface CommitExtras {
  /**
   * Trace header lines (a collector's Received) each local copy carries after its own envelope
   * lines, and sent before the blob to remote recipients; the blob stays as it came.
   */
  trace?: Buffer;
  /** The remote message this commit collects (its UIDL is recorded in the same transaction). */
  collected?: CollectedMark;
  /** Copies of exactly the blob's bytes, without any header of ours (a collector's archive). */
  rawCopies?: Array<{ accountId: number; mailbox: string }>;
}

interface AcceptedRecipient {
  address: string;
  params: RecipientParams;
  accounts: Account[];
  remote: string[];
  domainLimit: number | null;
}

export type CommitResult =
  | { ok: true; outcome: DeliveryOutcome; size: number; auth: AuthVerdict | null }
  | { ok: false; reason: 'too-big' | 'header-too-big'; size: number; limit: number }
  /** DMARC p=reject failed and smtp.dmarc_reject is on: nothing was stored. */
  | { ok: false; reason: 'dmarc-reject'; size: number; domain: string; auth: AuthVerdict };

export class MessageTransaction {
  private readonly recipients: AcceptedRecipient[] = [];
  private spool: SpoolWriter | null = null;
  /** A body spooled before the transaction knew its envelope (collect/: see attachSpooled). */
  private spooled: SpoolResult | null = null;

  constructor(
    private readonly services: IngestServices,
    private readonly context: IngestContext,
    readonly mailFrom: string,
    readonly declaredSize: number | null,
    readonly dsn: { envId: string | null; ret: 'FULL' | 'HDRS' | null } = { envId: null, ret: null },
  ) {}

  get recipientCount(): number {
    return this.recipients.length;
  }

  get recipientAddresses(): string[] {
    return this.recipients.map((r) => r.address);
  }

  async addRecipient(address: string, params: RecipientParams = {}): Promise<RecipientVerdict> {
    const settings = this.context.settings;
    if (this.recipients.length >= settings.get('smtp.max_recipients')) {
      return { ok: false, reason: 'too-many-recipients', detail: `at most ${settings.get('smtp.max_recipients')} recipients per message` };
    }
    if (this.recipients.some((r) => r.address.toLowerCase() === address.toLowerCase())) {
      // A repeated RCPT for the same address is accepted once and delivered once.
      return { ok: true };
    }
    const resolution = await resolveRecipient(this.services.directory, address);
    if (resolution.kind === 'unknown') return { ok: false, reason: 'unknown-user', detail: `no mailbox here by the name ${address}` };
    if (resolution.kind === 'remote') {
      if (!this.context.authenticated) return { ok: false, reason: 'relay-denied', detail: `relay access denied for ${address}` };
      this.recipients.push({ address, params, accounts: [], remote: [address], domainLimit: null });
      return { ok: true };
    }
    const domainLimit = resolution.domain.maxMessageSize;
    if (this.declaredSize !== null && domainLimit !== null && domainLimit > 0 && this.declaredSize > domainLimit) {
      return { ok: false, reason: 'too-big-for-domain', detail: `message size ${this.declaredSize} exceeds the limit of ${domainLimit} bytes for ${resolution.domain.name}` };
    }
    for (const account of resolution.accounts) {
      if (account.quotaBytes !== null && account.usedBytes + (this.declaredSize ?? 0) > account.quotaBytes) {
        return { ok: false, reason: 'over-quota', detail: `mailbox of ${address} is full` };
      }
    }
    this.recipients.push({ address, params, accounts: resolution.accounts, remote: resolution.remote, domainLimit });
    return { ok: true };
  }

  /** The size limit that applies to the body, given the recipients accepted so far. */
  sizeLimit(): number {
    return effectiveLimit(
      this.context.settings.get('smtp.max_message_size'),
      this.recipients.map((r) => r.domainLimit),
    );
  }

  /** Starts the body; `traceHeaders` (Received, ...) go first and are not counted in the size. */
  async beginBody(traceHeaders: string): Promise<SpoolWriter> {
    if (this.spool) throw new Error('body already started');
    this.spool = await SpoolWriter.open(this.services.blobs, traceHeaders, {
      maxSize: this.sizeLimit(),
      maxHeaderSize: this.context.settings.get('smtp.max_header_size'),
    });
    return this.spool;
  }

  /**
   * Takes a body spooled before the envelope was known: a collector must read the message to
   * learn its sender and recipients. Used instead of beginBody.
   */
  attachSpooled(result: SpoolResult): void {
    if (this.spool || this.spooled) throw new Error('body already started');
    this.spooled = result;
  }

  /**
   * Ends the body and, when it is within limits, commits it to every recipient. Resolves only
   * once the message is durable: the caller may then promise delivery.
   */
  async commit(extras: CommitExtras = {}): Promise<CommitResult> {
    let spooled: SpoolResult;
    if (this.spooled) {
      spooled = this.spooled;
      this.spooled = null;
    } else {
      if (!this.spool) throw new Error('commit before body');
      spooled = await this.spool.finish();
      this.spool = null;
    }
    const limit = this.sizeLimit();
    if (!spooled.ok) return { ok: false, reason: spooled.reason, size: spooled.size, limit };
    if (exceedsLimit(spooled.size, limit)) {
      await this.services.blobs.discard(spooled.blob);
      return { ok: false, reason: 'too-big', size: spooled.size, limit };
    }
    // Sender authentication (port 25 only): Authentication-Results goes into each local copy's
    // prefix, so the stored blob stays as received; DMARC may send the copies to Junk or refuse.
    const auth = this.context.inbound ? await checkSpooledMessage(spooled.blob, this.context.inbound, this.mailFrom, this.context.settings) : null;
    if (auth?.action === 'reject') {
      await this.services.blobs.discard(spooled.blob);
      return { ok: false, reason: 'dmarc-reject', size: spooled.size, domain: auth.policyDomain ?? '', auth };
    }
    const local: LocalDelivery[] = [];
    const seenAccounts = new Set<number>();
    const remote = new Map<string, OutboundRecipient>();
    for (const r of this.recipients) {
      for (const account of r.accounts) {
        if (seenAccounts.has(account.id)) continue;
        seenAccounts.add(account.id);
        const envelope = localPrefix({ returnPath: this.mailFrom, deliveredTo: account.address, rcptTo: r.address });
        local.push({
          accountId: account.id,
          mailbox: auth?.action === 'junk' ? 'Junk' : 'INBOX',
          prefix: withAuthHeader(joinPrefix(envelope, r.params.headers, extras.trace), auth),
          flags: [],
        });
      }
      for (const address of r.remote) {
        const key = address.toLowerCase();
        if (!remote.has(key)) {
          // ORCPT travels only for a recipient the client named itself, not for alias targets.
          const direct = r.remote.length === 1 && r.accounts.length === 0 && r.address === address;
          remote.set(key, { address, orcpt: direct ? (r.params.orcpt ?? null) : null, notify: r.params.notify ?? null });
        }
      }
    }
    for (const copy of extras.rawCopies ?? []) local.push({ accountId: copy.accountId, mailbox: copy.mailbox, prefix: Buffer.alloc(0), flags: [] });
    const outcome = await this.services.mail.commitDelivery({
      blob: spooled.blob,
      meta: spooled.meta,
      internalDate: new Date(),
      local,
      outbound:
        remote.size === 0
          ? null
          : { mailFrom: this.mailFrom, recipients: [...remote.values()], envId: this.dsn.envId, ret: this.dsn.ret, prefix: extras.trace ?? null },
      collected: extras.collected ?? null,
    });
    if (outcome.queueId !== null) this.services.onQueued?.();
    return { ok: true, outcome, size: spooled.size, auth };
  }

  async abort(): Promise<void> {
    const spool = this.spool;
    const spooled = this.spooled;
    this.spool = null;
    this.spooled = null;
    if (spool) await spool.abort();
    if (spooled?.ok) await this.services.blobs.discard(spooled.blob);
  }
}

function joinPrefix(envelope: Buffer, headers: string | undefined, trace: Buffer | undefined): Buffer {
  if (!headers && !trace) return envelope;
  return Buffer.concat([envelope, Buffer.from(headers ?? '', 'utf8'), trace ?? Buffer.alloc(0)]);
}

/** The per-delivery prefix with the Authentication-Results header after Return-Path & co. */
function withAuthHeader(prefix: Buffer, auth: AuthVerdict | null): Buffer {
  return auth && auth.header.length > 0 ? Buffer.concat([prefix, auth.header]) : prefix;
}
