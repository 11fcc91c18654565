/** SQLite settings: key and value text. */
import type Database from 'better-sqlite3';
import type { SettingsStore } from '../store.js';

/** The settings table. */
export class SqliteSettings implements SettingsStore {
  private readonly statements;

  constructor(private readonly db: Database.Database) {
    this.statements = {
      settings: db.prepare('SELECT key, value FROM settings'),
      putSetting: db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      present: db.prepare('SELECT 1 FROM settings WHERE key = ?'),
    };
  }

  async getSettings(): Promise<Record<string, string>> {
    const rows = this.statements.settings.all() as { key: string; value: string }[];
    return Object.fromEntries(rows.map((row) => [row.key, row.value]));
  }

  async putSettings(settings: Record<string, string>, unlessPresent?: string, alongside?: () => void): Promise<boolean> {
    return this.db
      .transaction(() => {
        if (unlessPresent !== undefined && this.statements.present.get(unlessPresent)) return false;
        for (const [key, value] of Object.entries(settings)) this.statements.putSetting.run(key, value);
        alongside?.();
        return true;
      })
      .immediate();
  }
}
