/**
 * `imprint serve`: opens (initialising on first run) a data directory and serves the API
 * on one HTTPS listener, and CRLs and OCSP also over plain HTTP when asked, until
 * SIGINT/SIGTERM.
 */
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import cluster from 'node:cluster';
import type { Server } from 'node:https';
import { dirname } from 'node:path';
import {
  caExists,
  caPaths,
  issueScepRaCertificate,
  issueServerCertificate,
  loadScepRa,
  loadServerIdentity,
  SCEP_RA_RENEW_BEFORE_DAYS,
  SERVER_RENEW_BEFORE_DAYS,
  type ScepRaIdentity,
  type ServerIdentity,
} from './ca/ca-directory.js';
import type { RenewalPolicy } from './enrollment/enrollment-service.js';
import { REVOCATION_POLL_MS, RevocationWatcher } from './enrollment/revocation-watcher.js';
import { buildApp, buildStatusApp } from './http/app.js';
import { ClientConnections } from './http/client-connections.js';
import type { Limits } from './http/limits.js';
import { metrics } from './http/metrics.js';
import { TICKET_KEY_ROTATION_MS, TicketKeys } from './http/ticket-keys.js';
import { LocalWindowCounters, type WindowCounters } from './http/window-counters.js';
import { initInstance, openInstance, serverNames, type InitOptions, type Instance, type SigningServices } from './instance.js';
import { listenFailure } from './listen-failure.js';
import { describeStore, type Checkpoints } from './store/open-store.js';
import { observeCommits } from './store/group-commit.js';
import type { Store } from './store/store.js';
import { VERSION } from './version.js';

/** Options of `imprint serve`. */
export interface ServeOptions {
  readonly dataDir: string;
  /** PostgreSQL's URL; SQLite in the data directory when absent. */
  readonly databaseUrl?: string | undefined;
  readonly host: string;
  readonly port: number;
  /** The plain-HTTP status listener's port (CRLs and OCSP only); none when absent. */
  readonly statusPort?: number | undefined;
  readonly passphrase?: string | undefined;
  /** Used only when the data directory is empty and gets initialised. */
  readonly init?: InitOptions | undefined;
  readonly logger?: boolean | undefined;
  /** pino level (fatal, error, warn, info, debug, trace, silent); IMPRINT_LOG_LEVEL, else info, when absent. */
  readonly logLevel?: string | undefined;
  /** Where log lines go (one JSON object per line); stdout when absent. */
  readonly logStream?: { write(line: string): void } | undefined;
  /** How many worker processes serve (for the start-up line); 1 when absent. */
  readonly workers?: number | undefined;
  /** Rate limits, connection cap and timeouts; the defaults when absent. */
  readonly limits?: Limits | undefined;
  /** Where rate limits count; this process's own when absent. */
  readonly counters?: WindowCounters | undefined;
  /** Renewal overlap, limit and after-expiry window; the defaults when absent. */
  readonly renewal?: RenewalPolicy | undefined;
  /**
   * The TLS session ticket key to follow: a cluster worker's comes from the primary, so that
   * every worker resumes every worker's sessions. When absent, serve's one process (or its
   * primary, for all its workers) makes its own and rotates it every TICKET_KEY_ROTATION_MS.
   */
  readonly ticketKeys?: TicketKeys | undefined;
  /**
   * Told once the data directory is initialised and the CA key, the server and SCEP RA
   * certificates are checked (renewed if need be), before the app is built: a cluster forks
   * its other workers then.
   */
  readonly prepared?: (() => void) | undefined;
  /** Who checkpoints a SQLite store's WAL: this process on a thread of its own, unless a cluster's primary does (a worker). */
  readonly checkpoints?: Checkpoints | undefined;
  /**
   * A cluster worker binds the HTTPS port itself, beside the others (SO_REUSEPORT), and the
   * kernel spreads new connections over them; otherwise the primary binds it and hands each
   * connection over (serve.ts).
   */
  readonly reusePort?: boolean | undefined;
  /** How long a cluster worker may leave the primary's pings unanswered before it is killed (worker-liveness.ts HUNG_MS). */
  readonly workerHungMs?: number | undefined;
}

/** A running server. */
export interface RunningServer {
  readonly app: FastifyInstance;
  readonly instance: Instance;
  readonly url: string;
  /** The plain-HTTP status listener, when there is one. */
  readonly statusUrl: string | undefined;
  readonly initialised: boolean;
  /** The session ticket key the HTTPS listener issues and accepts tickets with (never logged). */
  readonly ticketKeys: TicketKeys;
  close(): Promise<void>;
}

