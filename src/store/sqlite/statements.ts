/**
 * Prepared statements compiled once per connection and reused (keyed by SQL text). This caches
 * compiled SQL, never data: every execution still reads the database.
 */
import type Database from 'better-sqlite3';

export type Prepare = <P extends unknown[] = unknown[], R = unknown>(sql: string) => Database.Statement<P, R>;

export function statementCache(db: Database.Database): Prepare {
  const cache = new Map<string, Database.Statement<unknown[], unknown>>();
  return <P extends unknown[] = unknown[], R = unknown>(sql: string): Database.Statement<P, R> => {
    let stmt = cache.get(sql);
    if (stmt === undefined) {
      stmt = db.prepare(sql);
      cache.set(sql, stmt);
    }
    return stmt as unknown as Database.Statement<P, R>;
  };
}
