/**
 * Group commit: writes that arrive in the same turn of the event loop share one
 * transaction, so concurrent enrollments pay for one fsync together instead of one each
 * (synchronous=FULL stays; DESIGN "Durability"). Each write runs in its own savepoint: one
 * that fails rolls back alone and rejects alone. A storage failure (full, busy, I/O) fails
 * the whole batch, which then committed nothing. A caller's promise settles only after the
 * commit, so nothing is answered before it is on disk.
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

/** Batches writes on one connection. */
export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;
  private readonly savepoint: (write: () => unknown) => unknown;
  private readonly batch: (items: readonly Pending[]) => Outcome[];

  constructor(
    db: Database.Database,
    /** Bounds one transaction's length, and so the wait of the first write in it. */
    private readonly maxBatch = 256,
  ) {
    // Called inside `batch`, a better-sqlite3 transaction function becomes a SAVEPOINT.
    this.savepoint = db.transaction((write: () => unknown) => write());
    const run = db.transaction((items: readonly Pending[]) =>
      items.map((item): Outcome => {
        try {
          return { ok: true, value: this.savepoint(item.write) };
        } catch (error) {
          if (storeUnavailable(error)) throw error;
          return { ok: false, error };
        }
      }),
    );
    this.batch = (items) => run.immediate(items);
  }

  /** Runs `write` in the next batch; resolves with its result once the batch committed. */
  run<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ write, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Commits everything queued now (before the connection closes). */
  drain(): void {
    while (this.queue.length) this.flush();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const items = this.queue.splice(0, this.maxBatch);
    if (items.length === 0) return;
    if (this.queue.length) this.schedule();
    let outcomes: Outcome[];
    try {
      const started = performance.now();
      outcomes = this.batch(items);
      reportCommit(started, items.length);
    } catch (error) {
      for (const item of items) item.reject(error);
      return;
    }
    items.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.error);
    });
  }
}
