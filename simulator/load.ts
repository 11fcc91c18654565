/**
 * Bounded load: runs tasks with a fixed number in flight, stopping at a count or a
 * deadline, and reports rate and latency percentiles. The fleet and the benchmark share it.
 */
import { ServerRefusedError } from './client.js';

/** Latency percentiles in milliseconds. */
export interface Percentiles {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
}

/** Nearest-rank percentiles of a sample. */
export function percentiles(samples: readonly number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]! : 0);
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return { p50: round(at(0.5)), p90: round(at(0.9)), p99: round(at(0.99)) };
}

/** One phase's figures. */
export interface PhaseReport {
  readonly ok: number;
  readonly failed: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly latencyMs: Percentiles;
  /** Error codes and how often each came back. */
  readonly errors: Record<string, number>;
}

/** Runs `count` tasks with at most `concurrency` in flight, stopping new ones at the deadline. */
export async function runBounded<T>(
  count: number,
  concurrency: number,
  deadline: Date,
  task: (index: number) => Promise<T>,
  onDone: (done: number) => void,
): Promise<{ results: (T | Error)[]; seconds: number }> {
  const results: (T | Error)[] = [];
  let next = 0;
  let done = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < count && Date.now() < deadline.getTime()) {
      const index = next++;
      try {
        results[index] = await task(index);
      } catch (error) {
        results[index] = error instanceof Error ? error : new Error(String(error));
      }
      onDone(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { results, seconds: (performance.now() - started) / 1000 };
}

export function phaseReport(results: ({ ms: number } | Error)[], seconds: number): PhaseReport {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  for (const result of results) {
    if (result instanceof Error) {
      const code = result instanceof ServerRefusedError ? result.code : result.message.slice(0, 80);
      errors[code] = (errors[code] ?? 0) + 1;
    } else if (result) latencies.push(result.ms);
  }
  const failed = Object.values(errors).reduce((a, b) => a + b, 0);
  return {
    ok: latencies.length,
    failed,
    seconds: Math.round(seconds * 1000) / 1000,
    perSecond: seconds > 0 ? Math.round((latencies.length / seconds) * 10) / 10 : 0,
    latencyMs: percentiles(latencies),
    errors,
  };
}

