/**
 * Domains, accounts and aliases in SQLite (DirectoryStore).
 *
 * Invariants
 * - Every read goes to the database: the CLI changes these tables while the server runs.
 * - Writes are IMMEDIATE transactions, so a write lock is taken up front and a concurrent
 *   writer in another process waits (busy_timeout) instead of failing with SQLITE_BUSY.
 * - Removing accounts releases blob references in the same transaction and deletes the
 *   unreferenced blob files after it commits, inside the store's serial lane (see serial-lane.ts).
 */
import { checkQuota, mailboxPlan, normalizeTarget } from '../directory-rules.js';
import type Database from 'better-sqlite3';
import { AlreadyExists, InvalidInput, NotFound } from '../../util/errors.js';
import { normalizeDomain, parseAddress, parseAliasAddress } from '../names.js';
import type {
  Account,
  Alias,
  DirectoryStore,
  DkimKey,
  Domain,
  BlobStore,
  EventBus,
  MailEvent,
  NewAccount,
  NewMailbox,
} from '../types.js';
import { BlobRefs, removeBlobFiles } from './blob-refs.js';
import { MailboxRows } from './mailboxes.js';
import { ACCOUNT_SELECT, DOMAIN_COLUMNS, toAccount, toDomain, type AccountRow, type DomainRow } from '../rows.js';
import { SenderAuthRows } from './sender-auth.js';
import type { SerialLane } from './serial-lane.js';
import { statementCache, type Prepare } from './statements.js';

interface Removal {
  unreferenced: string[];
  events: MailEvent[];
}

export class SqliteDirectory implements DirectoryStore {
  private readonly sql: Prepare;
  private readonly refs: BlobRefs;
  private readonly mailboxes: MailboxRows;
  private readonly senderAuth: SenderAuthRows;

  constructor(
    private readonly db: Database.Database,
    private readonly lane: SerialLane,
    private readonly blobs: BlobStore,
    private readonly events: EventBus,
  ) {
    this.sql = statementCache(db);
    this.refs = new BlobRefs(db);
    this.mailboxes = new MailboxRows(db);
    this.senderAuth = new SenderAuthRows(db);
  }

  // ---- domains

  async addDomain(name: string): Promise<Domain> {
    const domain = normalizeDomain(name);
    return this.db
      .transaction(() => {
        if (this.domainRow(domain)) throw new AlreadyExists(`domain ${domain} already exists`);
        this.sql('INSERT INTO domains (name, created_at) VALUES (?, ?)').run(domain, Date.now());
        return toDomain(this.domainRow(domain)!);
      })
      .immediate();
  }

  async removeDomain(name: string, options: { force?: boolean } = {}): Promise<void> {
    const domain = normalizeDomain(name);
    await this.removeReleasingBlobs(() => {
      const row = this.domainRow(domain);
      if (!row) throw new NotFound(`domain ${domain} does not exist`);
      const accountIds = this.sql<[number], { id: number }>('SELECT id FROM accounts WHERE domain_id = ?')
        .all(row.id)
        .map((r) => r.id);
      const aliasCount = this.sql<[number], { n: number }>('SELECT count(DISTINCT address) AS n FROM aliases WHERE domain_id = ?')
        .get(row.id)!.n;
      if (!options.force && (accountIds.length > 0 || aliasCount > 0)) {
        throw new InvalidInput(
          `domain ${domain} still has ${accountIds.length} account(s) and ${aliasCount} alias(es); ` +
            'remove them first, or force the removal',
        );
      }
      const removal: Removal = { unreferenced: [], events: [] };
      for (const id of accountIds) {
        const one = this.deleteAccount(id);
        removal.unreferenced.push(...one.unreferenced);
        removal.events.push(...one.events);
      }
      this.sql('DELETE FROM aliases WHERE domain_id = ?').run(row.id);
      this.sql('DELETE FROM domains WHERE id = ?').run(row.id);
      return removal;
    });
  }

  async getDomain(name: string): Promise<Domain | null> {
    const row = this.domainRow(normalizeDomain(name));
    return row ? toDomain(row) : null;
  }

  async listDomains(): Promise<Domain[]> {
    return this.sql<[], DomainRow>(`SELECT ${DOMAIN_COLUMNS} FROM domains ORDER BY name`).all().map(toDomain);
  }

