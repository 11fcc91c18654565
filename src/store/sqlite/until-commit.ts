/**
 * A value read from a WAL-mode SQLite database, kept until anything is committed to it by
 * any connection of any process, at the cost of one pread per look instead of a read
 * transaction (two fcntl locks, a statement step and a reset).
 *
 * Why it is exact: every commit in WAL mode ends by writing the wal-index header, the first
 * bytes of the database's -shm file, which every process on the database maps
 * (https://www.sqlite.org/walformat.html, "The WAL-Index Header": its change counter moves
 * with each transaction, its frame count with each commit). Readers start from that header,
 * so a commit is visible to anyone only once it is written; a commit answered to a client
 * (an API revoke, a CLI revoke in another process) was therefore written before the client
 * could ask anything further, and a pread made after that question arrived sees it (the
 * -shm pages are the same page cache the writers map). The header is read before the
 * value, so a value is never filed under an older header than the data it was read from;
 * a torn or changed header costs one needless re-read, never a stale value.
 *
 * The value is also re-read at least once a second, whatever the header says: the bound
 * the contract gives revocations to reach every process, should a writer ever not use the
 * -shm file (a tool opening the database in exclusive locking mode).
 */
import type Database from 'better-sqlite3';
import { closeSync, openSync, readSync } from 'node:fs';

/** The first copy of the wal-index header: written last on each commit, so it moves with every one. */
const HEADER_BYTES = 48;
/** Re-read at least this often (ms), header or not. */
const MAX_AGE_MS = 1000;

/** Keeps `read()`'s result until the database's wal-index header moves. */
export class UntilCommit<T> {
  /** The -shm file, opened on first use; null when the database has none (memory, not WAL) or it could not be read. */
  private fd: number | null | undefined;
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private readonly seen = Buffer.alloc(HEADER_BYTES);
  private value: T | undefined;
  private readAt = -Infinity;

  constructor(
    private readonly db: Database.Database,
    private readonly read: () => T,
  ) {}

  /** The value as of now: kept when nothing was committed since it was read, else read again. */
  get(): T {
    if (!this.db.open) {
      // The store is closed: the read throws as it always did, and the file is let go.
      this.close();
      return this.read();
    }
    const header = this.readHeader();
    const now = performance.now();
    if (header && now - this.readAt < MAX_AGE_MS && header.equals(this.seen)) return this.value!;
    const value = this.read();
    if (header) {
      header.copy(this.seen);
      this.value = value;
      this.readAt = now;
    }
    return value;
  }

  /** The wal-index header as it is now, or undefined when it cannot be had (then every look reads). */
  private readHeader(): Buffer | undefined {
    if (this.fd === undefined) this.fd = this.open();
    if (this.fd === null) return undefined;
    try {
      return readSync(this.fd, this.header, 0, HEADER_BYTES, 0) === HEADER_BYTES ? this.header : undefined;
    } catch {
      return undefined;
    }
  }

  private open(): number | null {
    if (this.db.memory || String(this.db.pragma('journal_mode', { simple: true })).toLowerCase() !== 'wal') return null;
    try {
      return openSync(`${this.db.name}-shm`, 'r');
    } catch {
      return null;
    }
  }

  private close(): void {
    if (typeof this.fd === 'number') closeSync(this.fd);
    this.fd = undefined;
    this.readAt = -Infinity;
  }
}
