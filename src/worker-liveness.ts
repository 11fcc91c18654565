/**
 * The cluster primary's watch over its listening workers: one whose event loop has not
 * answered a ping for HUNG_MS is killed, and then replaced like any worker that dies. A
 * hung worker would otherwise hold its connections and, where the workers bind the port
 * themselves (serve.ts workersBindThePort), keep being handed its share of new ones by the
 * kernel. Nothing a worker does blocks its loop for long: building a CRL of 1,000,000
 * entries ~2 s, a mass revocation's read 0.5 s.
 */
import type { Worker } from 'node:cluster';

/** How long a worker may go without answering before it is killed. */
export const HUNG_MS = 30_000;
/** How often each watched worker is asked. */
export const PING_MS = 5_000;

/** Primary to worker, and the worker's answer from its event loop. */
export const PING = { type: 'imprint:ping' } as const;
export const PONG = { type: 'imprint:pong' } as const;

/** Answers the primary's pings: in a worker, from its event loop (a blocked loop does not answer). */
export function answerPings(channel: NodeJS.Process): void {
  channel.on('message', (message: { type?: unknown } | undefined) => {
    if (message?.type === PING.type) channel.send?.(PONG, undefined, {}, () => undefined);
  });
}

export class WorkerLiveness {
  /** When each watched worker last answered (or started being watched). */
  private readonly seen = new Map<Worker, number>();
  private timer: NodeJS.Timeout | undefined;

  /** `onHung` is told once for a worker silent for `hungMs`, which is then no longer watched. */
  constructor(
    private readonly onHung: (worker: Worker, silentMs: number) => void,
    private readonly hungMs = HUNG_MS,
    private readonly everyMs = Math.min(PING_MS, hungMs / 4),
  ) {}

  /** Watches a worker from now on, until it exits. */
  watch(worker: Worker): void {
    if (this.seen.has(worker)) return;
    this.seen.set(worker, Date.now());
    worker.on('message', (message: { type?: unknown } | undefined) => {
      if (message?.type === PONG.type && this.seen.has(worker)) this.seen.set(worker, Date.now());
    });
    worker.once('exit', () => this.seen.delete(worker));
    this.timer ??= setInterval(() => this.check(), this.everyMs).unref();
  }

  /** Stops watching every worker (the server is stopping: workers may take their time). */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.seen.clear();
  }

  private check(): void {
    const now = Date.now();
    for (const [worker, at] of this.seen) {
      if (now - at >= this.hungMs) {
        this.seen.delete(worker);
        this.onHung(worker, now - at);
      } else if (worker.isConnected()) {
        worker.send(PING, () => undefined);
      }
    }
  }
}
