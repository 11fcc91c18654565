/** Forward-only migrations: applied once, in order, and a newer database is refused. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/store/database.js';
import { loadMigrations, migrate } from '../../src/store/migrate.js';
import { tempDir } from '../helpers/openssl.js';

describe('migrate', () => {
  it('applies every migration once and records the version', () => {
    const db = openDatabase(join(tempDir(), 'a.db'));
    const migrations = loadMigrations();
    expect(migrate(db)).toEqual(migrations.map((m) => m.version));
    expect(migrate(db)).toEqual([]);
    expect(db.pragma('user_version', { simple: true })).toBe(migrations.length);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    db.close();
  });

  it('refuses a database newer than the code', () => {
    const db = openDatabase(join(tempDir(), 'b.db'));
    db.pragma('user_version = 999');
    expect(() => migrate(db)).toThrow(/newer than this imprint/);
    db.close();
  });

  it('rolls back a failing migration whole', () => {
    const db = openDatabase(join(tempDir(), 'c.db'));
    const broken = [{ version: 1, name: 'broken', sql: 'CREATE TABLE a (x INTEGER); CREATE TABLE a (y INTEGER);' }];
    expect(() => migrate(db, broken)).toThrow();
    expect(db.pragma('user_version', { simple: true })).toBe(0);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'a'").all()).toEqual([]);
    db.close();
  });
});
