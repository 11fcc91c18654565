/**
 * `imprint serve` as a process: one server, or a primary with N workers sharing the
 * listening port and the one SQLite file (node:cluster). Each worker follows the store's
 * revocation sequence on its own, so a revocation reaches every worker within a second.
 * Signals go to the primary: the first shuts down gracefully (every worker finishes its
 * requests in flight), a second exits at once. A worker that dies is replaced.
 */
import cluster, { type Worker } from 'node:cluster';
import { caExists } from './ca/ca-directory.js';
import { DEFAULT_LIMITS } from './http/limits.js';
import { ClusterWindowCounters, CountingPrimary } from './http/window-counters.js';
import { initInstance, openInstance } from './instance.js';
import { banner, startServer, type ServeOptions } from './server.js';

/** Where serve writes its messages. */
export interface ServeOutput {
  stderr(text: string): void;
}

type WorkerMessage = { readonly type: 'listening'; readonly url: string; readonly statusUrl: string | undefined };

/** A worker that dies this soon after starting points at configuration, not bad luck. */
const EARLY_DEATH_MS = 5_000;

/** Runs until a signal; never returns. */
export async function serve(options: ServeOptions, workers: number, out: ServeOutput): Promise<never> {
  if (workers > 1 && options.port === 0 && options.statusPort === 0) {
    // A cluster hands every listen(0) of a worker the same port: both listeners would share it.
    throw new Error('with more than one worker, --port 0 and --status-port 0 cannot be used together');
  }
  if (cluster.isWorker) return runWorker(options, workers);
  if (workers <= 1) return runSingle(options, out);
  return runPrimary(options, workers, out);
}

function onSignals(handler: (signal: string) => void): void {
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
}

const forever = () => new Promise<never>(() => undefined);

async function runSingle(options: ServeOptions, out: ServeOutput): Promise<never> {
  const server = await startServer(options);
  out.stderr(banner({ ...server, dataDir: options.dataDir }, 'npx imprint'));
  let stopping = false;
  onSignals((signal) => {
    if (stopping) process.exit(1); // a second signal: exit at once
    stopping = true;
    out.stderr(`${signal}: finishing in-flight requests`);
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
  return forever();
}

async function runPrimary(options: ServeOptions, count: number, out: ServeOutput): Promise<never> {
  // Initialise and check the CA key here, once: workers racing to create a CA, or each
  // dying on a wrong passphrase, would be worse than one clear line from the primary.
  const initialised = !caExists(options.dataDir);
  if (initialised) await initInstance(options.dataDir, { port: options.port, statusPort: options.statusPort, ...options.init, passphrase: options.passphrase });
  const check = await openInstance(options.dataDir, { passphrase: options.passphrase });
  try {
    check.signing();
  } finally {
    await check.close();
  }

  let stopping = false;
  let announced = false;
  const startedAt = new Map<Worker, number>();
  // The whole server's rate-limit counts: a source's requests spread over the workers.
  const counting = new CountingPrimary();
  const fork = () => {
    const worker = cluster.fork();
    startedAt.set(worker, Date.now());
    counting.adopt(worker);
    worker.on('message', (message: WorkerMessage) => {
      if (message.type !== 'listening' || announced) return;
      announced = true;
      out.stderr(banner({ ...message, dataDir: options.dataDir, initialised }, 'npx imprint') + `\n  workers: ${count}`);
    });
  };
  cluster.on('exit', (worker, code, signal) => {
    const lived = Date.now() - (startedAt.get(worker) ?? 0);
    startedAt.delete(worker);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    out.stderr(`worker ${worker.process.pid} exited (${signal ?? code})${lived < EARLY_DEATH_MS ? '' : '; starting another'}`);
    if (lived < EARLY_DEATH_MS) {
      out.stderr('a worker died right after starting: stopping (see the log above)');
      process.exit(1);
    }
    fork();
  });
  for (let i = 0; i < count; i++) fork();

  onSignals((signal) => {
    if (stopping) {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    out.stderr(`${signal}: workers are finishing in-flight requests`);
    for (const worker of Object.values(cluster.workers ?? {})) worker?.send('shutdown');
  });
  return forever();
}

async function runWorker(options: ServeOptions, workers: number): Promise<never> {
  // Signals are the primary's to handle (a terminal's Ctrl-C reaches the whole group);
  // it says "shutdown" over IPC. If the primary dies, Node ends this worker.
  onSignals(() => undefined);
  const limits = options.limits ?? DEFAULT_LIMITS;
  const server = await startServer({
    ...options,
    init: undefined,
    // The primary hands new connections to the workers in turn, so each gets its share of
    // the per-source connection cap; rate limits count in the primary, for the whole server.
    limits: { ...limits, connectionsPerSource: Math.ceil(limits.connectionsPerSource / workers) },
    counters: new ClusterWindowCounters(process),
  });
  process.send?.({ type: 'listening', url: server.url, statusUrl: server.statusUrl } satisfies WorkerMessage);
  process.on('message', (message: unknown) => {
    if (message !== 'shutdown') return;
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
  return forever();
}
