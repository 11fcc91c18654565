/** The SQLite store's copy and close, and the thread that checkpoints its WAL. */
import Database from 'better-sqlite3';
import { once } from 'node:events';
import { closeSync, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createTempBeside } from '../../files.js';
import type { GroupCommit } from '../group-commit.js';
import type { StoreLifecycle } from '../store.js';
import { CHECKPOINT_INTERVAL_MS } from '../wal-checkpoints.js';

/** Backup and close of one connection. */
export class SqliteLifecycle implements StoreLifecycle {
  private readonly checkpointer: Worker | undefined;

  constructor(
    private readonly db: Database.Database,
    private readonly groupCommit: GroupCommit,
    /** The database file, when a thread of its own should checkpoint it (a serving process). */
    checkpointPath: string | undefined,
  ) {
    if (checkpointPath !== undefined) this.checkpointer = startCheckpointer(db, checkpointPath);
  }

  async backup(file: string): Promise<{ readonly bytes: number }> {
    if (existsSync(file)) throw new Error(`${file} already exists`);
    // Token hashes and the audit trail are nobody else's business: the copy goes into a
    // fresh 0600 file nobody else can have prepared.
    const { temp, fd } = createTempBeside(file, 0o600);
    closeSync(fd);
    try {
      // The backup API copies page by page and restarts on concurrent writes from other
      // connections, so the copy is one consistent snapshot.
      await this.db.backup(temp);
      // The copy is a WAL database like its source; as a rollback-journal file it is one
      // self-contained file, and closing it leaves no -wal or -shm beside it.
      const copy = new Database(temp);
      try {
        copy.pragma('journal_mode = DELETE');
        const [check] = copy.pragma('integrity_check') as { integrity_check: string }[];
        if (check?.integrity_check !== 'ok') throw new Error(`backup failed its integrity check: ${check?.integrity_check}`);
      } finally {
        copy.close();
      }
      renameSync(temp, file);
      return { bytes: statSync(file).size };
    } catch (error) {
      for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${temp}${suffix}`, { force: true });
      throw error;
    }
  }

  async close(): Promise<void> {
    this.groupCommit.drain();
    if (this.checkpointer) {
      // Unref'd so that it never keeps a process alive, but close() waits for it: with
      // nothing else left (a server that failed to start), the event loop would end the
      // process mid-close, exit code 0, before the caller could report anything.
      this.checkpointer.ref();
      const exited = once(this.checkpointer, 'exit');
      this.checkpointer.postMessage('stop');
      await exited;
    }
    this.db.close();
  }
}

/**
 * WAL pages (4 KB) after which a commit checkpoints itself: only should the checkpointer
 * fall 80 MB behind, or be gone (a cluster's primary that could not open the database).
 */
const COMMIT_CHECKPOINT_PAGES = 20_000;

/** A serving connection's commits leave checkpoints to a checkpointer, in this process or another. */
export function leaveCheckpointsToCheckpointer(db: Database.Database): void {
  db.pragma(`wal_autocheckpoint = ${COMMIT_CHECKPOINT_PAGES}`);
}

/**
 * Moves WAL checkpoints off this thread (a serving process): a thread of its own
 * checkpoints every half second. Run from TypeScript sources (tests in-process), the
 * compiled thread is not there and commits checkpoint as SQLite does by default.
 */
function startCheckpointer(db: Database.Database, path: string): Worker | undefined {
  const script = new URL('../checkpoint-thread.js', import.meta.url);
  if (!existsSync(fileURLToPath(script))) return undefined;
  leaveCheckpointsToCheckpointer(db);
  const checkpointer = new Worker(script, { workerData: { path, intervalMs: CHECKPOINT_INTERVAL_MS } });
  checkpointer.unref();
  return checkpointer;
}
