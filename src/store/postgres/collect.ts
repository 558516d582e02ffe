/**
 * The collectors' state in PostgreSQL (CollectStore); the same rules as store/sqlite/collect.ts:
 * a UIDL is marked 'collected' at most once, inside the delivery's own transaction
 * (markCollected throws AlreadyExists, which rolls the delivery back).
 */
import { AlreadyExists, InvalidInput } from '../../util/errors.js';
import type { CollectedMark, CollectKind, CollectSource, CollectStore, SeenRemoteMessage } from '../types.js';
import { COLLECT_SOURCE_COLUMNS, toCollectSource, type CollectSourceRow } from '../rows.js';
import { isUniqueViolation, type Db, type Queryable } from './db.js';

/** Records a mark in the caller's transaction; AlreadyExists when the UIDL was dealt with. */
export async function markCollected(tx: Queryable, mark: CollectedMark): Promise<void> {
  if (!Number.isSafeInteger(mark.sourceId) || typeof mark.uidl !== 'string' || mark.uidl.length === 0 || mark.uidl.length > 200) {
    throw new InvalidInput('malformed collected mark');
  }
  if (!(mark.at instanceof Date) || Number.isNaN(mark.at.getTime())) throw new InvalidInput('collected mark has no valid time');
  const at = mark.at.getTime();
  const written = await tx.query(
    `INSERT INTO collect_seen (source_id, uidl, first_seen, state) VALUES ($1, $2, $3, $4)
     ON CONFLICT (source_id, uidl) DO UPDATE SET state = excluded.state
     WHERE collect_seen.state = 'large' AND excluded.state = 'collected'
     RETURNING 1 AS one`,
    [mark.sourceId, mark.uidl, at, mark.state],
  );
  if (written.length === 0) throw new AlreadyExists(`remote message ${mark.uidl} of source ${mark.sourceId} was dealt with already`);
  for (const pair of mark.dedupe) {
    await tx.query(
      `INSERT INTO collect_dedupe (source_id, key, recipient, uidl, seen_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (source_id, key, recipient) DO UPDATE SET uidl = excluded.uidl, seen_at = excluded.seen_at`,
      [mark.sourceId, pair.key, pair.recipient, mark.uidl, at],
    );
  }
}

export class PgCollectStore implements CollectStore {
  constructor(private readonly db: Db) {}

  async addSource(kind: CollectKind, name: string, accountId: number | null, config: string): Promise<CollectSource> {
    try {
      const row = await this.db.one<CollectSourceRow>(
        `INSERT INTO collect_sources (kind, name, account_id, config, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING ${COLLECT_SOURCE_COLUMNS}`,
        [kind, name, accountId, config, Date.now()],
      );
      return toCollectSource(row!);
    } catch (e) {
      if (isUniqueViolation(e)) throw new AlreadyExists(`a ${kind} source named ${name} exists already`);
      throw e;
    }
  }

  async updateSource(id: number, config: string, enabled: boolean): Promise<void> {
    await this.db.query('UPDATE collect_sources SET config = $1, enabled = $2 WHERE id = $3', [config, enabled, id]);
  }

  async removeSource(id: number): Promise<void> {
    await this.db.query('DELETE FROM collect_sources WHERE id = $1', [id]);
  }

  async getSource(id: number): Promise<CollectSource | null> {
    const row = await this.db.one<CollectSourceRow>(`SELECT ${COLLECT_SOURCE_COLUMNS} FROM collect_sources WHERE id = $1`, [id]);
    return row ? toCollectSource(row) : null;
  }

  async listSources(kind?: CollectKind): Promise<CollectSource[]> {
    const rows = kind
      ? await this.db.query<CollectSourceRow>(`SELECT ${COLLECT_SOURCE_COLUMNS} FROM collect_sources WHERE kind = $1 ORDER BY name`, [kind])
      : await this.db.query<CollectSourceRow>(`SELECT ${COLLECT_SOURCE_COLUMNS} FROM collect_sources ORDER BY kind, name`);
    return rows.map(toCollectSource);
  }

  async claimRun(sourceId: number, owner: string, now: Date, leaseMs: number, replacing: string | null = null): Promise<boolean> {
    const t = now.getTime();
    const rows = await this.db.query(
      `UPDATE collect_sources SET run_owner = $1, run_until = $2
       WHERE id = $3 AND (run_until IS NULL OR run_until <= $4 OR run_owner = $1 OR run_owner = $5) RETURNING 1 AS one`,
      [owner, t + leaseMs, sourceId, t, replacing],
    );
    return rows.length > 0;
  }

  async finishRun(sourceId: number, owner: string, outcome: { at: Date; error: string | null; collected: number }): Promise<void> {
    const at = outcome.at.getTime();
    await this.db.query(
      `UPDATE collect_sources SET last_run_at = $1, last_ok_at = coalesce($2, last_ok_at), last_error = $3,
         last_collected = $4::integer, total_collected = total_collected + $4::integer,
         run_until = CASE WHEN run_owner = $5 THEN NULL ELSE run_until END,
         run_owner = CASE WHEN run_owner = $5 THEN NULL ELSE run_owner END
       WHERE id = $6`,
      [at, outcome.error === null ? at : null, outcome.error, outcome.collected, owner, sourceId],
    );
  }

  async listSeen(sourceId: number): Promise<SeenRemoteMessage[]> {
    const rows = await this.db.query<{ uidl: string; first_seen: number; state: SeenRemoteMessage['state'] }>(
      'SELECT uidl, first_seen, state FROM collect_seen WHERE source_id = $1',
      [sourceId],
    );
    return rows.map((r) => ({ uidl: r.uidl, firstSeen: new Date(r.first_seen), state: r.state }));
  }

  async markSeen(mark: CollectedMark): Promise<boolean> {
    try {
      await this.db.tx((tx) => markCollected(tx, mark));
      return true;
    } catch (e) {
      if (e instanceof AlreadyExists) return false;
      throw e;
    }
  }

  async forgetSeen(sourceId: number, uidls: string[]): Promise<void> {
    if (uidls.length === 0) return;
    await this.db.query('DELETE FROM collect_seen WHERE source_id = $1 AND uidl = ANY($2::text[])', [sourceId, uidls]);
  }

  async seenDedupe(sourceId: number, pairs: Array<{ key: string; recipient: string }>): Promise<Set<string>> {
    if (pairs.length === 0) return new Set();
    const rows = await this.db.query<{ key: string; recipient: string }>(
      `SELECT d.key, d.recipient FROM collect_dedupe d
       JOIN unnest($2::text[], $3::text[]) AS p(key, recipient) ON p.key = d.key AND p.recipient = d.recipient
       WHERE d.source_id = $1`,
      [sourceId, pairs.map((p) => p.key), pairs.map((p) => p.recipient)],
    );
    return new Set(rows.map((r) => `${r.key}\n${r.recipient}`));
  }

  async pruneDedupe(sourceId: number, before: Date): Promise<number> {
    const rows = await this.db.query(
      `DELETE FROM collect_dedupe WHERE source_id = $1 AND seen_at < $2
         AND uidl NOT IN (SELECT uidl FROM collect_seen WHERE source_id = $1) RETURNING 1 AS one`,
      [sourceId, before.getTime()],
    );
    return rows.length;
  }
}
