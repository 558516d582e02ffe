/**
 * The collectors' state in SQLite (CollectStore): sources with their run status and run claim,
 * the remote UIDLs dealt with (collect_seen) and the dedupe keys delivered (collect_dedupe).
 *
 * Invariants
 * - A UIDL is marked 'collected' at most once: markCollected runs inside the delivery's own
 *   transaction (group-commit.ts) and throws AlreadyExists when the row exists, which rolls the
 *   delivery back. So two collectors racing on one remote message deliver it once.
 * - A 'large' mark (not downloaded, postmaster warned) may later become 'collected' (the limit
 *   was raised), never the other way.
 */
import type Database from 'better-sqlite3';
import { AlreadyExists, InvalidInput } from '../../util/errors.js';
import type { CollectedMark, CollectKind, CollectSource, CollectStore, SeenRemoteMessage } from '../types.js';
import { COLLECT_SOURCE_COLUMNS, toCollectSource, type CollectSourceRow } from '../rows.js';
import { statementCache, type Prepare } from './statements.js';

/** Records a mark; inside a delivery's transaction, AlreadyExists rolls the delivery back. */
export function markCollected(sql: Prepare, mark: CollectedMark): void {
  checkMark(mark);
  const at = mark.at.getTime();
  const changes = sql<[number, string, number, string]>(
    `INSERT INTO collect_seen (source_id, uidl, first_seen, state) VALUES (?, ?, ?, ?)
     ON CONFLICT (source_id, uidl) DO UPDATE SET state = excluded.state
     WHERE collect_seen.state = 'large' AND excluded.state = 'collected'`,
  ).run(mark.sourceId, mark.uidl, at, mark.state).changes;
  if (changes === 0) throw new AlreadyExists(`remote message ${mark.uidl} of source ${mark.sourceId} was dealt with already`);
  const dedupe = sql<[number, string, string, string, number]>(
    `INSERT INTO collect_dedupe (source_id, key, recipient, uidl, seen_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (source_id, key, recipient) DO UPDATE SET uidl = excluded.uidl, seen_at = excluded.seen_at`,
  );
  for (const pair of mark.dedupe) dedupe.run(mark.sourceId, pair.key, pair.recipient, mark.uidl, at);
}

function checkMark(mark: CollectedMark): void {
  if (!Number.isSafeInteger(mark.sourceId) || typeof mark.uidl !== 'string' || mark.uidl.length === 0 || mark.uidl.length > 200) {
    throw new InvalidInput('malformed collected mark');
  }
  if (!(mark.at instanceof Date) || Number.isNaN(mark.at.getTime())) throw new InvalidInput('collected mark has no valid time');
}

export class SqliteCollectStore implements CollectStore {
  private readonly sql: Prepare;
  private readonly markTx: (mark: CollectedMark) => void;

  constructor(private readonly db: Database.Database) {
    this.sql = statementCache(db);
    this.markTx = db.transaction((mark: CollectedMark) => markCollected(this.sql, mark));
  }

  async addSource(kind: CollectKind, name: string, accountId: number | null, config: string): Promise<CollectSource> {
    try {
      const row = this.sql<[string, string, number | null, string, number], CollectSourceRow>(
        `INSERT INTO collect_sources (kind, name, account_id, config, created_at) VALUES (?, ?, ?, ?, ?) RETURNING ${COLLECT_SOURCE_COLUMNS}`,
      ).get(kind, name, accountId, config, Date.now())!;
      return toCollectSource(row);
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new AlreadyExists(`a ${kind} source named ${name} exists already`);
      throw e;
    }
  }

  async updateSource(id: number, config: string, enabled: boolean): Promise<void> {
    this.sql<[string, number, number]>('UPDATE collect_sources SET config = ?, enabled = ? WHERE id = ?').run(config, enabled ? 1 : 0, id);
  }

  async removeSource(id: number): Promise<void> {
    this.sql<[number]>('DELETE FROM collect_sources WHERE id = ?').run(id);
  }

