/**
 * `imprint serve` as a process: one server, or a primary with N workers sharing the
 * listening port and the one SQLite file (node:cluster). Each worker follows the store's
 * revocation sequence on its own, so a revocation reaches every worker within a second.
 * Signals go to the primary: the first shuts down gracefully (every worker finishes its
 * requests in flight), a second exits at once. A worker that dies once every worker is
 * listening is replaced, and so is one whose event loop stops answering (worker-liveness.ts).
 *
 * New connections reach the workers through the primary (Node's turns) or, where Node and
 * the kernel can, straight from the kernel (workersBindThePort).
 *
 * The primary only forks, relays and restarts: it never opens the store or the CA, and
 * the server's code is loaded only in the processes that serve (a dynamic import). The
 * first worker initialises an empty data directory and checks the CA key, the server and
 * SCEP RA certificates, alone; the others are forked once it has.
 *
 * The primary makes the TLS session ticket key and rotates it; each worker gets it over the
 * IPC channel before it listens, and every new one after: a device's connections land on
 * any worker, and a ticket one worker issued resumes on all of them.
 *
 * The primary checkpoints the SQLite WAL for every worker, once the first has prepared the
 * database: it answers no request itself, and a thread in a worker for it was a whole V8
 * isolate (10-20 MiB). The workers' commits checkpoint only should the WAL grow far behind.
 *
 * Serve never fails silently and never runs half-started: a port it cannot listen on, a
 * CA key it cannot read, or a worker that ends before it is listening stops every process
 * and rejects with one sentence, which the CLI prints as its one line on stderr.
 */
import cluster, { type Worker } from 'node:cluster';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ImprintError } from './errors.js';
import { listenFailure } from './listen-failure.js';
import { DEFAULT_LIMITS } from './http/limits.js';
import { MetricsPrimary } from './http/metrics-gathering.js';
import { TICKET_KEY_ROTATION_MS, TicketKeys } from './http/ticket-keys.js';
import { ClusterWindowCounters, CountingPrimary } from './http/window-counters.js';
import { answerPings, WorkerLiveness } from './worker-liveness.js';
import type { RunningServer, ServeOptions } from './server.js';
import { packageDirectory } from './package-files.js';

/** Where serve writes its messages. */
export interface ServeOutput {
  stderr(text: string): void;
}

type WorkerMessage =
  /** The worker hears the primary from now on: messages sent before this are lost. */
  | { readonly type: 'started' }
  /** The data directory is initialised and the CA key, server and SCEP RA certificates checked. */
  | { readonly type: 'prepared' }
  /**
   * The start-up banner; the primary prints the first worker's, which says whether it
   * initialised the data directory. `port`: the HTTPS port it bound (workersBindThePort).
   */
  | { readonly type: 'listening'; readonly banner: string; readonly port: number }
  /** The worker could not start; the primary says so, once, for the whole server. */
  | { readonly type: 'failed'; readonly message: string };

/** The primary's word to a worker besides "shutdown": the session ticket key, at start and at each rotation. */
interface TicketKeyMessage {
  readonly type: 'imprint:ticket-key';
  /** base64 of the 48-byte key. */
  readonly key: string;
}

const ticketKeyMessage = (key: Buffer): TicketKeyMessage => ({ type: 'imprint:ticket-key', key: key.toString('base64') });

/**
 * Node's flags for the workers besides the primary's own, each unless the operator chose
 * that flag. The semi-space size is V8's young generation in MB per semi-space: left alone
 * it grows to 16 (two of them: 32 MB), already while the worker loads its code; at 4 each
 * worker was 15-22 MB smaller, idle and under enrollment load, for the same CPU per
 * enrollment within the noise (more, cheaper scavenges; fewer full collections). The V8
 * pool is the threads that collect garbage and compile beside the main thread, 4 by
 * default in every process: with 2 of them a worker was ~5-7 MB smaller (fewer stacks and
 * malloc arenas), for the same CPU per enrollment. The OpenSSL configuration
 * (deploy/openssl.cnf) sends one TLS 1.3 session ticket after a full handshake instead of
 * two: ~12-16% less server CPU per full mTLS handshake (Node 20 and 24, one process, 600
 * handshakes interleaved); left out when the operator configures OpenSSL.
 */
const WORKER_FLAGS: readonly { readonly flag: () => string; readonly set: RegExp }[] = [
  { flag: () => '--max-semi-space-size=4', set: /--max[-_]semi[-_]space[-_]size\b/ },
  { flag: () => '--v8-pool-size=2', set: /--v8[-_]pool[-_]size\b/ },
  { flag: () => `--openssl-config=${join(packageDirectory('deploy', 'openssl.cnf'), 'openssl.cnf')}`, set: /--openssl[-_](shared[-_])?config\b/ },
];
/** Node's flags for the workers: the primary's own, and WORKER_FLAGS that the operator did not choose. */
function workerExecArgv(): string[] {
  const chosen = [...process.execArgv, process.env.NODE_OPTIONS ?? '', process.env.OPENSSL_CONF === undefined ? '' : '--openssl-config'];
  return [...process.execArgv, ...WORKER_FLAGS.filter(({ set }) => !chosen.some((flag) => set.test(flag))).map(({ flag }) => flag())];
}

