/** Opens the SQLite database with the settings imprint relies on. */
import Database from 'better-sqlite3';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

/** How commits reach the disk. */
export type Durability = 'full' | 'normal';

/**
 * Opens (creating if needed) the database: WAL so readers never block the writer,
 * synchronous=FULL so a commit survives power loss (DESIGN "Durability"), foreign keys on,
 * a busy timeout so the CLI and the server can write the same file, and temporary
 * storage (savepoint journals) in memory.
 */
export function openDatabase(path: string, durability: Durability = 'full'): Database.Database {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // Token hashes, the audit trail and the cursor key are nobody else's business, even in a
  // data directory that others can list: a new file is 0600 (SQLite gives its -wal and
  // -shm the same mode). An existing file keeps the mode its operator chose.
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  // Savepoint journals in memory: group commit runs each write in a savepoint, and an
  // enrollment dirties enough pages that SQLite spilled that journal to a temporary file,
  // a pwrite per page (~7% of an enrollment's CPU). It only ever rolls back a savepoint;
  // the WAL alone is what makes a commit durable.
  db.pragma('temp_store = MEMORY');
  return db;
}
