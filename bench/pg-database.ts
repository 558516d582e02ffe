/** A PostgreSQL database of its own for one bench run (created by the first node, dropped after). */
import { spawnSync } from 'node:child_process';

export function freshDatabase(): { url: string; drop(): void } {
  const base = new URL(process.env['FULMAR_BENCH_PG'] ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  const name = `fulmar_bench_${process.pid}_${Date.now()}`;
  base.pathname = `/${name}`;
  return {
    url: base.toString(),
    drop: () => {
      spawnSync('psql', ['-h', base.hostname, '-p', base.port || '5432', '-U', base.username || 'postgres', '-d', 'postgres', '-c', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`], { stdio: 'ignore' });
    },
  };
}
