/**
 * In-process word that a revocation was recorded, so that watchers act on it at once instead
 * of at their next poll. Told inside a transaction, it speaks after the current synchronous
 * work (the commit) in one microtask, however many certificates the transaction revoked; a
 * transaction that rolled back costs watchers one needless look.
 */
export class RevocationSignal {
  private readonly listeners = new Set<() => void>();
  private pending = false;

  /** Calls `listener` after each revocation; returns the unsubscription. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A revocation is being recorded: tell the listeners once the current work is done. */
  notify(): void {
    if (this.pending || this.listeners.size === 0) return;
    this.pending = true;
    queueMicrotask(() => {
      this.pending = false;
      for (const listener of this.listeners) listener();
    });
  }
}
