/**
 * Follows the store's revocation sequence so that a revocation made anywhere (this
 * server's API, the CLI in another process, another server on the same database) takes
 * effect here at once when the store tells of it, and within one poll interval when it
 * cannot. It also carries out the revocations that fall due with time: certificates
 * replaced by a renewal whose overlap has ended.
 */
import { systemClock, type Clock } from '../clock.js';
import type { InventoryStore, RevocationStore } from '../store/store.js';

/**
 * Polling interval, for what the store cannot tell of (SQLite written by another process,
 * lost notifications): two indexed reads per tick, so a revocation reaches every process
 * well inside 100 ms.
 */
export const REVOCATION_POLL_MS = 50;
/** Revocations timed per poll at most: a mass revocation is one event, not ten thousand reads. */
const TIMED_PER_POLL = 8;

/** Calls `onRevoked` with the serials revoked since the last look. */
export class RevocationWatcher {
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private polling = false;
  /** Told of a revocation while polling: look again when done. */
  private again = false;
  private unsubscribe: (() => void) | undefined;
  private readonly lookers = new Set<(seq: number) => void>();

  constructor(
    private readonly store: InventoryStore & RevocationStore,
    private readonly onRevoked: (serials: string[]) => void,
    private readonly onError: (error: unknown) => void,
    private readonly intervalMs = REVOCATION_POLL_MS,
    private readonly clock: Clock = systemClock,
    /** Told, per revocation enforced, the seconds since it was recorded (for metrics). */
    private readonly onPropagated?: (seconds: number) => void,
  ) {}

  /** Starts watching from the current sequence (earlier revocations are enforced per request). */
  async start(): Promise<void> {
    this.seq = await this.store.revocationSeq();
    this.unsubscribe = this.store.onRevocation(() => void this.poll().catch(this.onError));
    this.timer = setInterval(() => this.poll().catch(this.onError), this.intervalMs);
    this.timer.unref();
  }

  /** Looks once; safe to call at any time, concurrent calls collapse into one. */
  async poll(): Promise<void> {
    if (this.polling) {
      this.again = true;
      return;
    }
    this.polling = true;
    this.again = false;
    try {
      await this.store.retireOverdue('superseded', { at: this.clock.now(), actor: 'system', action: 'certificates.retire', outcome: 'ok', detail: { overlapEnded: true } });
      const seq = await this.store.revocationSeq();
      for (const looker of this.lookers) looker(seq);
      // No early return: a signal that came during this look must still get its own look below.
      if (seq !== this.seq) {
        const serials = await this.store.revokedSince(this.seq);
        this.seq = seq;
        if (serials.length) {
          this.onRevoked(serials);
          if (this.onPropagated) await this.timePropagation(serials);
        }
      }
    } finally {
      this.polling = false;
    }
    if (this.again) await this.poll();
  }

  /** Calls `listener` with the sequence after each look at the store (for caches that must follow it); returns the unsubscription. */
  onLook(listener: (seq: number) => void): () => void {
    this.lookers.add(listener);
    return () => void this.lookers.delete(listener);
  }

  /** How long the newest revocations took to reach this process: one observation per revocation time. */
  private async timePropagation(serials: readonly string[]): Promise<void> {
    const now = this.clock.now().getTime();
    const seen = new Set<number>();
    for (const serial of serials.slice(-TIMED_PER_POLL)) {
      const revokedAt = (await this.store.certificateStatus(serial))?.revokedAt?.getTime();
      if (revokedAt === undefined || seen.has(revokedAt)) continue;
      seen.add(revokedAt);
      this.onPropagated!((now - revokedAt) / 1000);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.unsubscribe?.();
  }
}
