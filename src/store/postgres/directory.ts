/**
 * Domains, accounts, aliases, DKIM keys, send-as patterns and APOP secrets in PostgreSQL
 * (DirectoryStore); the same behaviour as store/sqlite/directory.ts and sender-auth.ts.
 *
 * Invariants
 * - Every read goes to the database (no cache): other nodes and the CLI change these tables
 *   while the server runs.
 * - Single-row changes are single statements; anything that writes several rows is one
 *   transaction (db.tx). Such a transaction may run more than once (retry), so it has no effect
 *   outside the database: events are published after it committed.
 * - Races between nodes are settled by row locks, taken in one order (domain, account, its
 *   mailboxes): a writer that adds rows under a domain takes its row FOR KEY SHARE, so removing
 *   the domain (FOR UPDATE) either waits for it and then counts its rows, or happens first and
 *   the writer finds no domain. Removing an account locks the account and its mailboxes, so no
 *   mailbox or message can be added under it meanwhile, and releases exactly the blob references
 *   of the message rows its own DELETE removed (a concurrent expunge releases its own).
 * - Database bytes of blobs nothing references any more go with the last reference, in the
 *   same transaction (releaseBlobRefs); files of a shared blob folder are left to the orphan
 *   sweep (see blob-store.ts), as another node may be committing the same hash.
 * - Lists sort byte-wise (COLLATE "C"), as SQLite does, whatever the database's collation.
 */
import { checkDkimKey, checkQuota, mailboxPlan, normalizeSendAs, normalizeTarget } from '../directory-rules.js';
import { AlreadyExists, InvalidInput, NotFound } from '../../util/errors.js';
import { normalizeDomain, parseAddress, parseAliasAddress } from '../names.js';
import type { Account, Alias, DirectoryStore, DkimKey, Domain, EventBus, MailEvent, NewAccount, NewMailbox } from '../types.js';
import { releaseBlobRefs } from './blob-refs.js';
import type { PgBlobStore } from './blob-store.js';
import { isUniqueViolation, type Db, type Queryable } from './db.js';
import { insertMailbox } from './mailboxes.js';
import { ACCOUNT_SELECT, DOMAIN_COLUMNS, toAccount, toDomain, type AccountRow, type DomainRow } from '../rows.js';

interface DkimRow {
  selector: string;
  algorithm: DkimKey['algorithm'];
  private_key_pem: string;
  public_key: string;
  created_at: number;
  [column: string]: unknown;
}


export class PgDirectory implements DirectoryStore {
  constructor(
    readonly db: Db,
    /** Unused: freed database bytes go in the removal's transaction, shared-folder files with the sweep. */
    readonly blobs: PgBlobStore,
    readonly events: EventBus,
  ) {}

  // ---- domains

  async addDomain(name: string): Promise<Domain> {
    const domain = normalizeDomain(name);
    const row = await this.db.one<DomainRow>(
      `INSERT INTO domains (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING ${DOMAIN_COLUMNS}`,
      [domain, Date.now()],
    );
    if (!row) throw new AlreadyExists(`domain ${domain} already exists`);
    return toDomain(row);
  }

  async removeDomain(name: string, options: { force?: boolean } = {}): Promise<void> {
    const domain = normalizeDomain(name);
    const events = await this.db.tx(async (tx) => {
      // Writers adding rows under the domain hold it FOR KEY SHARE: wait for them, block the rest.
      const row = await tx.one<{ id: number }>('SELECT id FROM domains WHERE name = $1 FOR UPDATE', [domain]);
      if (!row) throw new NotFound(`domain ${domain} does not exist`);
      const accountIds = (await tx.query<{ id: number }>('SELECT id FROM accounts WHERE domain_id = $1 ORDER BY id', [row.id])).map((r) => r.id);
      const aliasCount = (await tx.one<{ n: number }>('SELECT count(DISTINCT address) AS n FROM aliases WHERE domain_id = $1', [row.id]))!.n;
      if (!options.force && (accountIds.length > 0 || aliasCount > 0)) {
        throw new InvalidInput(
          `domain ${domain} still has ${accountIds.length} account(s) and ${aliasCount} alias(es); ` + 'remove them first, or force the removal',
        );
      }
      const removed: MailEvent[] = [];
      for (const id of accountIds) removed.push(...(await deleteAccount(tx, id)));
      await tx.query('DELETE FROM aliases WHERE domain_id = $1', [row.id]);
      // dkim_keys go with the domain (ON DELETE CASCADE).
      await tx.query('DELETE FROM domains WHERE id = $1', [row.id]);
      return removed;
    });
    for (const event of events) this.events.publish(event);
  }

