/**
 * Runs in a worker thread: moves the WAL's pages into the database file every interval,
 * on a connection of its own, so that the serving thread's commits never pay for a
 * checkpoint (a checkpoint into a large file with synchronous=FULL can take 100s of ms).
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

const { path, intervalMs } = workerData as { path: string; intervalMs: number };
const db = new Database(path);
db.pragma('busy_timeout = 0'); // another process checkpointing or writing: try again next time
db.pragma('synchronous = FULL');

const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // busy: the next round will do it
  }
}, intervalMs);

parentPort?.on('message', (message) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  db.close();
  process.exit(0);
});