/**
 * The CA and its signing services, read (and decrypted) now. Failures already name their
 * file; a bare system error ("EISDIR: illegal operation on a directory, read") is given
 * the CA directory, so that the one line serve prints says where to look.
 */
function loadSigning(instance: Instance): SigningServices {
  try {
    return instance.signing();
  } catch (error) {
    const message = (error as Error).message;
    if (message.includes(instance.dataDir)) throw error;
    throw new Error(`cannot load the CA from ${dirname(caPaths(instance.dataDir).issuerKey)}: ${message}`, { cause: error });
  }
}

/** The server's TLS identity, issued anew when missing or within 30 days of expiry. */
function serverIdentity(instance: Instance): ServerIdentity {
  const now = instance.clock.now();
  const current = loadServerIdentity(instance.dataDir);
  if (current && current.notAfter.getTime() - now.getTime() > SERVER_RENEW_BEFORE_DAYS * 86_400_000) return current;
  return issueServerCertificate(instance.dataDir, instance.signing().ca.material, serverNames(instance.settings), now);
}

/** The SCEP RA's certificate and key, issued anew when missing or within 30 days of expiry. */
function scepRaIdentity(instance: Instance): ScepRaIdentity {
  const now = instance.clock.now();
  const current = loadScepRa(instance.dataDir);
  if (current && current.notAfter.getTime() - now.getTime() > SCEP_RA_RENEW_BEFORE_DAYS * 86_400_000) return current;
  return issueScepRaCertificate(instance.dataDir, instance.signing().ca.material, now);
}

