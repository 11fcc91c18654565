/**
 * Group commit: writes that arrive in the same turn of the event loop share one
 * transaction, so concurrent enrollments pay for one fsync together instead of one each
 * (synchronous=FULL stays; DESIGN "Durability"). A write that throws rolls back alone and
 * rejects alone. A storage failure (full, busy, I/O) fails the whole batch, which then
 * committed nothing. A caller's promise settles only after the commit, so nothing is
 * answered before it is on disk.
 *
 * The writes of a batch run one after another with no savepoint each: a savepoint costs two
 * statements, and SQLite copies every page a write touches to the savepoint's journal first
 * (an enrollment touches ~17). The store's writes check before they write, so one that
 * refuses returns its refusal having written nothing. Should one throw anyway (a constraint,
 * a bug), having perhaps written half of itself, the whole transaction is rolled back and
 * the same writes run again first thing, each in a savepoint of its own, so that it fails
 * alone.
 *
 * While another connection holds the write lock (another worker of a cluster committing,
 * the CLI), the batch waits for it without blocking this thread. SQLite's own busy wait
 * sleeps in the thread, 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms in turn, checking
 * the lock only between sleeps: a worker that found the other worker committing served
 * nothing while it slept, and overslept the few ms that commit took. Traced under
 * enrollment load with two workers, those sleeps were ~6 ms per batch on average, often
 * 78 ms (the first seven steps) and once 347 ms, while the other worker committed a dozen
 * batches between two looks; every request on the sleeping worker waited as long. Here a
 * batch that finds the lock taken looks again a millisecond later, and the thread serves
 * requests (which join the batch) meanwhile.
 */
import type Database from 'better-sqlite3';
import { storeUnavailable } from './failures.js';

interface Pending {
  readonly write: () => unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** Told how long each committed batch took, in seconds, and how many writes it held (for metrics). */
export type CommitObserver = (seconds: number, writes: number) => void;

let commitObserver: CommitObserver | undefined;

/** Sets the process's commit observer (one per process: metrics are per process). */
export function observeCommits(observer: CommitObserver | undefined): void {
  commitObserver = observer;
}

/** Tells the observer of a committed batch: `started` is its performance.now() at the start. */
export function reportCommit(started: number, writes: number): void {
  commitObserver?.((performance.now() - started) / 1000, writes);
}

type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

/**
 * Told when a batch's transaction begins and ends, so that its writes may carry what they
 * read under the write lock from one to the next (the audit chain's head) and no further.
 */
export interface BatchScope {
  /** The batch's transaction holds the write lock, and its writes run without savepoints. */
  opened(): void;
  /** The transaction is over (committed or rolled back): anything carried is stale. */
  closed(): void;
}

/** How long a batch that found the write lock taken waits before it tries again (ms). */
const LOCK_RETRY_MS = 1;

const isBusy = (error: unknown) => String((error as { code?: unknown } | null)?.code).startsWith('SQLITE_BUSY');

/** Batches writes on one connection. */
export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;
  /** When the batch now waiting for the write lock first found it taken (performance.now()). */
  private lockedSince: number | undefined;
  /** Opens the batch's transaction: waiting for the write lock up to the connection's busy timeout, or not at all (then it throws SQLITE_BUSY). */
  private readonly begin: (wait: boolean) => void;
  /**
   * Runs the batch in the open transaction and commits it, each write in a savepoint when
   * `isolated`; rolls back and throws on a storage failure; rolls back and returns undefined
   * when a write threw outside a savepoint.
   */
  private readonly commit: (items: readonly Pending[], isolated: boolean) => Outcome[] | undefined;
  /** How many writes at the head of the queue run each in a savepoint (one of them threw last time). */
  private isolate = 0;
  /** How long a batch may wait for the write lock in all (ms): the connection's busy timeout. */
  private readonly maxLockWaitMs: number;

  constructor(
    db: Database.Database,
    scope?: BatchScope,
    /** Bounds one transaction's length, and so the wait of the first write in it. */
    private readonly maxBatch = 256,
  ) {
    this.maxLockWaitMs = Number(db.pragma('busy_timeout', { simple: true }));
    const beginImmediate = db.prepare('BEGIN IMMEDIATE');
    this.begin = (wait) => {
      if (wait) return void beginImmediate.run();
      // Set anew each time: SQLite applies a busy_timeout pragma when it is prepared, not when run.
      db.pragma('busy_timeout = 0');
      try {
        beginImmediate.run();
      } finally {
        db.pragma(`busy_timeout = ${this.maxLockWaitMs}`);
      }
    };
    // Called inside the open transaction, a better-sqlite3 transaction function is a SAVEPOINT.
    const savepoint = db.transaction((write: () => unknown) => write());
    const isolated = (item: Pending): Outcome => {
      try {
        return { ok: true, value: savepoint(item.write) };
      } catch (error) {
        if (storeUnavailable(error)) throw error;
        return { ok: false, error };
      }
    };
    const together = (items: readonly Pending[]): Outcome[] | undefined => {
      const outcomes: Outcome[] = [];
      for (const item of items) {
        try {
          outcomes.push({ ok: true, value: item.write() });
        } catch (error) {
          if (storeUnavailable(error)) throw error;
          return undefined;
        }
      }
      return outcomes;
    };
    const commit = db.prepare('COMMIT');
    const rollback = db.prepare('ROLLBACK');
    this.commit = (items, isolate) => {
      try {
        if (!isolate) scope?.opened();
        const outcomes = isolate ? items.map(isolated) : together(items);
        (outcomes ? commit : rollback).run();
        return outcomes;
      } catch (error) {
        // A failed COMMIT may have rolled back already (an I/O error) or not.
        if (db.inTransaction) rollback.run();
        throw error;
      } finally {
        if (!isolate) scope?.closed();
      }
    };
  }

  /** Runs `write` in the next batch; resolves with its result once the batch committed. */
  run<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ write, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Commits everything queued now (before the connection closes), waiting for the write lock in this thread. */
  drain(): void {
    while (this.queue.length) this.flush(true);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Commits the next batch; `wait`: take the write lock even if that blocks this thread (drain). */
  private flush(wait = false): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const started = performance.now();
    try {
      this.begin(wait);
    } catch (error) {
      this.lockedSince ??= started;
      if (!wait && isBusy(error) && started - this.lockedSince < this.maxLockWaitMs) {
        // Another connection is committing: try again shortly; meanwhile more writes join the batch.
        this.scheduled = true;
        setTimeout(() => this.flush(), LOCK_RETRY_MS);
        return;
      }
      this.lockedSince = undefined;
      this.isolate = 0;
      this.settle(this.queue.splice(0, this.maxBatch), error);
      return;
    }
    this.lockedSince = undefined;
    const isolated = this.isolate > 0;
    const items = this.queue.splice(0, isolated ? this.isolate : this.maxBatch);
    this.isolate = 0;
    let outcomes: Outcome[] | undefined;
    try {
      outcomes = this.commit(items, isolated);
      if (outcomes) reportCommit(started, items.length);
    } catch (error) {
      this.settle(items, error);
      return;
    }
    if (!outcomes) {
      // A write threw and the batch was rolled back: the same writes again, each in a savepoint.
      this.queue.unshift(...items);
      this.isolate = items.length;
      this.schedule();
      return;
    }
    if (this.queue.length) this.schedule();
    items.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.error);
    });
  }

  /** Rejects a batch that committed nothing, and goes on with the rest of the queue. */
  private settle(items: readonly Pending[], error: unknown): void {
    for (const item of items) item.reject(error);
    if (this.queue.length) this.schedule();
  }
}
