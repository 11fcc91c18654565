/**
 * Follows the store's revocation sequence so that a revocation made anywhere (this
 * server's API, the CLI in another process, another server on the same database) takes
 * effect here within one poll interval. It also carries out the revocations that fall
 * due with time: certificates replaced by a renewal whose overlap has ended.
 */
import { systemClock, type Clock } from '../clock.js';
import type { Store } from '../store/store.js';

/** Polling interval: well inside the one-second promise, and one indexed read per tick. */
export const REVOCATION_POLL_MS = 200;

/** Calls `onRevoked` with the serials revoked since the last look. */
export class RevocationWatcher {
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private polling = false;

  constructor(
    private readonly store: Store,
    private readonly onRevoked: (serials: string[]) => void,
    private readonly onError: (error: unknown) => void,
    private readonly intervalMs = REVOCATION_POLL_MS,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Starts watching from the current sequence (earlier revocations are enforced per request). */
  async start(): Promise<void> {
    this.seq = await this.store.revocationSeq();
    this.timer = setInterval(() => this.poll().catch(this.onError), this.intervalMs);
    this.timer.unref();
  }

  /** Looks once; safe to call at any time, concurrent calls collapse into one. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      await this.store.retireOverdue({ at: this.clock.now(), actor: 'system', action: 'certificates.retire', outcome: 'ok', detail: { overlapEnded: true } });
      const seq = await this.store.revocationSeq();
      if (seq === this.seq) return;
      const serials = await this.store.revokedSince(this.seq);
      this.seq = seq;
      if (serials.length) this.onRevoked(serials);
    } finally {
      this.polling = false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