/** The URL a listening app answers on. */
function listenerUrl(scheme: 'http' | 'https', host: string, app: FastifyInstance): string {
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Listens, or throws one sentence naming the address and why (listenFailure).
 * `reusePort`: this process binds the port itself (exclusive of the primary), beside others.
 */
async function listen(app: FastifyInstance, host: string, port: number, flag: string, reusePort = false): Promise<void> {
  try {
    await app.listen({ host, port, ...(reusePort ? { reusePort: true, exclusive: true } : {}) });
  } catch (error) {
    throw listenFailure(error, host, port, flag);
  }
}

const DAY_MS = 86_400_000;

/** Connects the services' measurement hooks to this process's metrics; returns the disconnection. */
function measure(services: SigningServices, store: Store): () => void {
  const m = metrics();
  services.ocsp.observer = (status, kind) => m.ocspAnswered(status, kind);
  services.crls.observer = (scope, crlNumber, bytes, buildSeconds) => m.crl(scope, crlNumber, bytes, buildSeconds);
  observeCommits((seconds) => m.transaction(seconds));
  return m.countExpiringWith(async () => {
    const now = Date.now();
    const { soon, later } = await store.countExpiring(new Date(now), new Date(now + 7 * DAY_MS), new Date(now + 30 * DAY_MS));
    return { within7d: soon, within30d: later };
  });
}

/** Fastify's logger: JSON lines at the configured level, or none. */
function loggerOptions(options: ServeOptions): FastifyServerOptions['logger'] {
  if (!options.logger) return false;
  const level = options.logLevel ?? process.env.IMPRINT_LOG_LEVEL ?? 'info';
  return options.logStream ? { level, stream: options.logStream } : { level };
}

/** `serve` on an empty data directory initialises it first; true when it did. */
async function initialiseIfEmpty(options: ServeOptions): Promise<boolean> {
  if (caExists(options.dataDir)) return false;
  const { port, statusPort, passphrase, databaseUrl } = options;
  await initInstance(options.dataDir, { port, statusPort, ...options.init, passphrase, databaseUrl });
  return true;
}

/** Starts serving; resolves once the listeners are up. */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const initialised = await initialiseIfEmpty(options);
  const instance = await openInstance(options.dataDir, {
    passphrase: options.passphrase,
    databaseUrl: options.databaseUrl,
    backgroundCheckpoints: options.checkpoints ?? 'thread',
    renewal: options.renewal,
  });
  let watcher: RevocationWatcher | undefined;
  let unmeasure = () => undefined as void;
  let unfollowRevocations = () => undefined as void;
  const apps: FastifyInstance[] = [];
  // A cluster worker follows the primary's key; a process serving alone makes and rotates its own.
  const ticketKeys = options.ticketKeys ?? TicketKeys.random();
  const stopRotation = options.ticketKeys ? () => undefined : ticketKeys.rotateEvery(TICKET_KEY_ROTATION_MS);
  try {
    const services = { ...loadSigning(instance), tokens: instance.tokens, fleet: instance.fleet, audit: instance.audit };
    unmeasure = measure(services, instance.store);
    const identity = serverIdentity(instance);
    // Relying parties ask OCSP about the server's certificate too: it is the same CA's.
    await instance.store.recordServerCertificate({ ...identity.leaf, issuedAt: identity.leaf.notBefore });
    const ra = scepRaIdentity(instance);
    await instance.store.recordServerCertificate({ ...ra.leaf, issuedAt: ra.leaf.notBefore });
    options.prepared?.();
    const logger = loggerOptions(options);
    // One set of counters for both listeners: SCEP on either spends the same enroll budget.
    const counters = options.counters ?? new LocalWindowCounters();
    const probes = {
      store: () => instance.store.revocationSeq(),
      caKeyLoaded: () => services.ca.material.issuerKey !== undefined,
    };
    const app = await buildApp({
      services,
      tls: { ...identity, clientCaPem: services.ca.chainPem, ticketKeys },
      logger,
      limits: options.limits,
      counters,
      probes,
    });
    apps.push(app);
    const status =
      options.statusPort === undefined
        ? undefined
        : { app: await buildStatusApp({ services, logger, limits: options.limits, counters, probes }), port: options.statusPort };
    if (status) apps.push(status.app);
    const connections = new ClientConnections(app.server as Server);
    watcher = new RevocationWatcher(
      instance.store,
      (serials) => {
        const closed = connections.closeAll(serials);
        if (closed) app.log.info({ closed, revoked: serials.length }, 'closed connections of revoked certificates');
      },
      (error) => app.log.error({ err: error }, 'revocation watch failed'),
      REVOCATION_POLL_MS,
      instance.clock,
      (seconds) => metrics().revocationPropagated(seconds),
    );
    // Reconnecting devices are served from memory while the watcher vouches for the sequence.
    unfollowRevocations = services.clients.devices.follow(watcher, instance.store);
    await watcher.start();
    await listen(app, options.host, options.port, '', options.reusePort);
    if (status) await listen(status.app, options.host, status.port, '--status-port');
    const url = listenerUrl('https', options.host, app);
    const statusUrl = status && listenerUrl('http', options.host, status.app);
    app.log.info(
      {
        event: 'start',
        version: VERSION,
        publicUrl: instance.settings.publicUrl,
        listeners: { https: url, ...(statusUrl ? { status: statusUrl } : {}) },
        workers: options.workers ?? 1,
        ...(cluster.isWorker ? { worker: cluster.worker!.id } : {}),
        store: describeStore(options),
        dataDir: options.dataDir,
      },
      'imprint started',
    );
    return {
      app,
      instance,
      url,
      statusUrl,
      initialised,
      ticketKeys,
      async close() {
        watcher?.stop();
        unfollowRevocations();
        stopRotation();
        unmeasure();
        await Promise.all(apps.map((each) => each.close()));
        await instance.close();
      },
    };
  } catch (error) {
    watcher?.stop();
    unfollowRevocations();
    stopRotation();
    unmeasure();
    await Promise.all(apps.map((each) => each.close()));
    await instance.close();
    throw error;
  }
}

/** The start-up banner: where the trust anchor is and how to enroll a first device. */
export function banner(
  server: {
    readonly url: string;
    readonly statusUrl: string | undefined;
    readonly dataDir: string;
    readonly databaseUrl?: string | undefined;
    readonly initialised: boolean;
  },
  cli: string,
): string {
  const root = caPaths(server.dataDir).root;
  const data = server.dataDir;
  const store = describeStore(server);
  // The URL as typed holds the password: the hint names the variable instead.
  const database = store.kind === 'postgres' ? ' --database "$IMPRINT_DATABASE_URL"' : '';
  return [
    `imprint ${server.initialised ? 'initialised a new CA and ' : ''}is serving on ${server.url}`,
    ...(server.statusUrl ? [`  CRLs and OCSP over plain HTTP on ${server.statusUrl}`] : []),
    `  data directory: ${data}`,
    ...(store.kind === 'postgres' ? [`  database: ${store.path}`] : []),
    `  root CA (flash onto devices): ${root}`,
    '',
    'Mint a token:',
    `  ${cli} tokens create --data ${data}${database} --count 1 --ttl 1d`,
    'Enroll a simulated device with it:',
    `  npm run simulate -- --url ${server.url} --ca ${root} --token <imp_...> --device-id sensor-001 --state /tmp/sensor-001`,
  ].join('\n');
}