/**
 * Where Node can (22.12+ and 23.1+) on Linux, each worker binds the HTTPS port itself beside
 * the others (SO_REUSEPORT) and the kernel spreads new connections over them by a hash of
 * each connection's addresses and ports. Otherwise the primary accepts every connection and
 * hands it to a worker over IPC: 10-14% of a full mTLS reconnect's server CPU on Node 24
 * (medians of 4 interleaved runs, two sessions). The spread is a hash's, not turns:
 * 32 kept-alive connections landed between 16/16 and 20/12 on two workers; a fleet's
 * thousands even out. The status listener stays the primary's: it is not the hot path.
 */
export function workersBindThePort(): boolean {
  if (process.platform !== 'linux') return false;
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}
/** The HTTPS port a worker binds when --port 0 gave the first worker an ephemeral one: the others bind the same. */
const WORKER_PORT_ENV = 'IMPRINT_WORKER_PORT';

/** A worker that dies this soon after starting points at configuration, not bad luck. */
const EARLY_DEATH_MS = 5_000;
/** How long stopping workers may take before they are killed, within the 5 s a failure may take. */
const STOP_WORKERS_MS = 2_000;

/** Runs until a signal; never returns. Rejects when the server cannot start (or keep) serving. */
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

/** An error as the CLI's one line says it (less the "imprint: "). */
function failureLine(error: unknown): string {
  const message = error instanceof ImprintError ? `${error.code}: ${error.message}` : String((error as Error)?.message ?? error);
  return message.split('\n')[0]!;
}

async function runSingle(options: ServeOptions, out: ServeOutput): Promise<never> {
  const { banner, startServer } = await import('./server.js');
  const server = await startServer(options);
  out.stderr(banner({ ...server, dataDir: options.dataDir, databaseUrl: options.databaseUrl }, 'npx imprint'));
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

const liveWorkers = (): Worker[] => Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined && !worker.isDead());

/** Asks every worker to stop (`stop`), killing any still there after STOP_WORKERS_MS. */
async function stopWorkers(stop: (worker: Worker) => void): Promise<void> {
  const workers = liveWorkers();
  const exited = Promise.all(workers.map((worker) => new Promise((resolve) => worker.once('exit', resolve))));
  for (const worker of workers) stop(worker);
  const timer = setTimeout(() => {
    for (const worker of workers) if (!worker.isDead()) worker.process.kill('SIGKILL');
  }, STOP_WORKERS_MS);
  await exited;
  clearTimeout(timer);
}

/**
 * Workers binding the port themselves would join any other server's SO_REUSEPORT group on it
 * (a second imprint started by the same user) and silently share its connections: the primary
 * first binds the port alone, so that a taken port fails here as it does where the primary
 * binds for its workers. With --port 0 the kernel gives the first worker a port no group holds.
 */
async function checkPortFree(host: string, port: number): Promise<void> {
  const probe = createServer();
  try {
    await new Promise<void>((resolve, reject) => probe.once('error', reject).listen({ host, port, exclusive: true }, resolve));
  } catch (error) {
    throw listenFailure(error, host, port);
  }
  await new Promise((resolve) => probe.close(resolve));
}

