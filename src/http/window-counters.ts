/**
 * Fixed-window counters per key (a source address, namespaced by what is counted), for the
 * rate limits. With `--workers N` the counts must be the whole server's, not one worker's,
 * or a source would get N times its budget. A round trip to the primary on every request
 * cost a fifth of the enrollment rate, so instead each worker counts on its own and tells
 * the primary, without waiting; the primary keeps the server's counts and, when a key
 * reaches the count at which it is refused, tells every worker. A source is then refused
 * everywhere within one IPC hop (well under a millisecond) of reaching its limit.
 */
import type { Worker } from 'node:cluster';

/** A key's count in its current window. */
export interface WindowCount {
  readonly count: number;
  /** Milliseconds until the window ends (0 when the key has no open window). */
  readonly resetInMs: number;
}

/** Counters that may be shared with other processes. */
export interface WindowCounters {
  /**
   * Adds `by` to `key`'s count (0 only looks), opening a window of `windowMs` if none is
   * open; `refuseAt` is the count from which the caller refuses the key.
   */
  add(key: string, by: number, windowMs: number, refuseAt: number): Promise<WindowCount>;
  /** `key`'s count in its open window as this process knows it now (0 when none is open): no waiting, no message. */
  peek(key: string): number;
}

/** Keys remembered at most; beyond it, ended windows are swept, then the least counted dropped (makeRoom). */
const MAX_KEYS = 100_000;

interface Window {
  count: number;
  readonly endsAt: number;
}

/** The counters themselves, in this process. */
export class LocalWindowCounters implements WindowCounters {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly now: () => number = Date.now) {}

  async add(key: string, by: number, windowMs: number): Promise<WindowCount> {
    return this.addNow(key, by, windowMs);
  }

  peek(key: string): number {
    // Asked on every accepted connection (the handshake guard): a lookup, nothing made.
    const window = this.windows.get(key);
    return window !== undefined && window.endsAt > this.now() ? window.count : 0;
  }

  /** `add`, synchronously. */
  addNow(key: string, by: number, windowMs: number): WindowCount {
    const now = this.now();
    let window = this.windows.get(key);
    if (window && window.endsAt <= now) {
      this.windows.delete(key);
      window = undefined;
    }
    if (!window) {
      if (by === 0) return { count: 0, resetInMs: 0 };
      if (this.windows.size >= MAX_KEYS) this.makeRoom(now);
      window = { count: 0, endsAt: now + windowMs };
      this.windows.set(key, window);
    }
    window.count += by;
    return { count: window.count, resetInMs: window.endsAt - now };
  }

  /**
   * Takes another process's count for `key`: at least `count`, in its window ending in
   * `resetInMs` (that window, not ours, says when the key may come back).
   */
  raise(key: string, count: number, resetInMs: number): void {
    const now = this.now();
    const window = this.windows.get(key);
    const ours = window && window.endsAt > now ? window.count : 0;
    if (!window && this.windows.size >= MAX_KEYS) this.makeRoom(now);
    this.windows.set(key, { count: Math.max(ours, count), endsAt: now + resetInMs });
  }

  /**
   * The table is full: drops the ended windows and, should it still be full (that many
   * sources at once), an eighth of it in one go, fewest counts first and among those the
   * newest: a flood of new sources, a request or two each, pushes out its own kind, not a
   * source near its limit or backed off long before. Dropping in batches keeps a flood from
   * costing a scan of the whole table for every new source.
   */
  private makeRoom(now: number): void {
    for (const [key, window] of this.windows) if (window.endsAt <= now) this.windows.delete(key);
    if (this.windows.size < MAX_KEYS) return;
    const drop = Math.ceil(MAX_KEYS / 8);
    const counts = [...this.windows.values()].map((window) => window.count).sort((a, b) => a - b);
    const highest = counts[drop - 1]!;
    const keys = [...this.windows.keys()];
    let dropped = 0;
    for (let i = keys.length - 1; i >= 0 && dropped < drop; i--) {
      if (this.windows.get(keys[i]!)!.count > highest) continue;
      this.windows.delete(keys[i]!);
      dropped++;
    }
  }
}

/** Worker to primary: `by` more for `key`. */
interface Counted {
  readonly type: 'imprint:counted';
  readonly key: string;
  readonly by: number;
  readonly windowMs: number;
  readonly refuseAt: number;
}

/** Primary to workers: `key` has reached its refusal count. */
interface Reached {
  readonly type: 'imprint:reached';
  readonly key: string;
  readonly count: WindowCount;
}

/** In a cluster worker: its own counts, raised by what the primary says the server counted. */
export class ClusterWindowCounters implements WindowCounters {
  private readonly counts = new LocalWindowCounters();

  constructor(private readonly channel: NodeJS.Process) {
    channel.on('message', (message: Reached) => {
      if (message?.type === 'imprint:reached') this.counts.raise(message.key, message.count.count, message.count.resetInMs);
    });
  }

  async add(key: string, by: number, windowMs: number, refuseAt: number): Promise<WindowCount> {
    // If the primary is gone, this worker is ending too (Node ends orphaned workers).
    if (by > 0) this.channel.send?.({ type: 'imprint:counted', key, by, windowMs, refuseAt } satisfies Counted, undefined, {}, () => undefined);
    return this.counts.addNow(key, by, windowMs);
  }

  peek(key: string): number {
    return this.counts.peek(key);
  }
}

/** In the primary: the server's counts, fed by every worker, announced to all when a key reaches its limit. */
export class CountingPrimary {
  private readonly counts = new LocalWindowCounters();
  private readonly workers = new Set<Worker>();

  adopt(worker: Worker): void {
    this.workers.add(worker);
    worker.once('exit', () => this.workers.delete(worker));
    worker.on('message', (message: Counted) => {
      if (message?.type !== 'imprint:counted') return;
      const count = this.counts.addNow(message.key, message.by, message.windowMs);
      // Announced once, when the limit is crossed: from then on each worker counts on from it.
      if (count.count >= message.refuseAt && count.count - message.by < message.refuseAt) {
        for (const each of this.workers) if (each.isConnected()) each.send({ type: 'imprint:reached', key: message.key, count } satisfies Reached);
      }
    });
  }
}
