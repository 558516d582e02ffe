/**
 * What outgoing mail is signed with and who may send as whom, in SQLite: the per-domain DKIM
 * key (table dkim_keys, removed with its domain) and the per-account extra sender addresses
 * (accounts.send_as, a JSON array). Part of SqliteDirectory (directory.ts).
 *
 * Invariants
 * - One key per domain: setting a key replaces the previous one.
 * - send_as holds normalized patterns (`local@domain` lower-cased, or `@domain`), without
 *   duplicates, in the order given.
 */
import { checkDkimKey, normalizeSendAs } from '../directory-rules.js';
import type Database from 'better-sqlite3';
import { NotFound } from '../../util/errors.js';
import { normalizeDomain, parseAddress } from '../names.js';
import type { DkimKey } from '../types.js';
import { statementCache, type Prepare } from './statements.js';

interface DkimRow {
  selector: string;
  algorithm: DkimKey['algorithm'];
  private_key_pem: string;
  public_key: string;
  created_at: number;
}


export class SenderAuthRows {
  private readonly sql: Prepare;

  constructor(private readonly db: Database.Database) {
    this.sql = statementCache(db);
  }

  setDkimKey(name: string, key: DkimKey | null): void {
    const domain = normalizeDomain(name);
    if (key !== null) checkDkimKey(key);
    this.db
      .transaction(() => {
        const row = this.sql<[string], { id: number }>('SELECT id FROM domains WHERE name = ?').get(domain);
        if (!row) throw new NotFound(`domain ${domain} does not exist`);
        if (key === null) {
          this.sql('DELETE FROM dkim_keys WHERE domain_id = ?').run(row.id);
          return;
        }
        this.sql(
          `INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key_pem, public_key, created_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (domain_id) DO UPDATE SET selector = excluded.selector, algorithm = excluded.algorithm,
             private_key_pem = excluded.private_key_pem, public_key = excluded.public_key, created_at = excluded.created_at`,
        ).run(row.id, key.selector, key.algorithm, key.privateKeyPem, key.publicKey, key.createdAt.getTime());
      })
      .immediate();
  }

  getDkimKey(name: string): DkimKey | null {
    const row = this.sql<[string], DkimRow>(
      `SELECT k.selector, k.algorithm, k.private_key_pem, k.public_key, k.created_at
       FROM dkim_keys k JOIN domains d ON d.id = k.domain_id WHERE d.name = ?`,
    ).get(normalizeDomain(name));
    if (!row) return null;
    return {
      selector: row.selector,
      algorithm: row.algorithm,
      privateKeyPem: row.private_key_pem,
      publicKey: row.public_key,
      createdAt: new Date(row.created_at),
    };
  }

  setSendAs(address: string, patterns: string[]): void {
    const account = parseAddress(address).address;
    const normal = normalizeSendAs(patterns);
    const result = this.sql('UPDATE accounts SET send_as = ? WHERE address = ?').run(JSON.stringify(normal), account);
    if (result.changes === 0) throw new NotFound(`account ${account} does not exist`);
  }
}
