/** Group commit: one transaction for a turn's writes, each write rolled back alone on failure. */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/store/group-commit.js';
import { tempDir } from '../helpers/openssl.js';

function database(path = join(tempDir(), 'group.db')) {
  const db = new Database(path);
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

  it('runs a batch once, in its scope; a batch with a write that threw runs again, each write alone, outside it', async () => {
    const db = database();
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const scope: string[] = [];
    const group = new GroupCommit(db, { opened: () => scope.push('opened'), closed: () => scope.push('closed') });
    let runs = 0;
    const write = (v: string) => () => {
      runs++;
      return insert.run(v).changes;
    };
    await expect(Promise.all([group.run(write('a')), group.run(write('b'))])).resolves.toEqual([1, 1]);
    expect({ runs, scope }).toEqual({ runs: 2, scope: ['opened', 'closed'] });

    runs = 0;
    scope.length = 0;
    const results = await Promise.allSettled([
      group.run(write('c')),
      group.run(() => {
        insert.run('half-written');
        throw new Error('policy says no');
      }),
      group.run(write('d')),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    // 'c' ran, then the throw rolled the batch back whole; the second run ('c' and 'd') had no
    // scope: nothing may be carried past a savepoint's rollback.
    expect({ runs, scope }).toEqual({ runs: 3, scope: ['opened', 'closed'] });
    expect(rows(db)).toEqual(['a', 'b', 'c', 'd']);
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

  it('waits for a write lock another connection holds without blocking the thread, then commits', async () => {
    const db = database();
    const other = new Database(db.name); // another worker's connection, say
    other.exec('BEGIN IMMEDIATE');
    other.prepare('INSERT INTO t (v) VALUES (?)').run('theirs');
    const group = new GroupCommit(db);
    // SQLite's own busy wait would sleep in this thread: no timer would fire, and so the lock
    // would never be let go before the busy timeout (5 s) failed the write.
    let ticks = 0;
    const ticking = setInterval(() => ticks++, 5);
    setTimeout(() => other.exec('COMMIT'), 200);
    const started = performance.now();
    const mine = group.run(() => db.prepare('INSERT INTO t (v) VALUES (?)').run('mine').changes);
    const joined = new Promise((resolve) => setTimeout(resolve, 50)).then(() => group.run(() => db.prepare('INSERT INTO t (v) VALUES (?)').run('joined').changes));
    await expect(Promise.all([mine, joined])).resolves.toEqual([1, 1]);
    clearInterval(ticking);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(ticks).toBeGreaterThan(10);
    expect(rows(db)).toEqual(['theirs', 'mine', 'joined']);
    other.close();
  });

  it('a write lock held past the busy timeout fails the batch waiting for it, and the next batch commits', async () => {
    const db = database();
    db.pragma('busy_timeout = 100');
    const other = new Database(db.name);
    other.exec('BEGIN IMMEDIATE');
    const group = new GroupCommit(db);
    const started = performance.now();
    await expect(group.run(() => db.prepare('INSERT INTO t (v) VALUES (?)').run('refused'))).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(100);
    other.exec('COMMIT');
    await group.run(() => db.prepare('INSERT INTO t (v) VALUES (?)').run('later'));
    expect(rows(db)).toEqual(['later']);
    other.close();
  });

  it('drain commits what is queued at once', () => {
    const db = database();
    const group = new GroupCommit(db);
    void group.run(() => db.prepare('INSERT INTO t (v) VALUES (?)').run('queued'));
    group.drain();
    expect(rows(db)).toEqual(['queued']);
  });
});
