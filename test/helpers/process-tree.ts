/**
 * The processes of a running `imprint serve --workers N`: the primary and the cluster
 * workers it forked, read from /proc. A worker that dies is replaced within a moment and
 * the replacement answers just as well, so only the pids tell a test that one died.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** True while `pid` runs; a zombie waiting to be reaped has already died. */
export function isRunning(pid: number): boolean {
  try {
    // "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false; // ENOENT: gone and reaped
  }
}

/** The running children of `pid` (whichever of its threads forked them), sorted. */
export function childPids(pid: number): number[] {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const children = new Set<number>();
  for (const thread of threads) {
    try {
      const listed = readFileSync(`/proc/${pid}/task/${thread}/children`, 'utf8').trim();
      for (const child of listed.split(/\s+/).filter(Boolean)) children.add(Number(child));
    } catch {
      // the thread ended while we looked
    }
  }
  return [...children].filter(isRunning).sort((a, b) => a - b);
}

/** A server's processes at one moment; `primary` is undefined once it has died. */
export interface ServerPids {
  readonly primary: number | undefined;
  readonly workers: readonly number[];
}

/** The primary (when running) and its running workers, now. */
export function serverPids(primary: number): ServerPids {
  return isRunning(primary) ? { primary, workers: childPids(primary) } : { primary: undefined, workers: [] };
}

/** Waits until the primary runs exactly `count` workers; throws after `timeoutMs`. */
export async function waitForWorkers(primary: number, count: number, timeoutMs = 20_000): Promise<ServerPids> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = serverPids(primary);
    if (pids.primary === undefined) throw new Error(`server process ${primary} is not running`);
    if (pids.workers.length === count) return pids;
    if (Date.now() > deadline) throw new Error(`server ${primary} runs ${pids.workers.length} workers, not ${count}, after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * What happened to the processes between two readings, in words ("worker 123 died,
 * worker 456 started"); undefined when exactly the same processes run.
 */
export function processChanges(before: ServerPids, after: ServerPids): string | undefined {
  const changes: string[] = [];
  if (before.primary !== undefined && after.primary !== before.primary) changes.push(`primary ${before.primary} died`);
  for (const pid of before.workers) if (!after.workers.includes(pid)) changes.push(`worker ${pid} died`);
  for (const pid of after.workers) if (!before.workers.includes(pid)) changes.push(`worker ${pid} started`);
  return changes.length ? changes.join(', ') : undefined;
}

/**
 * Polls until the processes differ from `before` or `withinMs` has passed, and returns the
 * last reading: after a dropped connection, a dying worker may still be on its way out.
 */
export async function settledPids(primary: number, before: ServerPids, withinMs = 1000): Promise<ServerPids> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const now = serverPids(primary);
    if (processChanges(before, now) !== undefined || Date.now() > deadline) return now;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The processes holding a loopback TCP port's sockets (`ss`): listening ones, or the server side of established connections. */
export function portHolders(port: number, state: 'listening' | 'established'): Set<number> {
  const lines = spawnSync('ss', ['-Htnp', 'state', state, `( sport = :${port} )`], { encoding: 'utf8' }).stdout;
  return new Set([...lines.matchAll(/pid=(\d+)/g)].map((match) => Number(match[1])));
}
