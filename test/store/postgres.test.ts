// Runs the store contract on PostgreSQL (127.0.0.1:5432 unless FULMAR_TEST_PG says otherwise):
// each test gets a schema of its own in the database fulmar_test, dropped after it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { openPostgresStore } from '../../src/store/postgres/pg-store.js';
import { runStoreContract } from './contract.js';

export const PG_URL = process.env['FULMAR_TEST_PG'] ?? 'postgres://postgres@127.0.0.1:5432/fulmar_test';
const MODULE = pathToFileURL(new URL('../../src/store/postgres/pg-store.ts', import.meta.url).pathname).href;

runStoreContract('postgres', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'fulmar-pgstore-'));
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const store = await openPostgresStore({ url: PG_URL, dataDir, schema, poolSize: 4 });
  const count = async (sql: string): Promise<number> => Number((await store.db.one<{ n: number }>(sql))?.n ?? 0);
  return {
    store,
    async cleanup() {
      await store.close();
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
      await rm(dataDir, { recursive: true, force: true });
    },
    childStoreExpression: `import(${JSON.stringify(MODULE)}).then((m) => m.openPostgresStore({ url: ${JSON.stringify(PG_URL)}, dataDir: ${JSON.stringify(dataDir)}, schema: ${JSON.stringify(schema)}, poolSize: 2 }))`,
    storedBlobCount: () => count('SELECT count(*) AS n FROM blob_objects'),
  };
});