  async getDomain(name: string): Promise<Domain | null> {
    const row = await this.db.one<DomainRow>(`SELECT ${DOMAIN_COLUMNS} FROM domains WHERE name = $1`, [normalizeDomain(name)]);
    return row ? toDomain(row) : null;
  }

  async listDomains(): Promise<Domain[]> {
    return (await this.db.query<DomainRow>(`SELECT ${DOMAIN_COLUMNS} FROM domains ORDER BY name COLLATE "C"`)).map(toDomain);
  }

  async setDomainMaxMessageSize(name: string, bytes: number | null): Promise<void> {
    const domain = normalizeDomain(name);
    if (bytes !== null && (!Number.isSafeInteger(bytes) || bytes < 0)) {
      throw new InvalidInput(`message size limit must be a whole number of bytes, not ${bytes}`);
    }
    const changed = await this.db.query('UPDATE domains SET max_message_size = $1 WHERE name = $2 RETURNING id', [bytes, domain]);
    if (changed.length === 0) throw new NotFound(`domain ${domain} does not exist`);
  }

  // ---- accounts

  async createAccount(account: NewAccount, mailboxes: NewMailbox[]): Promise<Account> {
    const { address, localPart, domain } = parseAddress(account.address);
    checkQuota(account.quotaBytes);
    const boxes = mailboxPlan(mailboxes);
    try {
      return await this.db.tx(async (tx) => {
        const domainId = await lockDomainForInsert(tx, domain);
        const inserted = await tx.one<{ id: number }>(
          `INSERT INTO accounts (address, local_part, domain_id, password_hash, quota_bytes, real_name, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (address) DO NOTHING RETURNING id`,
          [address, localPart, domainId, account.passwordHash, account.quotaBytes, account.realName ?? null, Date.now()],
        );
        if (!inserted) throw new AlreadyExists(`account ${address} already exists`);
        for (const box of boxes) {
          await insertMailbox(tx, inserted.id, box.name, box.specialUse);
          await tx.query('INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING', [inserted.id, box.name]);
        }
        return toAccount((await tx.one<AccountRow>(`${ACCOUNT_SELECT} WHERE a.id = $1`, [inserted.id]))!);
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new AlreadyExists(`account ${address} already exists`);
      throw error;
    }
  }

  async removeAccount(address: string): Promise<void> {
    const parsed = parseAddress(address);
    const events = await this.db.tx(async (tx) => {
      const row = await tx.one<{ id: number }>('SELECT id FROM accounts WHERE address = $1 FOR UPDATE', [parsed.address]);
      if (!row) throw new NotFound(`account ${parsed.address} does not exist`);
      return deleteAccount(tx, row.id);
    });
    for (const event of events) this.events.publish(event);
  }

  async getAccount(address: string): Promise<Account | null> {
    const row = await this.db.one<AccountRow>(`${ACCOUNT_SELECT} WHERE a.address = $1`, [parseAddress(address).address]);
    return row ? toAccount(row) : null;
  }

  async getAccountById(id: number): Promise<Account | null> {
    if (!Number.isSafeInteger(id)) return null;
    const row = await this.db.one<AccountRow>(`${ACCOUNT_SELECT} WHERE a.id = $1`, [id]);
    return row ? toAccount(row) : null;
  }

  async listAccounts(domain?: string): Promise<Account[]> {
    const rows =
      domain === undefined
        ? await this.db.query<AccountRow>(`${ACCOUNT_SELECT} ORDER BY a.address COLLATE "C"`)
        : await this.db.query<AccountRow>(`${ACCOUNT_SELECT} WHERE d.name = $1 ORDER BY a.address COLLATE "C"`, [normalizeDomain(domain)]);
    return rows.map(toAccount);
  }

  async setPassword(address: string, passwordHash: string): Promise<void> {
    await this.updateAccount(address, 'password_hash', passwordHash);
  }

  async setApopSecret(address: string, secret: string | null): Promise<void> {
    await this.updateAccount(address, 'apop_secret', secret);
  }

  async getApopSecret(accountId: number): Promise<string | null> {
    if (!Number.isSafeInteger(accountId)) return null;
    const row = await this.db.one<{ apop_secret: string | null }>('SELECT apop_secret FROM accounts WHERE id = $1', [accountId]);
    return row?.apop_secret ?? null;
  }

  async setQuota(address: string, quotaBytes: number | null): Promise<void> {
    parseAddress(address);
    checkQuota(quotaBytes);
    await this.updateAccount(address, 'quota_bytes', quotaBytes);
  }

  // ---- DKIM keys and send-as

  async setDkimKey(name: string, key: DkimKey | null): Promise<void> {
    const domain = normalizeDomain(name);
    if (key !== null) checkDkimKey(key);
    await this.db.tx(async (tx) => {
      const row = await tx.one<{ id: number }>('SELECT id FROM domains WHERE name = $1 FOR KEY SHARE', [domain]);
      if (!row) throw new NotFound(`domain ${domain} does not exist`);
      if (key === null) {
        await tx.query('DELETE FROM dkim_keys WHERE domain_id = $1', [row.id]);
        return;
      }
      await tx.query(
        `INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key_pem, public_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (domain_id) DO UPDATE SET selector = excluded.selector, algorithm = excluded.algorithm,
           private_key_pem = excluded.private_key_pem, public_key = excluded.public_key, created_at = excluded.created_at`,
        [row.id, key.selector, key.algorithm, key.privateKeyPem, key.publicKey, key.createdAt.getTime()],
      );
    });
  }

  async getDkimKey(name: string): Promise<DkimKey | null> {
    const row = await this.db.one<DkimRow>(
      `SELECT k.selector, k.algorithm, k.private_key_pem, k.public_key, k.created_at
       FROM dkim_keys k JOIN domains d ON d.id = k.domain_id WHERE d.name = $1`,
      [normalizeDomain(name)],
    );
    if (!row) return null;
    return {
      selector: row.selector,
      algorithm: row.algorithm,
      privateKeyPem: row.private_key_pem,
      publicKey: row.public_key,
      createdAt: new Date(row.created_at),
    };
  }

  async setSendAs(address: string, patterns: string[]): Promise<void> {
    parseAddress(address);
    const normal = normalizeSendAs(patterns);
    await this.updateAccount(address, 'send_as', JSON.stringify(normal));
  }

  // ---- aliases

  async addAlias(address: string, targets: string[]): Promise<Alias> {
    const alias = parseAliasAddress(address);
    if (targets.length === 0) throw new InvalidInput(`alias ${alias.address} needs at least one target`);
    const normalizedTargets = targets.map(normalizeTarget);
    return this.db.tx(async (tx) => {
      const domainId = await lockDomainForInsert(tx, alias.domain);
      const now = Date.now();
      // One statement per target, in the order given, so ids (the targets' order) follow it.
      for (const target of normalizedTargets) {
        await tx.query(
          'INSERT INTO aliases (address, domain_id, target, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (address, target) DO NOTHING',
          [alias.address, domainId, target, now],
        );
      }
      return (await aliasOf(tx, alias.address))!;
    });
  }

  async removeAlias(address: string): Promise<void> {
    const alias = parseAliasAddress(address);
    const removed = await this.db.query('DELETE FROM aliases WHERE address = $1 RETURNING id', [alias.address]);
    if (removed.length === 0) throw new NotFound(`alias ${alias.address} does not exist`);
  }

  async getAlias(address: string): Promise<Alias | null> {
    return aliasOf(this.db, parseAliasAddress(address).address);
  }

  async listAliases(): Promise<Alias[]> {
    const rows = await this.db.query<{ address: string; target: string }>('SELECT address, target FROM aliases ORDER BY address COLLATE "C", id');
    const byAddress = new Map<string, string[]>();
    for (const row of rows) {
      const list = byAddress.get(row.address);
      if (list) list.push(row.target);
      else byAddress.set(row.address, [row.target]);
    }
    return [...byAddress].map(([address, targets]) => ({ address, targets }));
  }

  // ---- helpers

  /** One column of one account, in one statement; NotFound when the account does not exist. */
  private async updateAccount(address: string, column: 'password_hash' | 'apop_secret' | 'quota_bytes' | 'send_as', value: unknown): Promise<void> {
    const parsed = parseAddress(address);
    const changed = await this.db.query(`UPDATE accounts SET ${column} = $1 WHERE address = $2 RETURNING id`, [value, parsed.address]);
    if (changed.length === 0) throw new NotFound(`account ${parsed.address} does not exist`);
  }
}

/**
 * The id of a local domain, locked FOR KEY SHARE until the transaction ends so it cannot be
 * removed under the rows about to be added; InvalidInput when it is not a local domain.
 */
async function lockDomainForInsert(tx: Queryable, domain: string): Promise<number> {
  const row = await tx.one<{ id: number }>('SELECT id FROM domains WHERE name = $1 FOR KEY SHARE', [domain]);
  if (!row) throw new InvalidInput(`domain ${domain} is not a local domain; add it with \`fulmar domain add ${domain}\``);
  return row.id;
}

async function aliasOf(q: Queryable, address: string): Promise<Alias | null> {
  const targets = (await q.query<{ target: string }>('SELECT target FROM aliases WHERE address = $1 ORDER BY id', [address])).map((r) => r.target);
  return targets.length === 0 ? null : { address, targets };
}

/**
 * Deletes an account with its mailboxes, messages, subscriptions and collectors, releasing the
 * blob references of its messages; returns the `mailbox deleted` events to publish after commit.
 * Call inside a transaction.
 */
async function deleteAccount(tx: Queryable, accountId: number): Promise<MailEvent[]> {
  // The account first (a new mailbox references it), then its mailboxes (a new message
  // references one): both wait for writers in flight and make later ones wait, then fail.
  if (!(await tx.one('SELECT id FROM accounts WHERE id = $1 FOR UPDATE', [accountId]))) return []; // removed meanwhile
  const mailboxIds = (await tx.query<{ id: number }>('SELECT id FROM mailboxes WHERE account_id = $1 ORDER BY id FOR UPDATE', [accountId])).map(
    (r) => r.id,
  );
  const counts = new Map<string, number>();
  if (mailboxIds.length > 0) {
    // The rows this DELETE removes, and only those: one a concurrent expunge took is its to release.
    const gone = await tx.query<{ blob_hash: string; n: number }>(
      `WITH gone AS (DELETE FROM messages WHERE mailbox_id = ANY($1::bigint[]) RETURNING blob_hash)
       SELECT blob_hash, count(*) AS n FROM gone GROUP BY blob_hash`,
      [mailboxIds],
    );
    for (const row of gone) counts.set(row.blob_hash, Number(row.n));
  }
  // Mailboxes, their tombstones and search rows, subscriptions and collectors: ON DELETE CASCADE.
  await tx.query('DELETE FROM accounts WHERE id = $1', [accountId]);
  await releaseBlobRefs(tx, counts);
  return mailboxIds.map((mailboxId): MailEvent => ({ type: 'mailbox', accountId, mailboxId, change: 'deleted' }));
}