  async setDomainMaxMessageSize(name: string, bytes: number | null): Promise<void> {
    const domain = normalizeDomain(name);
    if (bytes !== null && (!Number.isSafeInteger(bytes) || bytes < 0)) {
      throw new InvalidInput(`message size limit must be a whole number of bytes, not ${bytes}`);
    }
    const result = this.sql('UPDATE domains SET max_message_size = ? WHERE name = ?').run(bytes, domain);
    if (result.changes === 0) throw new NotFound(`domain ${domain} does not exist`);
  }

  // ---- accounts

  async createAccount(account: NewAccount, mailboxes: NewMailbox[]): Promise<Account> {
    const { address, localPart, domain } = parseAddress(account.address);
    checkQuota(account.quotaBytes);
    const boxes = mailboxPlan(mailboxes);
    return this.db
      .transaction(() => {
        const domainRow = this.domainRow(domain);
        if (!domainRow) {
          throw new InvalidInput(`domain ${domain} is not a local domain; add it with \`fulmar domain add ${domain}\``);
        }
        if (this.accountRow(address)) throw new AlreadyExists(`account ${address} already exists`);
        const id = Number(
          this.sql(
              `INSERT INTO accounts (address, local_part, domain_id, password_hash, quota_bytes, real_name, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)`,
            )
            .run(address, localPart, domainRow.id, account.passwordHash, account.quotaBytes, account.realName ?? null, Date.now())
            .lastInsertRowid,
        );
        const subscribe = this.sql('INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)');
        for (const box of boxes) {
          this.mailboxes.create(id, box.name, box.specialUse);
          subscribe.run(id, box.name);
        }
        return toAccount(this.accountRowById(id)!);
      })
      .immediate();
  }

  async removeAccount(address: string): Promise<void> {
    const parsed = parseAddress(address);
    await this.removeReleasingBlobs(() => {
      const row = this.accountRow(parsed.address);
      if (!row) throw new NotFound(`account ${parsed.address} does not exist`);
      return this.deleteAccount(row.id);
    });
  }

  async getAccount(address: string): Promise<Account | null> {
    const row = this.accountRow(parseAddress(address).address);
    return row ? toAccount(row) : null;
  }

  async getAccountById(id: number): Promise<Account | null> {
    const row = this.accountRowById(id);
    return row ? toAccount(row) : null;
  }

  async listAccounts(domain?: string): Promise<Account[]> {
    const rows =
      domain === undefined
        ? this.sql<[], AccountRow>(`${ACCOUNT_SELECT} ORDER BY a.address`).all()
        : this.sql<[string], AccountRow>(`${ACCOUNT_SELECT} WHERE d.name = ? ORDER BY a.address`).all(normalizeDomain(domain));
    return rows.map(toAccount);
  }

  async setPassword(address: string, passwordHash: string): Promise<void> {
    const parsed = parseAddress(address);
    const result = this.sql('UPDATE accounts SET password_hash = ? WHERE address = ?').run(passwordHash, parsed.address);
    if (result.changes === 0) throw new NotFound(`account ${parsed.address} does not exist`);
  }

  async setApopSecret(address: string, secret: string | null): Promise<void> {
    const parsed = parseAddress(address);
    const result = this.sql('UPDATE accounts SET apop_secret = ? WHERE address = ?').run(secret, parsed.address);
    if (result.changes === 0) throw new NotFound(`account ${parsed.address} does not exist`);
  }

  async getApopSecret(accountId: number): Promise<string | null> {
    return this.sql<[number], { apop_secret: string | null }>('SELECT apop_secret FROM accounts WHERE id = ?').get(accountId)?.apop_secret ?? null;
  }

  async setQuota(address: string, quotaBytes: number | null): Promise<void> {
    const parsed = parseAddress(address);
    checkQuota(quotaBytes);
    const result = this.sql('UPDATE accounts SET quota_bytes = ? WHERE address = ?').run(quotaBytes, parsed.address);
    if (result.changes === 0) throw new NotFound(`account ${parsed.address} does not exist`);
  }

  // ---- DKIM keys and send-as (sender-auth.ts)

  async setDkimKey(domain: string, key: DkimKey | null): Promise<void> {
    this.senderAuth.setDkimKey(domain, key);
  }

