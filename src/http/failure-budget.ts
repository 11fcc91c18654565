/**
 * Counts refused token attempts per source address in fixed one-minute windows. A source
 * over budget is refused before its token is even looked at, until its window ends.
 */
import type { WindowCounters } from './window-counters.js';

const WINDOW_MS = 60_000;

/** A per-source budget of failures. */
export class FailureBudget {
  constructor(
    private readonly perMinute: number,
    private readonly counters: WindowCounters,
  ) {}

  /** Seconds until `source` may try again, or 0 when it is within budget. */
  async retryAfterSeconds(source: string): Promise<number> {
    const { count, resetInMs } = await this.counters.add(this.key(source), 0, WINDOW_MS, this.perMinute);
    return count >= this.perMinute ? Math.max(1, Math.ceil(resetInMs / 1000)) : 0;
  }

  /** Counts one failure of `source`. */
  async recordFailure(source: string): Promise<void> {
    await this.counters.add(this.key(source), 1, WINDOW_MS, this.perMinute);
  }

  private key(source: string): string {
    return `failed-token:${source}`;
  }
}
