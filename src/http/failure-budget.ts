/**
 * Counts refused token attempts per source address in fixed one-minute windows. A source
 * over budget is refused before its token is even looked at, until its window ends.
 */

const WINDOW_MS = 60_000;
/** Sources remembered at most; beyond it, ended windows are swept, then the oldest dropped. */
const MAX_SOURCES = 100_000;

interface Window {
  count: number;
  readonly endsAt: number;
}

/** A per-source budget of failures. */
export class FailureBudget {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until `source` may try again, or 0 when it is within budget. */
  retryAfterSeconds(source: string): number {
    const window = this.windows.get(source);
    if (!window) return 0;
    const left = window.endsAt - this.now();
    if (left <= 0) {
      this.windows.delete(source);
      return 0;
    }
    return window.count >= this.perMinute ? Math.ceil(left / 1000) : 0;
  }

  /** Counts one failure of `source`. */
  recordFailure(source: string): void {
    const now = this.now();
    const window = this.windows.get(source);
    if (window && window.endsAt > now) {
      window.count++;
      return;
    }
    if (this.windows.size >= MAX_SOURCES) this.makeRoom(now);
    this.windows.set(source, { count: 1, endsAt: now + WINDOW_MS });
  }

  private makeRoom(now: number): void {
    for (const [source, window] of this.windows) if (window.endsAt <= now) this.windows.delete(source);
    // Still full: drop the oldest (Map iterates in insertion order).
    const excess = this.windows.size - MAX_SOURCES + 1;
    let dropped = 0;
    for (const source of this.windows.keys()) {
      if (dropped++ >= excess) break;
      this.windows.delete(source);
    }
  }
}
