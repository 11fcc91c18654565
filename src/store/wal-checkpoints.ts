/**
 * Moves the WAL's pages into the SQLite file every interval, on a connection of its own, so
 * that serving threads' commits never pay for a checkpoint (one into a large file with
 * synchronous=FULL can take 100s of ms). A cluster's primary runs it (it answers no
 * request), a single serving process on a thread of its own (checkpoint-thread.ts).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';

/** The SQLite file inside a data directory. */
export const databasePath = (dataDir: string): string => join(dataDir, 'imprint.db');

/** How often: the WAL then holds about half a second of writes. */
export const CHECKPOINT_INTERVAL_MS = 500;

/** Checkpoints the database at `path` every `intervalMs` until the returned function is called. */
export function checkpointEvery(path: string, intervalMs = CHECKPOINT_INTERVAL_MS): () => void {
  const db = new Database(path, { fileMustExist: true });
  db.pragma('busy_timeout = 0'); // another process checkpointing or writing: try again next time
  db.pragma('synchronous = FULL');
  const timer = setInterval(() => {
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // busy: the next round will do it
    }
  }, intervalMs);
  // Never what keeps a process alive: a thread lives by its port, a primary by its workers.
  timer.unref();
  return () => {
    clearInterval(timer);
    db.close();
  };
}