async function runPrimary(options: ServeOptions, count: number, out: ServeOutput): Promise<never> {
  const reusePort = workersBindThePort();
  if (reusePort && options.port !== 0) await checkPortFree(options.host, options.port);
  cluster.setupPrimary({ execArgv: workerExecArgv() });
  return new Promise<never>((_resolve, reject) => {
    let stopping = false; // a signal: the workers are finishing
    let failing = false; // the server cannot serve: the workers are being stopped
    let announced = false;
    /** The first worker's banner, printed once every worker listens. */
    let firstBanner: string | undefined;
    const listening = new Set<Worker>();
    const startedAt = new Map<Worker, number>();
    // Only ever the primary's word to its workers, never inherited from the operator's environment.
    delete process.env[WORKER_PORT_ENV];
    /**
     * With --port 0 and workers binding the port themselves, the others are forked once the
     * first listens, to bind its ephemeral port (boundPort), not ones of their own.
     */
    const othersWaitForPort = reusePort && options.port === 0;
    let boundPort: number | undefined;
    // The whole server's rate-limit counts: a source's requests spread over the workers.
    const counting = new CountingPrimary();
    // A scrape answered by any worker shows the whole server: the primary gathers every worker's metrics.
    const gathering = new MetricsPrimary();
    // A listening worker whose event loop stops answering is killed, then replaced (exited).
    const liveness = new WorkerLiveness((worker, silentMs) => {
      out.stderr(`worker ${worker.process.pid} has not answered for ${Math.round(silentMs / 1000)} s: killing it`);
      worker.process.kill('SIGKILL');
    }, { hungMs: options.workerHungMs });
    // One ticket key for every worker, so that a session resumes on whichever worker the
    // connection lands; in memory only, handed over the IPC channel. Rotated here, once
    // (unless the caller gave a key of its own to follow, as startServer does).
    const ticketKeys = options.ticketKeys ?? TicketKeys.random();
    if (!options.ticketKeys) ticketKeys.rotateEvery(TICKET_KEY_ROTATION_MS);
    ticketKeys.onChange((key) => {
      for (const worker of liveWorkers()) if (worker.isConnected()) worker.send(ticketKeyMessage(key), () => undefined);
    });
    /**
     * The worker that initialises and checks the data directory before any other is forked:
     * workers racing to create a CA, or each dying on a wrong passphrase, would be worse
     * than one clear line, and two renewing the server certificate at once could leave one's
     * key next to the other's certificate.
     */
    let first: Worker | undefined;
    /** Workers handed the key: the others have not started anything yet (they are loading their code). */
    const keyed = new WeakSet<Worker>();
    /** Ends the primary's checkpoints; its connection, closed after every worker's, then removes the WAL. */
    let stopCheckpoints = () => undefined as void;
    /** The primary's last word once its workers are gone. */
    const exit = () => {
      stopCheckpoints();
      process.exit(0);
    };
    /** Asks a worker to finish what is in flight and exit; one that has started nothing is killed at once. */
    const stop = (worker: Worker) => {
      if (!keyed.has(worker)) worker.process.kill('SIGKILL');
      else if (worker.isConnected()) worker.send('shutdown', () => undefined);
    };

    /** Stops every worker, then rejects with the one line: the primary never runs without its workers. */
    const fail = (message: string) => {
      if (failing || stopping) return;
      failing = true;
      liveness.stop();
      void stopWorkers(stop).then(() => {
        stopCheckpoints();
        reject(new Error(message));
      });
    };

    /** Forks the workers after the first. */
    const forkOthers = () => {
      for (let i = 1; i < count; i++) fork();
    };
    const fork = () => {
      const worker = cluster.fork(boundPort === undefined ? undefined : { [WORKER_PORT_ENV]: String(boundPort) });
      first ??= worker;
      // A send to a worker that is just exiting (ours, or Node's own handing it the listening
      // handle) fails with EPIPE, emitted here: unheard, it would end the primary. The
      // worker's 'exit' follows and says what happened.
      worker.on('error', () => undefined);
      startedAt.set(worker, Date.now());
      counting.adopt(worker);
      gathering.adopt(worker);
      worker.on('message', (message: WorkerMessage) => {
        // The worker hears from now on, and waits for the key before it starts (one asked to
        // stop before this was killed: it had started nothing).
        if (message?.type === 'started') {
          keyed.add(worker);
          return void worker.send(ticketKeyMessage(ticketKeys.current()), () => undefined);
        }
        if (message?.type === 'failed') return fail(message.message);
        if (message?.type === 'prepared' && worker === first && !failing && !stopping) {
          if (options.databaseUrl === undefined) void checkpointForWorkers(options.dataDir, out).then((stopping) => (stopCheckpoints = stopping));
          if (!othersWaitForPort) forkOthers();
          return;
        }
        if (message?.type !== 'listening' || failing || stopping) return;
        listening.add(worker);
        liveness.watch(worker);
        if (worker === first && othersWaitForPort) {
          boundPort = message.port;
          forkOthers();
        }
        if (announced) return out.stderr(`worker ${worker.process.pid} is listening`);
        // The first worker's banner says whether it initialised the data directory.
        if (worker === first) firstBanner = message.banner;
        if (listening.size === count) {
          // "serving" once every worker is: a worker failing later than the banner would
          // leave a log that says both.
          announced = true;
          out.stderr(`${firstBanner}\n  workers: ${count}`);
        }
      });
    };

    const exited = (worker: Worker, how: string) => {
      const lived = Date.now() - (startedAt.get(worker) ?? 0);
      const wasListening = listening.delete(worker);
      startedAt.delete(worker);
      if (failing) return;
      if (stopping) {
        if (liveWorkers().length === 0) exit();
        return;
      }
      const pid = worker.process.pid;
      if (!wasListening) return fail(`worker ${pid} exited (${how}) before it was listening`);
      if (lived < EARLY_DEATH_MS) return fail(`worker ${pid} exited (${how}) ${lived} ms after it started: stopping rather than restarting it in a loop`);
      out.stderr(`worker ${pid} exited (${how}); starting another`);
      fork();
    };
    cluster.on('exit', (worker, code, signal) => {
      const how = signal ?? String(code);
      // A worker that could not start says why over IPC just before it exits: read that
      // first (the channel closes after its last message) so the line names the cause.
      if (worker.isConnected()) worker.once('disconnect', () => exited(worker, how));
      else exited(worker, how);
    });
    // Before the first fork: a signal must never find the primary without its handler.
    onSignals((signal) => {
      if (stopping || failing) {
        for (const worker of liveWorkers()) worker.process.kill('SIGKILL');
        process.exit(1);
      }
      stopping = true;
      liveness.stop();
      out.stderr(`${signal}: workers are finishing in-flight requests`);
      if (liveWorkers().length === 0) exit();
      for (const worker of liveWorkers()) stop(worker);
    });
    fork();
  });
}

