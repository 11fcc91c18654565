/**
 * Forward-only migrations: migrations/NNNN_name.sql applied in order, each in its own
 * immediate transaction that also sets PRAGMA user_version. A database newer than this
 * code is refused rather than guessed at.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { packageDirectory } from '../package-files.js';

/** One migration file. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** The migrations/ folder of the package. */
export const migrationsDirectory = (): string => packageDirectory('migrations');

/** Reads the migration files in version order, refusing gaps and duplicates. */
export function loadMigrations(directory = migrationsDirectory()): Migration[] {
  const migrations = readdirSync(directory)
    .filter((file) => /^\d{4}_[a-z0-9_]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file.slice(5, -4),
      sql: readFileSync(join(directory, file), 'utf8'),
    }));
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) throw new Error(`migration ${migration.version} is out of sequence`);
  });
  return migrations;
}

/** Applies pending migrations; returns the versions applied. */
export function migrate(db: Database.Database, migrations = loadMigrations()): number[] {
  const current = db.pragma('user_version', { simple: true }) as number;
  const latest = migrations.length;
  if (current > latest) {
    throw new Error(`database schema version ${current} is newer than this imprint (${latest}); upgrade imprint`);
  }
  const applied: number[] = [];
  for (const migration of migrations.slice(current)) {
    db.transaction(() => {
      // Another process may have migrated while we waited for the write lock.
      if ((db.pragma('user_version', { simple: true }) as number) >= migration.version) return;
      db.exec(migration.sql);
      db.pragma(`user_version = ${migration.version}`);
      applied.push(migration.version);
    }).immediate();
  }
  return applied;
}