  async getDkimKey(domain: string): Promise<DkimKey | null> {
    return this.senderAuth.getDkimKey(domain);
  }

  async setSendAs(address: string, patterns: string[]): Promise<void> {
    this.senderAuth.setSendAs(address, patterns);
  }

  // ---- aliases

  async addAlias(address: string, targets: string[]): Promise<Alias> {
    const alias = parseAliasAddress(address);
    if (targets.length === 0) throw new InvalidInput(`alias ${alias.address} needs at least one target`);
    const normalizedTargets = targets.map(normalizeTarget);
    return this.db
      .transaction(() => {
        const domainRow = this.domainRow(alias.domain);
        if (!domainRow) {
          throw new InvalidInput(
            `domain ${alias.domain} is not a local domain; add it with \`fulmar domain add ${alias.domain}\``,
          );
        }
        const insert = this.sql(
          'INSERT OR IGNORE INTO aliases (address, domain_id, target, created_at) VALUES (?, ?, ?, ?)',
        );
        const now = Date.now();
        for (const target of normalizedTargets) insert.run(alias.address, domainRow.id, target, now);
        return this.aliasOf(alias.address)!;
      })
      .immediate();
  }

  async removeAlias(address: string): Promise<void> {
    const alias = parseAliasAddress(address);
    const result = this.sql('DELETE FROM aliases WHERE address = ?').run(alias.address);
    if (result.changes === 0) throw new NotFound(`alias ${alias.address} does not exist`);
  }

  async getAlias(address: string): Promise<Alias | null> {
    return this.aliasOf(parseAliasAddress(address).address);
  }

  async listAliases(): Promise<Alias[]> {
    const rows = this.sql<[], { address: string; target: string }>('SELECT address, target FROM aliases ORDER BY address, id')
      .all();
    const byAddress = new Map<string, string[]>();
    for (const row of rows) {
      const list = byAddress.get(row.address);
      if (list) list.push(row.target);
      else byAddress.set(row.address, [row.target]);
    }
    return [...byAddress].map(([address, targets]) => ({ address, targets }));
  }

  // ---- helpers

  private domainRow(name: string): DomainRow | undefined {
    return this.sql<[string], DomainRow>(`SELECT ${DOMAIN_COLUMNS} FROM domains WHERE name = ?`).get(name);
  }

  private accountRow(address: string): AccountRow | undefined {
    return this.sql<[string], AccountRow>(`${ACCOUNT_SELECT} WHERE a.address = ?`).get(address);
  }

  private accountRowById(id: number): AccountRow | undefined {
    return this.sql<[number], AccountRow>(`${ACCOUNT_SELECT} WHERE a.id = ?`).get(id);
  }

  private aliasOf(address: string): Alias | null {
    const targets = this.sql<[string], { target: string }>('SELECT target FROM aliases WHERE address = ? ORDER BY id')
      .all(address)
      .map((r) => r.target);
    return targets.length === 0 ? null : { address, targets };
  }

  /** Deletes an account with its mailboxes and messages (ON DELETE CASCADE); call in a transaction. */
  private deleteAccount(accountId: number): Removal {
    const counts = new Map(
      this.sql<[number], { blob_hash: string; n: number }>(
          `SELECT blob_hash, count(*) AS n FROM messages
           WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?) GROUP BY blob_hash`,
        )
        .all(accountId)
        .map((r) => [r.blob_hash, r.n] as const),
    );
    const events: MailEvent[] = this.sql<[number], { id: number }>('SELECT id FROM mailboxes WHERE account_id = ?')
      .all(accountId)
      .map((r) => ({ type: 'mailbox', accountId, mailboxId: r.id, change: 'deleted' }));
    this.sql('DELETE FROM accounts WHERE id = ?').run(accountId);
    return { unreferenced: this.refs.release(counts), events };
  }

  /** Runs `remove` in an IMMEDIATE transaction inside the lane, then deletes freed blob files. */
  private async removeReleasingBlobs(remove: () => Removal): Promise<void> {
    await this.lane.run(async () => {
      const removal = this.db.transaction(remove).immediate();
      await removeBlobFiles(this.blobs, removal.unreferenced);
      for (const event of removal.events) this.events.publish(event);
    });
  }
}