  async getSource(id: number): Promise<CollectSource | null> {
    const row = this.sql<[number], CollectSourceRow>(`SELECT ${COLLECT_SOURCE_COLUMNS} FROM collect_sources WHERE id = ?`).get(id);
    return row ? toCollectSource(row) : null;
  }

  async listSources(kind?: CollectKind): Promise<CollectSource[]> {
    const rows = kind
      ? this.sql<[string], CollectSourceRow>(`SELECT ${COLLECT_SOURCE_COLUMNS} FROM collect_sources WHERE kind = ? ORDER BY name`).all(kind)
      : this.sql<[], CollectSourceRow>(`SELECT ${COLLECT_SOURCE_COLUMNS} FROM collect_sources ORDER BY kind, name`).all();
    return rows.map(toCollectSource);
  }

  async claimRun(sourceId: number, owner: string, now: Date, leaseMs: number, replacing: string | null = null): Promise<boolean> {
    const t = now.getTime();
    return (
      this.sql<[string, number, number, number, string, string | null]>(
        `UPDATE collect_sources SET run_owner = ?, run_until = ?
         WHERE id = ? AND (run_until IS NULL OR run_until <= ? OR run_owner = ? OR run_owner = ?)`,
      ).run(owner, t + leaseMs, sourceId, t, owner, replacing).changes > 0
    );
  }

  async finishRun(sourceId: number, owner: string, outcome: { at: Date; error: string | null; collected: number }): Promise<void> {
    const at = outcome.at.getTime();
    // SET expressions read the row's old values, so run_owner is compared before it is cleared.
    this.sql<[number, number | null, string | null, number, number, string, string, number]>(
      `UPDATE collect_sources SET last_run_at = ?, last_ok_at = coalesce(?, last_ok_at), last_error = ?,
         last_collected = ?, total_collected = total_collected + ?,
         run_until = CASE WHEN run_owner = ? THEN NULL ELSE run_until END,
         run_owner = CASE WHEN run_owner = ? THEN NULL ELSE run_owner END
       WHERE id = ?`,
    ).run(at, outcome.error === null ? at : null, outcome.error, outcome.collected, outcome.collected, owner, owner, sourceId);
  }

  async listSeen(sourceId: number): Promise<SeenRemoteMessage[]> {
    return this.sql<[number], { uidl: string; first_seen: number; state: SeenRemoteMessage['state'] }>(
      'SELECT uidl, first_seen, state FROM collect_seen WHERE source_id = ?',
    )
      .all(sourceId)
      .map((r) => ({ uidl: r.uidl, firstSeen: new Date(r.first_seen), state: r.state }));
  }

  async markSeen(mark: CollectedMark): Promise<boolean> {
    try {
      this.markTx(mark);
      return true;
    } catch (e) {
      if (e instanceof AlreadyExists) return false;
      throw e;
    }
  }

  async forgetSeen(sourceId: number, uidls: string[]): Promise<void> {
    const del = this.sql<[number, string]>('DELETE FROM collect_seen WHERE source_id = ? AND uidl = ?');
    this.db.transaction(() => {
      for (const uidl of uidls) del.run(sourceId, uidl);
    })();
  }

  async seenDedupe(sourceId: number, pairs: Array<{ key: string; recipient: string }>): Promise<Set<string>> {
    const found = new Set<string>();
    const get = this.sql<[number, string, string], { one: number }>(
      'SELECT 1 AS one FROM collect_dedupe WHERE source_id = ? AND key = ? AND recipient = ?',
    );
    for (const { key, recipient } of pairs) {
      if (get.get(sourceId, key, recipient) !== undefined) found.add(`${key}\n${recipient}`);
    }
    return found;
  }

  async pruneDedupe(sourceId: number, before: Date): Promise<number> {
    return this.sql<[number, number, number]>(
      `DELETE FROM collect_dedupe WHERE source_id = ? AND seen_at < ?
         AND uidl NOT IN (SELECT uidl FROM collect_seen WHERE source_id = ?)`,
    ).run(sourceId, before.getTime(), sourceId).changes;
  }
}
