/**
 * Counts refused token attempts per source (an IPv4 address, an IPv6 /64) in fixed one-minute windows. A source
 * over budget is refused before its token is even looked at, until its window ends.
 *
 * A failure is counted only once its token was looked at, which takes a database round
 * trip: attempts admitted meanwhile would all pass a check of the count alone. So once a
 * source has failed, its attempts still in flight count against it too, but never more of
 * them than it has failures: a burst overshoots the budget by at most as many attempts as
 * it failed, and one refused token from a shared address (a factory line behind NAT) holds
 * back at most one of the line's concurrent enrollments, not all beyond the budget.
 */
import { sourceKey } from './source-key.js';
import type { WindowCounters } from './window-counters.js';

const WINDOW_MS = 60_000;

/** A per-source budget of failures. */
export class FailureBudget {
  /** @param name what is counted: keys the counts, so that budgets of different names count apart. */
  constructor(
    private readonly perMinute: number,
    private readonly counters: WindowCounters,
    private readonly name = 'failed-token',
  ) {}

  /** Attempts admitted in this process whose answer has not gone out yet, per source. */
  private readonly pending = new Map<string, number>();

  /**
   * Seconds until `source` may try again, or 0 when it is within budget: the attempt is
   * then in flight until `response` closes.
   */
  async admit(address: string, response: { once(event: 'close', listener: () => void): unknown }): Promise<number> {
    const source = sourceKey(address);
    const { count, resetInMs } = await this.counters.add(this.key(source), 0, WINDOW_MS, this.perMinute);
    const inFlight = this.pending.get(source) ?? 0;
    if (count + Math.min(inFlight, count) >= this.perMinute) return Math.max(1, Math.ceil(resetInMs / 1000));
    this.pending.set(source, inFlight + 1);
    response.once('close', () => {
      const left = (this.pending.get(source) ?? 1) - 1;
      if (left > 0) this.pending.set(source, left);
      else this.pending.delete(source);
    });
    return 0;
  }

  /** Counts one failure of the source `address` is part of. */
  async recordFailure(address: string): Promise<void> {
    await this.counters.add(this.key(sourceKey(address)), 1, WINDOW_MS, this.perMinute);
  }

  private key(source: string): string {
    return `${this.name}:${source}`;
  }
}
