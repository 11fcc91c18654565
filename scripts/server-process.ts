/** `imprint serve` as its own process, for the benchmark and for tests that signal or kill it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/scripts/ when built, scripts/ when run from source (vitest): the project is above.
const here = fileURLToPath(new URL('.', import.meta.url));
export const projectRoot = here.includes('/dist/') ? join(here, '../..') : join(here, '..');

/** The node binary a server runs on, and the directory holding the dist/src it runs. */
export interface ServerRuntime {
  readonly node: string;
  readonly root: string;
}

const OWN_RUNTIME: ServerRuntime = { node: process.execPath, root: projectRoot };

/** A running server process. */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** The plain-HTTP status listener, when started with --status-port. */
  readonly statusUrl: string | undefined;
  readonly port: number;
  readonly rootPem: string;
  /** Resolves with the exit code (or the signal's name) once the process has ended. */
  readonly exited: Promise<number | string>;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM to the primary, then waits for its exit. */
  stop(): Promise<number | string>;
  /** Sends `signal` to the whole process group (primary and workers); resolves once all are gone. */
  killGroup(signal: NodeJS.Signals): Promise<void>;
}

/** A process and its children (a cluster primary and its workers), from /proc. */
function withChildren(pid: number): number[] {
  try {
    const listed = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return [pid, ...listed];
  } catch {
    return [pid]; // no children file: the process alone
  }
}

/** Peak resident memory (Linux VmHWM) in MiB of a process, each of its children (cluster workers), and all. */
export interface PeakRss {
  readonly primary: number;
  readonly workers: readonly number[];
  readonly total: number;
}

export function peakRssMiB(pid: number): PeakRss | undefined {
  const peak = (of: number) => {
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${of}/status`, 'utf8'));
      return match ? Math.round(Number(match[1]) / 1024) : 0;
    } catch {
      return 0;
    }
  };
  const [primary, ...workers] = withChildren(pid).map(peak);
  if (!primary) return undefined;
  return { primary, workers, total: workers.reduce((a, b) => a + b, primary) };
}

/**
 * Proportional set size (Linux smaps_rollup) of a process and its children, in MiB: a page
 * shared by several processes (the node binary, the shared libraries, copy-on-write pages
 * of the primary) counts once in the total, split between them, where a sum of RSS counts
 * it in every process.
 */
function pssMiB(pid: number): number {
  let kib = 0;
  for (const of of withChildren(pid)) {
    try {
      const match = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${of}/smaps_rollup`, 'utf8'));
      kib += match ? Number(match[1]) : 0;
    } catch {
      // gone since listed: nothing of it to count
    }
  }
  return Math.round(kib / 1024);
}

/** Samples the PSS of a process and its children every `everyMs` until stopped; stop() gives the highest seen. */
export function samplePeakPss(pid: number, everyMs = 250): { stop(): number } {
  let peak = pssMiB(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, pssMiB(pid));
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, pssMiB(pid));
    },
  };
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux we run on). */
const CLOCK_TICKS = 100;

/**
 * CPU seconds (user + system) a process and its children (cluster workers) have used so
 * far, read from /proc: the difference over a load is the server's CPU for that load.
 */
export function cpuSeconds(pid: number): number {
  const of = (target: number) => {
    try {
      const stat = readFileSync(`/proc/${target}/stat`, 'utf8');
      // "pid (comm) state ..." with utime and stime the 14th and 15th fields; comm may hold spaces.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    } catch {
      return 0;
    }
  };
  return withChildren(pid).reduce((sum, target) => sum + of(target), 0);
}

/** A loopback port that was free a moment ago: for a port that must be named before it listens. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

/** Starts `imprint serve --port 0` on `dataDir` (on this Node, or `runtime`'s) and resolves once it is listening. */
export function spawnServer(dataDir: string, args: string[] = [], env: Record<string, string> = {}, runtime: ServerRuntime = OWN_RUNTIME): Promise<ServerProcess> {
  const child = spawn(runtime.node, ['dist/src/cli/main.js', 'serve', '--data', dataDir, '--port', '0', ...args], {
    cwd: runtime.root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true, // its own process group, so that workers can be killed with it
  });
  let stderr = '';
  let started = false;
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start within 20 s: ${stderr}`));
    }, 20_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /is serving on (https:\/\/[^\s]+)/.exec(stderr);
      if (match && !started) {
        started = true;
        clearTimeout(timer);
        const url = match[1]!;
        resolve({
          child,
          url,
          statusUrl: /over plain HTTP on (http:\/\/[^\s]+)/.exec(stderr)?.[1],
          port: Number(new URL(url).port),
          rootPem: readFileSync(join(dataDir, 'ca/root.pem'), 'utf8'),
          exited,
          stderr: () => stderr,
          stop: () => {
            child.kill('SIGTERM');
            return exited;
          },
          killGroup: async (signal) => {
            process.kill(-child.pid!, signal);
            for (let i = 0; i < 250; i++) {
              try {
                process.kill(-child.pid!, 0);
              } catch {
                return; // ESRCH: nobody left in the group
              }
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
            throw new Error('server processes still running 5 s after the signal');
          },
        });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening: ${stderr}`));
    });
  });
}
