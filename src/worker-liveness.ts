/**
 * The cluster primary's watch over its listening workers: one whose event loop has not
 * answered a ping for HUNG_MS is killed, and then replaced like any worker that dies. A
 * hung worker would otherwise hold its connections and, where the workers bind the port
 * themselves (serve.ts workersBindThePort), keep being handed its share of new ones by the
 * kernel.
 *
 * Silence is measured on the monotonic clock, and a check that comes late (the primary
 * itself stopped or starved, the machine suspended) starts every worker's count again: the
 * primary's pause is not its workers' silence. At most one worker is killed per
 * KILL_INTERVAL_MS: a job that blocks a worker longer than HUNG_MS would be run again by its
 * replacement, and killing that one too would be a loop that never finishes the job.
 */
import type { Worker } from 'node:cluster';
import { performance } from 'node:perf_hooks';

/** How long a worker may go without answering before it is killed. */
export const HUNG_MS = 30_000;
/** How often each watched worker is asked. */
export const PING_MS = 5_000;
/** At most one kill this often. */
export const KILL_INTERVAL_MS = 10 * 60_000;

/** Primary to worker, and the worker's answer from its event loop. */
export const PING = { type: 'imprint:ping' } as const;
export const PONG = { type: 'imprint:pong' } as const;

/** Answers the primary's pings: in a worker, from its event loop (a blocked loop does not answer). */
export function answerPings(channel: NodeJS.Process): void {
  channel.on('message', (message: { type?: unknown } | undefined) => {
    if (message?.type === PING.type) channel.send?.(PONG, undefined, {}, () => undefined);
  });
}

/** What the watch needs of a cluster worker. */
export interface WatchedWorker {
  on(event: 'message', listener: (message: { type?: unknown } | undefined) => void): unknown;
  once(event: 'exit', listener: () => void): unknown;
  send(message: typeof PING, callback: () => void): unknown;
  isConnected(): boolean;
  isDead(): boolean;
}

export interface LivenessOptions {
  readonly hungMs?: number | undefined;
  readonly now?: (() => number) | undefined;
}

export class WorkerLiveness<W extends WatchedWorker = Worker> {
  /** When each watched worker last answered (or started being watched, or the count started again). */
  private readonly seen = new Map<W, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly hungMs: number;
  private readonly everyMs: number;
  private readonly now: () => number;
  private lastCheck: number;
  private lastKill = -Infinity;

  /** `onHung` is told of a worker silent for the hung time, which is then no longer watched. */
  constructor(
    private readonly onHung: (worker: W, silentMs: number) => void,
    options: LivenessOptions = {},
  ) {
    this.hungMs = options.hungMs ?? HUNG_MS;
    this.everyMs = Math.min(PING_MS, this.hungMs / 4);
    this.now = options.now ?? (() => performance.now());
    this.lastCheck = this.now();
  }

  /** Watches a worker from now on, until it exits. */
  watch(worker: W): void {
    if (this.seen.has(worker) || worker.isDead()) return;
    this.seen.set(worker, this.now());
    worker.on('message', (message: { type?: unknown } | undefined) => {
      if (message?.type === PONG.type && this.seen.has(worker)) this.seen.set(worker, this.now());
    });
    worker.once('exit', () => this.seen.delete(worker));
    if (this.timer === undefined) {
      this.lastCheck = this.now();
      this.timer = setInterval(() => this.check(), this.everyMs).unref();
    }
  }

  /** Stops watching every worker (the server is stopping: workers may take their time). */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.seen.clear();
  }

  /** One round: kills at most one worker silent for the hung time, and asks the others. */
  check(): void {
    const now = this.now();
    const late = now - this.lastCheck > 2 * this.everyMs;
    this.lastCheck = now;
    for (const [worker, at] of this.seen) {
      if (late) this.seen.set(worker, now);
      else if (now - at >= this.hungMs && now - this.lastKill >= KILL_INTERVAL_MS) {
        this.seen.delete(worker);
        this.lastKill = now;
        this.onHung(worker, now - at);
        continue;
      }
      if (worker.isConnected()) worker.send(PING, () => undefined);
    }
  }
}
