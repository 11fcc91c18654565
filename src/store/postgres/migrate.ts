/**
 * Forward-only migrations for PostgreSQL: migrations/postgres/NNNN_name.sql applied in
 * order, each in its own transaction that also records it in schema_version. Instances
 * starting at once take turns under an advisory lock (locks.ts); a database newer than
 * this code is refused rather than guessed at.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type pg from 'pg';
import { CURSOR_KEY_SETTING } from '../cursor.js';
import { loadMigrations, migrationsDirectory, type Migration } from '../migrate.js';
import { LOCK, LOCK_NAMESPACE } from './locks.js';

/** This package's PostgreSQL migrations. */
export function postgresMigrations(): Migration[] {
  return loadMigrations(join(migrationsDirectory(), 'postgres'));
}

/** Applies pending migrations on `client` (a session of its own); returns the versions applied. */
export async function migrate(client: pg.ClientBase, migrations = postgresMigrations()): Promise<number[]> {
  // Creating indexes on a large fleet may take longer than a request's statement timeout.
  await client.query('SET statement_timeout = 0');
  await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, LOCK.migration]);
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS schema_version (
                          version    INTEGER PRIMARY KEY,
                          name       TEXT NOT NULL,
                          applied_at BIGINT NOT NULL)`);
    const { rows } = await client.query<{ version: number | null }>('SELECT max(version) AS version FROM schema_version');
    const current = rows[0]?.version ?? 0;
    if (current > migrations.length) {
      throw new Error(`database schema version ${current} is newer than this imprint (${migrations.length}); upgrade imprint`);
    }
    const applied: number[] = [];
    for (const migration of migrations.slice(current)) {
      await client.query('BEGIN');
      try {
        await client.query(migration.sql);
        await client.query('INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)', [migration.version, migration.name, Date.now()]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
      applied.push(migration.version);
    }
    // The key that authenticates listing cursors (cursor.ts), made here rather than in SQL
    // (gen_random_bytes needs pgcrypto); kept when there is one.
    await client.query('INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', [
      CURSOR_KEY_SETTING,
      randomBytes(32).toString('hex'),
    ]);
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_NAMESPACE, LOCK.migration]);
  }
}
