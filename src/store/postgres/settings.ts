/** Runtime settings in PostgreSQL (SettingsStore): key → string value, read at each use. */
import { InvalidInput } from '../../util/errors.js';
import type { SettingsStore } from '../types.js';
import type { Db } from './db.js';

export class PgSettings implements SettingsStore {
  constructor(private readonly db: Db) {}

  async get(key: string): Promise<string | null> {
    return (await this.db.one<{ value: string }>('SELECT value FROM settings WHERE key = $1', [checkKey(key)]))?.value ?? null;
  }

  async set(key: string, value: string): Promise<void> {
    await this.db.query('INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [checkKey(key), value]);
  }

  async delete(key: string): Promise<void> {
    await this.db.query('DELETE FROM settings WHERE key = $1', [checkKey(key)]);
  }

  async list(): Promise<Array<{ key: string; value: string }>> {
    return this.db.query<{ key: string; value: string }>('SELECT key, value FROM settings ORDER BY key');
  }
}

function checkKey(key: string): string {
  if (key.length === 0 || key.length > 200) throw new InvalidInput(`"${key}" is not a valid setting name`);
  return key;
}
