/**
 * A value kept until the database's next commit (src/store/sqlite/until-commit.ts): read
 * again after a commit by another connection or another process, never after a look that
 * committed nothing, and on every look where there is no -shm file to watch.
 */
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { openDatabase } from '../../src/store/database.js';
import { UntilCommit } from '../../src/store/sqlite/until-commit.js';
import { tempDir } from '../helpers/openssl.js';

/** A WAL database with one counter, and a kept read of it that counts its reads. */
function counter(path: string) {
  const db = openDatabase(path);
  db.exec('CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT OR IGNORE INTO counter VALUES (1, 0)');
  const select = db.prepare('SELECT n FROM counter WHERE id = 1').pluck();
  const read = vi.fn(() => select.get() as number);
  return { db, read, kept: new UntilCommit(db, read) };
}

describe('UntilCommit', () => {
  it('reads once while nothing is committed, and again after a commit by another connection', () => {
    const path = join(tempDir(), 'kept.db');
    const { db, read, kept } = counter(path);
    expect([kept.get(), kept.get(), kept.get()]).toEqual([0, 0, 0]);
    expect(read).toHaveBeenCalledTimes(1);

    const other = new Database(path);
    // A read transaction commits nothing: still kept.
    other.prepare('SELECT n FROM counter').all();
    expect(kept.get()).toBe(0);
    expect(read).toHaveBeenCalledTimes(1);

    other.prepare('UPDATE counter SET n = n + 1').run();
    expect(kept.get()).toBe(1);
    expect(read).toHaveBeenCalledTimes(2);
    other.close();
    db.close();
  });

  it('sees a commit made by another process the moment that process is done', () => {
    const path = join(tempDir(), 'kept.db');
    const { db, read, kept } = counter(path);
    expect(kept.get()).toBe(0);
    for (let i = 1; i <= 3; i++) {
      const script = `const D = require('better-sqlite3'); const db = new D(${JSON.stringify(path)}); db.prepare('UPDATE counter SET n = n + 1').run(); db.close();`;
      const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
      expect(result.status, result.stderr).toBe(0);
      expect(kept.get()).toBe(i);
    }
    // A commit on its own connection moves it too.
    db.prepare('UPDATE counter SET n = 10').run();
    expect(kept.get()).toBe(10);
    expect(read).toHaveBeenCalledTimes(5);
    db.close();
  });

  it('reads on every look when there is no -shm file to watch (an in-memory database)', () => {
    const db = new Database(':memory:');
    const read = vi.fn(() => 7);
    const kept = new UntilCommit(db, read);
    kept.get();
    kept.get();
    expect(read).toHaveBeenCalledTimes(2);
    db.close();
  });

  it('reads again at least once a second even with nothing committed', () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    try {
      const { db, read, kept } = counter(join(tempDir(), 'kept.db'));
      kept.get();
      kept.get();
      expect(read).toHaveBeenCalledTimes(1);
      vi.advanceTimersByTime(1001);
      kept.get();
      expect(read).toHaveBeenCalledTimes(2);
      db.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('once the database is closed, a look fails as the read does', () => {
    const { db, kept } = counter(join(tempDir(), 'kept.db'));
    kept.get();
    db.close();
    expect(() => kept.get()).toThrow(/not open/);
  });
});
