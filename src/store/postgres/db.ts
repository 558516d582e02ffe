/**
 * The PostgreSQL connection pool and the two ways the adapter talks to it: a single statement,
 * or a transaction (retried when PostgreSQL reports a serialization failure or a deadlock, which
 * concurrent nodes can cause and which say "try again", not "this is wrong").
 *
 * Invariants
 * - bigint columns come back as JavaScript numbers (ids, sizes, ms timestamps stay far below
 *   2^53); bytea as Buffers.
 * - A transaction's function may run more than once (retry): it must not have effects outside
 *   the database before it returns.
 * - Errors of PostgreSQL keep their SQLSTATE in `code`; `isUniqueViolation` & co. name the ones
 *   the adapter maps to the store's typed errors.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { TemporaryFailure } from '../../util/errors.js';

export type Row = Record<string, unknown>;

export interface Queryable {
  query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<R[]>;
  one<R extends Row = Row>(sql: string, params?: unknown[]): Promise<R | undefined>;
}

const INT8_OID = 20;
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

export interface DbOptions {
  url: string;
  /** A schema to work in instead of public (tests give each store its own); created when absent. */
  schema?: string;
  /** Pool size; default 10. */
  max?: number;
}

export class Db implements Queryable {
  readonly pool: pg.Pool;

  private constructor(
    readonly options: DbOptions,
    pool: pg.Pool,
  ) {
    this.pool = pool;
  }

  /** Connects, creating the database (and the schema) when they do not exist yet. */
  static async open(options: DbOptions): Promise<Db> {
    await ensureDatabase(options.url);
    if (options.schema) {
      checkIdentifier(options.schema);
      const setup = new pg.Client({ connectionString: options.url });
      await setup.connect();
      try {
        await setup.query(`CREATE SCHEMA IF NOT EXISTS "${options.schema}"`);
      } finally {
        await setup.end();
      }
    }
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.max ?? 10,
      types,
      ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
    });
    // An idle client's error (the server restarted) must not crash the process; the pool
    // replaces the client.
    pool.on('error', () => {});
    return new Db(options, pool);
  }

  async query<R extends Row = Row>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.pool.query<R>(prepared(sql, params))).rows;
  }

  async one<R extends Row = Row>(sql: string, params: unknown[] = []): Promise<R | undefined> {
    return (await this.pool.query<R>(prepared(sql, params))).rows[0];
  }

  /** Runs `work` in a transaction (READ COMMITTED unless told), retrying transient conflicts. */
  async tx<T>(work: (tx: Queryable) => Promise<T>, options: { serializable?: boolean } = {}): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken = false;
      try {
        await client.query(options.serializable ? 'BEGIN ISOLATION LEVEL SERIALIZABLE' : 'BEGIN');
        const result = await work(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        if (isRetryable(error) && attempt < 8) {
          await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
          continue;
        }
        throw error;
      } finally {
        client.release(broken);
      }
    }
  }

  /** A client of its own for the caller's whole use (LISTEN); the caller ends it. */
  async dedicatedClient(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.options.url,
      types,
      ...(this.options.schema ? { options: `-c search_path=${this.options.schema}` } : {}),
    });
    await client.connect();
    return client;
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

function wrap(client: pg.PoolClient): Queryable {
  return {
    async query<R extends Row = Row>(sql: string, params: unknown[] = []): Promise<R[]> {
      return (await client.query<R>(prepared(sql, params))).rows;
    },
    async one<R extends Row = Row>(sql: string, params: unknown[] = []): Promise<R | undefined> {
      return (await client.query<R>(prepared(sql, params))).rows[0];
    },
  };
}

const statementNames = new Map<string, string>();

/**
 * Every statement of the adapter runs as a named prepared statement: PostgreSQL parses and plans
 * it once per connection instead of at every call (about half of its CPU per delivery). The
 * name is derived from the SQL text, so one text is one statement on every connection.
 */
function prepared(text: string, values: unknown[]): pg.QueryConfig {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `f_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
    if (statementNames.size < 10_000) statementNames.set(text, name);
  }
  return { name, text, values };
}

export function sqlState(error: unknown): string | null {
  return typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : null;
}

/** 40001 serialization_failure, 40P01 deadlock_detected. */
export function isRetryable(error: unknown): boolean {
  const code = sqlState(error);
  return code === '40001' || code === '40P01';
}

/** 23505 unique_violation. */
export function isUniqueViolation(error: unknown): boolean {
  return sqlState(error) === '23505';
}

/** 23503 foreign_key_violation. */
export function isForeignKeyViolation(error: unknown): boolean {
  return sqlState(error) === '23503';
}

function checkIdentifier(name: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`"${name}" is not a usable schema name`);
}

/** Creates the URL's database when it does not exist (3D000 at connect), as `fulmar` promises. */
async function ensureDatabase(url: string): Promise<void> {
  const probe = new pg.Client({ connectionString: url });
  try {
    await probe.connect();
    await probe.end();
    return;
  } catch (error) {
    await probe.end().catch(() => {});
    if (sqlState(error) !== '3D000') throw describeConnectError(url, error);
  }
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_\-.]{1,63}$/.test(name)) throw new Error(`cannot create the database "${name}": use letters, digits, _ - . only`);
  target.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: target.toString() });
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE "${name}"`);
  } catch (error) {
    // 42P04: another node created it meanwhile.
    if (sqlState(error) !== '42P04') throw describeConnectError(url, error);
  } finally {
    await admin.end().catch(() => {});
  }
}

function describeConnectError(url: string, error: unknown): Error {
  const safe = new URL(url);
  if (safe.password) safe.password = '***';
  const reason = error instanceof Error ? error.message : String(error);
  return new TemporaryFailure(`cannot use the PostgreSQL database ${safe.toString()}: ${reason}`, error);
}
