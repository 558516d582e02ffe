/** A PostgreSQL database of its own for one bench run (created by the first node, dropped after). */
import { spawnSync } from 'node:child_process';

export function freshDatabase(): { url: string; drop(): void; vacuum(): void } {
  const base = new URL(process.env['FULMAR_BENCH_PG'] ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  const name = `fulmar_bench_${process.pid}_${Date.now()}`;
  base.pathname = `/${name}`;
  const psql = (database: string, sql: string): void => {
    spawnSync('psql', ['-h', base.hostname, '-p', base.port || '5432', '-U', base.username || 'postgres', '-d', database, '-c', sql], { stdio: 'ignore' });
  };
  return {
    url: base.toString(),
    vacuum: () => psql(name, 'VACUUM ANALYZE'),
    drop: () => psql('postgres', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
  };
}