/**
 * The workers' SQLite WAL, checkpointed by the primary: it answers no request (a checkpoint,
 * ~17 ms at 1,000 enrollments a second, delays only its hand-over of new connections), and
 * a thread for it in a worker held 10-20 MiB.
 * Should the database not open here, the workers' commits checkpoint it themselves, later.
 */
async function checkpointForWorkers(dataDir: string, out: ServeOutput): Promise<() => void> {
  try {
    const { checkpointEvery, databasePath } = await import('./store/wal-checkpoints.js');
    return checkpointEvery(databasePath(dataDir));
  } catch (error) {
    out.stderr(`the WAL is checkpointed by the workers' commits: ${(error as Error).message}`);
    return () => undefined;
  }
}

async function runWorker(options: ServeOptions, workers: number): Promise<never> {
  // Signals are the primary's to handle (a terminal's Ctrl-C reaches the whole group);
  // it says "shutdown" over IPC, also while this worker is still starting. If the primary
  // dies, Node ends this worker.
  onSignals(() => undefined);
  answerPings(process);
  let server: RunningServer | undefined;
  let stopping = false;
  let ticketKeys: TicketKeys | undefined;
  let keyed: () => void = () => undefined;
  const firstKey = new Promise<void>((resolve) => (keyed = resolve));
  process.on('message', (message: unknown) => {
    if ((message as TicketKeyMessage | undefined)?.type === 'imprint:ticket-key') {
      const key = Buffer.from((message as TicketKeyMessage).key, 'base64');
      if (ticketKeys) ticketKeys.replace(key);
      else ticketKeys = new TicketKeys(key);
      return keyed();
    }
    if (message !== 'shutdown' || stopping) return;
    stopping = true;
    if (!server) process.exit(0); // still starting: nothing is in flight
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
  // The primary may be gone already (a second signal): Node then ends this worker itself.
  const ignore = () => undefined;
  process.send?.({ type: 'started' } satisfies WorkerMessage, undefined, {}, ignore);
  const limits = options.limits ?? DEFAULT_LIMITS;
  const reusePort = workersBindThePort();
  // The primary answers "started" with the key: a worker never issues tickets with one of its own.
  // The server's code loads while the key is on its way (handled here so that a failure to
  // load is reported below, not as an unhandled rejection).
  const loading = import('./server.js');
  loading.catch(() => undefined);
  await firstKey;
  let shown: string;
  try {
    const { banner, startServer } = await loading;
    server = await startServer({
      ...options,
      port: reusePort ? Number(process.env[WORKER_PORT_ENV] ?? options.port) : options.port,
      reusePort,
      workers,
      // New connections are spread over the workers (the primary's turns, or the kernel's
      // hash), so each gets its share of the per-source connection cap; rate limits count in
      // the primary, for the whole server.
      limits: { ...limits, connectionsPerSource: Math.ceil(limits.connectionsPerSource / workers) },
      counters: new ClusterWindowCounters(process),
      ticketKeys,
      // The primary checkpoints the WAL for every worker (checkpointForWorkers).
      checkpoints: 'elsewhere',
      prepared: () => process.send?.({ type: 'prepared' } satisfies WorkerMessage, undefined, {}, ignore),
    });
    shown = banner({ ...server, dataDir: options.dataDir, databaseUrl: options.databaseUrl }, 'npx imprint');
  } catch (error) {
    // Not printed here: every worker would print its own copy. The primary says it once.
    const exit = () => process.exit(1);
    process.send?.({ type: 'failed', message: failureLine(error) } satisfies WorkerMessage, undefined, {}, exit);
    setTimeout(exit, 1_000); // should the channel never confirm the message
    return forever();
  }
  const { port } = server.app.server.address() as AddressInfo;
  process.send?.({ type: 'listening', banner: shown, port } satisfies WorkerMessage, undefined, {}, ignore);
  return forever();
}
