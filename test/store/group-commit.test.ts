/** Group commit: one transaction for a turn's writes, each write rolled back alone on failure. */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/store/group-commit.js';
import { tempDir } from '../helpers/openssl.js';

function database() {
  const db = new Database(join(tempDir(), 'group.db'));
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
  return db;
}
const rows = (db: Database.Database) => db.prepare('SELECT v FROM t ORDER BY id').all().map((row) => (row as { v: string }).v);

describe('GroupCommit', () => {
  it('commits the writes of one turn together; a failing write rejects and rolls back alone', async () => {
    const db = database();
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const group = new GroupCommit(db);
    const results = await Promise.allSettled([
      group.run(() => insert.run('a').changes),
      group.run(() => {
        insert.run('half-written');
        throw new Error('policy says no');
      }),
      group.run(() => insert.run('c').changes),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe('policy says no');
    expect(rows(db)).toEqual(['a', 'c']);
  });

  it('a storage failure rejects the whole batch and commits none of it', async () => {
    const db = database();
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true })}`);
    const group = new GroupCommit(db);
    const results = await Promise.allSettled([group.run(() => insert.run('small')), group.run(() => insert.run('x'.repeat(100_000)))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((results[1] as PromiseRejectedResult).reason.code).toBe('SQLITE_FULL');
    db.pragma('max_page_count = 4294967294');
    expect(rows(db)).toEqual([]);
  });

  it('drain commits what is queued at once', () => {
    const db = database();
    const group = new GroupCommit(db);
    void group.run(() => db.prepare('INSERT INTO t (v) VALUES (?)').run('queued'));
    group.drain();
    expect(rows(db)).toEqual(['queued']);
  });
});
