/**
 * Lookups by key that share round trips: the keys asked for while a query is on its way,
 * or in the same turn of the event loop, go in the next query together. Under load every
 * enrollment looks its token up before anything else; one query each was most of the
 * store's round trips. A lookup still reads a snapshot taken after it was asked for, so
 * it sees every write committed before it, as a query of its own would.
 */
import { EndOfTurn } from './end-of-turn.js';

/** Reads the rows for `keys` (distinct); answers each found key's row by the key in hex. */
export type LoadMany<R> = (keys: readonly Buffer[]) => Promise<Map<string, R>>;

interface Waiting<R> {
  readonly key: Buffer;
  readonly hex: string;
  readonly waiters: { resolve(row: R | undefined): void; reject(error: unknown): void }[];
}

/** Batches lookups of one kind on one pool; at most one query of them runs at a time. */
export class LookupBatch<R> {
  /** Keys asked for and not yet sent, by their hex (the same key twice is sent once). */
  private queue = new Map<string, Waiting<R>>();
  private readonly endOfTurn = new EndOfTurn(() => void this.flush());
  private running = false;

  constructor(
    private readonly load: LoadMany<R>,
    /** Bounds one query's parameter and answer. */
    private readonly maxKeys = 256,
  ) {}

  /** The row for `key`, or undefined when there is none. A failed query fails each of its lookups alike. */
  get(key: Buffer): Promise<R | undefined> {
    return new Promise((resolve, reject) => {
      const hex = key.toString('hex');
      let waiting = this.queue.get(hex);
      if (waiting === undefined) {
        waiting = { key, hex, waiters: [] };
        this.queue.set(hex, waiting);
      }
      waiting.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  /** At the end of this turn, unless a query runs: its end sends what queued meanwhile. */
  private schedule(): void {
    if (!this.running) this.endOfTurn.request();
  }

  private async flush(): Promise<void> {
    const batch: Waiting<R>[] = [];
    for (const [hex, waiting] of this.queue) {
      if (batch.length === this.maxKeys) break;
      batch.push(waiting);
      this.queue.delete(hex);
    }
    if (batch.length === 0) return;
    this.running = true;
    try {
      const rows = await this.load(batch.map((waiting) => waiting.key));
      for (const waiting of batch) for (const waiter of waiting.waiters) waiter.resolve(rows.get(waiting.hex));
    } catch (error) {
      for (const waiting of batch) for (const waiter of waiting.waiters) waiter.reject(error);
    } finally {
      this.running = false;
      if (this.queue.size) this.schedule();
    }
  }
}
