/** PostgreSQL settings: chosen at init, and the store's own keys. */
import type { SettingsStore } from '../store.js';
import type { Postgres } from './connection.js';

const UPSERT = 'INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value';

/** Settings as key-value rows. */
export class PostgresSettings implements SettingsStore {
  constructor(private readonly db: Postgres) {}

  async getSettings(): Promise<Record<string, string>> {
    const rows = await this.db.rows<{ key: string; value: string }>('SELECT key, value FROM settings');
    return Object.fromEntries(rows.map((row) => [row.key, row.value]));
  }

  async putSettings(settings: Record<string, string>, unlessPresent?: string, alongside?: () => void): Promise<boolean> {
    // A write holds the writer lock (locks.ts): the look and the writes are one step for every other writer.
    return this.db.write(async (tx) => {
      if (unlessPresent !== undefined && (await tx.rows('SELECT 1 FROM settings WHERE key = $1', [unlessPresent])).length) return false;
      for (const [key, value] of Object.entries(settings)) await tx.changes(UPSERT, [key, value]);
      alongside?.();
      return true;
    });
  }
}
