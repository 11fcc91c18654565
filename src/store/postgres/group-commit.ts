/**
 * Group commit on PostgreSQL: the writes that come in floods (enrollments, renewals,
 * refusals' audit events) and arrive while a batch commits, or in the same turn of the
 * event loop, share one transaction. Every write transaction holds the writer lock to its
 * commit (locks.ts), so writes serialise at commit latency; batching them is what keeps
 * enrollments from paying a commit each. synchronous_commit stays at the server's
 * setting (on by default): a commit is durable when it returns (DESIGN "Durability").
 *
 * Each write runs in its own savepoint: one that fails rolls back alone and rejects
 * alone. Writes of one kind that can run as one statement (a Bulk: enrollments) run
 * together instead, where the first of them was queued: one round trip for all of them
 * while the writer lock is held, not several each (any order of a batch's writes is one
 * they could have arrived in: none is answered before COMMIT). A batch of one such kind
 * and nothing else (enrollments under load) can be one statement in a transaction of its
 * own: BEGIN, lock, writes and COMMIT in one round trip. A failure of the connection
 * or the database fails the whole batch, which then committed nothing that anyone is told of. A caller's promise settles only after COMMIT
 * returned. One batch at a time per instance: a second would only wait for the lock.
 */
import type { Postgres } from './connection.js';
import type { Outcome, Transaction } from './transaction.js';
import { reportCommit } from '../group-commit.js';
import { EndOfTurn } from './end-of-turn.js';

/** Writes of one kind that run together, as one write each would; outcomes in the items' order. */
export interface Bulk<I, T> {
  /** Runs `items` in their order inside `tx` (the bulk decides how one that fails is kept from failing the others). */
  inTransaction(tx: Transaction, items: readonly I[]): Promise<Outcome<T>[]>;
  /**
   * Runs `items` as a transaction of their own, writer lock to commit in one round trip:
   * for a batch of nothing else. Undefined when that committed nothing and they must run
   * in a transaction after all.
   */
  alone?(db: Postgres, items: readonly I[]): Promise<Outcome<T>[] | undefined>;
}

type BulkWork = { readonly bulk: Bulk<unknown, unknown>; readonly item: unknown };
type Work = { readonly write: (tx: Transaction) => Promise<unknown> } | BulkWork;

type Pending = Work & {
  resolve(value: unknown): void;
  reject(error: unknown): void;
};

/** Batches writes into shared transactions on one pool. */
export class GroupCommit {
  private queue: Pending[] = [];
  private readonly endOfTurn = new EndOfTurn(() => void this.flush());
  private running: Promise<void> | undefined;

  constructor(
    private readonly db: Postgres,
    /**
     * Bounds one transaction's length, and so the wait of the first write in it. At most
     * 64: each write's savepoint is a subtransaction, and past 64 in one transaction
     * PostgreSQL spills their ids out of shared memory, which slows every other session's
     * snapshots while it runs.
     */
    private readonly maxBatch = 64,
  ) {}

  /** Runs `write` in the next batch; resolves with its result once the batch committed. */
  run<T>(write: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.enqueue({ write });
  }

  /** Runs `item` through `bulk` with the other items of that bulk in the next batch. */
  runBulk<I, T>(bulk: Bulk<I, T>, item: I): Promise<T> {
    return this.enqueue({ bulk: bulk as Bulk<unknown, unknown>, item });
  }

  private enqueue<T>(work: Work): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ ...work, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Commits everything queued now (before the pool closes). */
  async drain(): Promise<void> {
    while (this.running || this.queue.length) await this.flush();
  }

  private schedule(): void {
    if (!this.running) this.endOfTurn.request();
  }

  /** Starts a batch of what is queued, unless one is running; resolves when it ends. */
  private flush(): Promise<void> {
    if (this.running) return this.running;
    const items = this.queue.splice(0, this.maxBatch);
    if (items.length === 0) return Promise.resolve();
    this.running = this.commit(items).finally(() => {
      this.running = undefined;
      if (this.queue.length) this.schedule();
    });
    return this.running;
  }

  private async commit(items: readonly Pending[]): Promise<void> {
    let outcomes: Map<Pending, Outcome<unknown>>;
    try {
      const started = performance.now();
      outcomes = (await this.alone(items)) ?? (await this.inTransaction(items));
      reportCommit(started, items.length);
    } catch (error) {
      for (const item of items) item.reject(error);
      return;
    }
    for (const item of items) {
      const outcome = outcomes.get(item)!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.error);
    }
  }

  /** A batch of one bulk's items and nothing else, run alone when that bulk can: see Bulk.alone. */
  private async alone(items: readonly Pending[]): Promise<Map<Pending, Outcome<unknown>> | undefined> {
    const first = items[0]!;
    if (!('bulk' in first) || !first.bulk.alone || !items.every((item) => 'bulk' in item && item.bulk === first.bulk)) return undefined;
    const done = await first.bulk.alone(this.db, items.map((item) => (item as BulkWork).item));
    return done && new Map(items.map((item, i) => [item, done[i]!]));
  }

  /** The batch in one write transaction: each write in a savepoint, each bulk's items together where the first of them was queued. */
  private async inTransaction(items: readonly Pending[]): Promise<Map<Pending, Outcome<unknown>>> {
    const outcomes = new Map<Pending, Outcome<unknown>>();
    await this.db.write(async (tx) => {
      for (const item of items) {
        if ('write' in item) outcomes.set(item, await tx.attempt(item.write));
        else if (!outcomes.has(item)) {
          const { bulk } = item;
          const together = items.filter((other): other is Pending & BulkWork => 'bulk' in other && other.bulk === bulk);
          const done = await bulk.inTransaction(tx, together.map((other) => other.item));
          together.forEach((other, i) => outcomes.set(other, done[i]!));
        }
      }
    });
    return outcomes;
  }
}
