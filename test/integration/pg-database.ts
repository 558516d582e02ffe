/**
 * A PostgreSQL database of its own for one test file or bench run, on the server that
 * FULMAR_TEST_PG (tests) or FULMAR_BENCH_PG (benches) names, 127.0.0.1:5432 by default. The first
 * Fulmar node creates it; drop() removes it through the maintenance database (the URL's own
 * database need not exist: CI names a fresh one).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export interface TestDatabase {
  url: string;
  /** VACUUM ANALYZE: what autovacuum does some time after a bulk load. */
  vacuum(): Promise<void>;
  drop(): Promise<void>;
}

export function freshDatabase(prefix: string, base = process.env['FULMAR_TEST_PG'] ?? 'postgres://postgres@127.0.0.1:5432/fulmar_test'): TestDatabase {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const at = (database: string): string => {
    const u = new URL(base);
    u.pathname = `/${database}`;
    return u.toString();
  };
  const run = async (database: string, sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: at(database) });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  return {
    url: at(name),
    vacuum: () => run(name, 'VACUUM ANALYZE'),
    drop: () => run('postgres', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
  };
}
