/**
 * Runtime settings in SQLite (SettingsStore): key → string value, changed by the CLI and the web
 * admin while the server runs, so every get reads the database.
 */
import type Database from 'better-sqlite3';
import { InvalidInput } from '../../util/errors.js';
import type { SettingsStore } from '../types.js';
import { statementCache, type Prepare } from './statements.js';

export class SqliteSettings implements SettingsStore {
  private readonly sql: Prepare;

  constructor(db: Database.Database) {
    this.sql = statementCache(db);
  }

  async get(key: string): Promise<string | null> {
    return this.sql<[string], { value: string }>('SELECT value FROM settings WHERE key = ?').get(checkKey(key))?.value ?? null;
  }

  async set(key: string, value: string): Promise<void> {
    this.sql('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(
      checkKey(key),
      value,
    );
  }

  async delete(key: string): Promise<void> {
    this.sql('DELETE FROM settings WHERE key = ?').run(checkKey(key));
  }

  async list(): Promise<Array<{ key: string; value: string }>> {
    return this.sql<[], { key: string; value: string }>('SELECT key, value FROM settings ORDER BY key').all();
  }
}

function checkKey(key: string): string {
  if (key.length === 0 || key.length > 200) throw new InvalidInput(`"${key}" is not a valid setting name`);
  return key;
}
