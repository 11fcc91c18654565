/**
 * Prometheus metrics (prom-client), one set per process. Label children are created once
 * per label set and kept, so a request costs a counter increment and a histogram observe
 * (prom-client still hashes a counter child's labels on each call, ~0.2 us here). The
 * request-duration histogram, which every request observes, is our own (local-histogram.ts):
 * prom-client's cost ~1.5-2 us of a kept OCSP answer's ~50. With `serve --workers N` the
 * worker that answers a scrape gathers every worker's metrics through the primary
 * (metrics-gathering.ts) and answers the sum (prom-client's AggregatorRegistry): counters
 * and histograms add up; gauges that every worker reads from the same store (CRL,
 * certificates expiring) take the maximum; the process metrics keep one series per worker
 * under a `worker` label.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import cluster from 'node:cluster';
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { LocalHistogram, type HistogramSeries } from './local-histogram.js';
import type { CollectRequest, CollectResponse, GatherRequest, GatherResponse, WorkerMetrics } from './metrics-gathering.js';

type CounterChild = ReturnType<Counter['labels']>;

/** One request-duration series per status class (index 1-5), made on first use. */
type DurationChildren = (HistogramSeries | undefined)[];

declare module 'fastify' {
  interface FastifyContextConfig {
    /** This route's request-duration children by method, made when the route is added. */
    durations?: Record<string, DurationChildren>;
  }
}

/** Certificates that expire soon, counted by the store at scrape time. */
export interface ExpiringCounts {
  readonly within7d: number;
  readonly within30d: number;
}

/** Observes one request answered before routing: its status code and how long it took. */
export type AnsweredObserver = (statusCode: number, seconds: number) => void;

/** The OCSP answer statuses and how the answer was made, as counted. */
export type OcspAnswerStatus = 'good' | 'revoked' | 'unknown' | 'malformed';
export type OcspAnswerKind = 'nonce' | 'cached' | 'fresh' | 'none';

const OCSP_STATUSES: readonly OcspAnswerStatus[] = ['good', 'revoked', 'unknown', 'malformed'];
const OCSP_KINDS: readonly OcspAnswerKind[] = ['nonce', 'cached', 'fresh', 'none'];

/** Request latencies: an enrollment is ~1 ms of CPU, a slow admin listing may take a second. */
const REQUEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Group commits: ~100 us on a quiet disk, tens of ms when fsync is slow. */
const TRANSACTION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Revocation propagation: told at once in-process (and by PostgreSQL), polled every 50 ms, promised within 1 s. */
const PROPAGATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

/** Scrapes answered from a stale expiry count: the count reads the certificate table. */
const EXPIRING_CACHE_MS = 30_000;

/** Keeps a child per key, made once. */
function cached<T>(make: (key: string) => T): (key: string) => T {
  const children = new Map<string, T>();
  return (key) => {
    let child = children.get(key);
    if (child === undefined) {
      child = make(key);
      children.set(key, child);
    }
    return child;
  };
}

/** imprint's metrics in this process. */
export class ImprintMetrics {
  readonly registry = new Registry();
  private readonly requestDuration: LocalHistogram;
  private readonly unmatched: (method: string) => DurationChildren;
  /** Duration children of the requests answered before routing, by method and route. */
  private readonly answeredBefore: (methodAndRoute: string) => DurationChildren;
  private readonly enrollments: (protocol: string) => (outcome: string) => CounterChild;
  private readonly renewals: (outcome: string) => CounterChild;
  private readonly rateLimits: (limit: string) => CounterChild;
  /**
   * OCSP answers counted since the last scrape, added to the counter when it is read: every
   * answer counts, and a child's inc cost ~0.26 us (prom-client hashes its labels), ~0.6%
   * of a kept answer.
   */
  private readonly ocsp: Record<OcspAnswerStatus, Record<OcspAnswerKind, number>>;
  private readonly crlNumber: Gauge;
  private readonly crlSize: Gauge;
  private readonly crlBuild: Gauge;
  private readonly propagation: Histogram;
  private readonly transactions: Histogram;
  /** Servers in this process that can count; the newest answers (tests run several). */
  private readonly expiringSources: (() => Promise<ExpiringCounts>)[] = [];
  private expiringCache: { readonly at: number; readonly counts: ExpiringCounts } | undefined;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, ...(cluster.isWorker ? { labels: { worker: String(cluster.worker!.id) } } : {}) });

    this.requestDuration = new LocalHistogram({
      name: 'imprint_http_request_duration_seconds',
      help: 'HTTP request duration by route, method and status class',
      labelNames: ['route', 'method', 'status_class'],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.unmatched = cached(() => []);
    this.answeredBefore = cached(() => []);

    const enrollments = new Counter({
      name: 'imprint_enrollments_total',
      help: 'Enrollment requests by protocol and outcome ("ok" or the error code)',
      labelNames: ['protocol', 'outcome'],
      registers,
    });
    this.enrollments = cached((protocol) => cached((outcome) => enrollments.labels(protocol, outcome)));
    // Series that exist from the start read 0 rather than missing (rate() needs a first sample).
    this.enrollments('json')('ok').inc(0);

    const renewals = new Counter({
      name: 'imprint_renewals_total',
      help: 'Renewal requests by outcome ("ok" or the error code)',
      labelNames: ['outcome'],
      registers,
    });
    this.renewals = cached((outcome) => renewals.labels(outcome));
    this.renewals('ok').inc(0);

    const rateLimited = new Counter({
      name: 'imprint_rate_limited_total',
      help: 'Requests refused by a rate limit, by limit',
      labelNames: ['limit'],
      registers,
    });
    this.rateLimits = cached((limit) => rateLimited.labels(limit));

    const counted = (this.ocsp = Object.fromEntries(
      OCSP_STATUSES.map((status) => [status, Object.fromEntries(OCSP_KINDS.map((kind) => [kind, 0]))]),
    ) as ImprintMetrics['ocsp']);
    const ocsp = new Counter({
      name: 'imprint_ocsp_responses_total',
      help: 'OCSP responses by status (good/revoked/unknown/malformed) and kind (nonce: signed for a nonce; cached: reused; fresh: signed and kept; none: an error response)',
      labelNames: ['status', 'kind'],
      registers,
      collect() {
        for (const status of OCSP_STATUSES) {
          for (const kind of OCSP_KINDS) {
            if (counted[status][kind] === 0) continue;
            this.labels(status, kind).inc(counted[status][kind]);
            counted[status][kind] = 0;
          }
        }
      },
    });
    ocsp.labels('good', 'fresh').inc(0);

    // Every worker serves the same published CRL: the maximum is the server's.
    this.crlNumber = new Gauge({ name: 'imprint_crl_number', help: 'CRL number of the CRL last served or built, by scope (issuer, root)', labelNames: ['scope'], registers, aggregator: 'max' });
    this.crlSize = new Gauge({ name: 'imprint_crl_size_bytes', help: 'Size of the CRL last served or built, by scope', labelNames: ['scope'], registers, aggregator: 'max' });
    this.crlBuild = new Gauge({ name: 'imprint_crl_build_duration_seconds', help: 'How long the last CRL build in this process took, by scope', labelNames: ['scope'], registers, aggregator: 'max' });

    this.propagation = new Histogram({
      name: 'imprint_revocation_propagation_seconds',
      help: 'Time from a revocation being recorded to this process enforcing it (closing connections, refusing requests)',
      buckets: PROPAGATION_BUCKETS,
      registers,
    });
    this.transactions = new Histogram({
      name: 'imprint_db_transaction_duration_seconds',
      help: 'Duration of one group-committed database transaction, fsync included',
      buckets: TRANSACTION_BUCKETS,
      registers,
    });

    const expiring = new Gauge({
      name: 'imprint_certificates_expiring',
      help: 'Active certificates that expire within 7 or 30 days (counted at most every 30 s)',
      labelNames: ['within'],
      registers,
      aggregator: 'max',
      collect: async () => {
        const counts = await this.expiringCounts();
        if (!counts) return;
        expiring.labels('7d').set(counts.within7d);
        expiring.labels('30d').set(counts.within30d);
      },
    });
  }

  /** Makes each route's duration children as it is added: call before any route. */
  instrument(app: FastifyInstance): void {
    app.addHook('onRoute', (route: RouteOptions) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      const durations: Record<string, DurationChildren> = {};
      for (const method of methods) durations[method] = [];
      route.config = { ...route.config, durations };
    });
  }

  /** Observes one finished request of `route` (the request's routeOptions). */
  observeRequest(route: Pick<FastifyRequest['routeOptions'], 'url' | 'config'>, method: string, reply: FastifyReply): void {
    const durations = route.config.durations;
    const name = durations ? (route.url ?? 'unmatched') : 'unmatched';
    this.observe(durations?.[method] ?? this.unmatched(method), name, method, reply.statusCode, reply.elapsedTime / 1000);
  }

  /**
   * Observes the requests of one route and method answered before Fastify's routing, under
   * the route that would have taken them; made once per route, not per request (a key
   * built per request is a new string to hash and compare on every lookup).
   */
  answeredObserver(route: string, method: string): AnsweredObserver {
    const children = this.answeredBefore(`${method} ${route}`);
    return (statusCode, seconds) => this.observe(children, route, method, statusCode, seconds);
  }

  private observe(children: DurationChildren, route: string, method: string, statusCode: number, seconds: number): void {
    const statusClass = Math.min(5, Math.max(1, Math.floor(statusCode / 100)));
    let child = children[statusClass];
    if (child === undefined) {
      child = this.requestDuration.labels(route, method, `${statusClass}xx`);
      children[statusClass] = child;
    }
    child.observe(seconds);
  }

  enrollment(protocol: string, outcome: string): void {
    this.enrollments(protocol)(outcome).inc();
  }

  renewal(outcome: string): void {
    this.renewals(outcome).inc();
  }

  rateLimited(limit: string): void {
    this.rateLimits(limit).inc();
  }

  ocspAnswered(status: OcspAnswerStatus, kind: OcspAnswerKind): void {
    this.ocsp[status][kind]++;
  }

  /** A CRL served (or built, with how long it took). */
  crl(scope: string, crlNumber: number, bytes: number, buildSeconds?: number): void {
    this.crlNumber.labels(scope).set(crlNumber);
    this.crlSize.labels(scope).set(bytes);
    if (buildSeconds !== undefined) this.crlBuild.labels(scope).set(buildSeconds);
  }

  revocationPropagated(seconds: number): void {
    this.propagation.observe(Math.max(0, seconds));
  }

  transaction(seconds: number): void {
    this.transactions.observe(seconds);
  }

  /** Where the expiring-certificate counts come from (a server's store) until the returned function is called. */
  countExpiringWith(source: () => Promise<ExpiringCounts>): () => void {
    this.expiringSources.push(source);
    this.expiringCache = undefined;
    return () => {
      const at = this.expiringSources.indexOf(source);
      if (at >= 0) this.expiringSources.splice(at, 1);
      this.expiringCache = undefined;
    };
  }

  private async expiringCounts(): Promise<ExpiringCounts | undefined> {
    const source = this.expiringSources.at(-1);
    if (!source) return undefined;
    const now = Date.now();
    if (this.expiringCache && now - this.expiringCache.at < EXPIRING_CACHE_MS) return this.expiringCache.counts;
    try {
      const counts = await source();
      this.expiringCache = { at: now, counts };
      return counts;
    } catch {
      return this.expiringCache?.counts; // a store that cannot answer leaves the last count (readyz says why)
    }
  }

  /** The exposition text: this process's, or the whole cluster's from a worker. */
  async exposition(): Promise<string> {
    return cluster.isWorker ? gatherCluster() : this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

let current: ImprintMetrics | undefined;

/** This process's metrics, made on first use (a CLI command that serves nothing never makes them). */
export function metrics(): ImprintMetrics {
  if (!current) {
    current = new ImprintMetrics();
    if (cluster.isWorker) answerCollecting(current.registry);
  }
  return current;
}

/** In a worker: answers the primary's requests for this worker's metrics with `registry`'s. */
function answerCollecting(registry: Registry): void {
  process.on('message', (message: CollectRequest) => {
    if (message?.type !== 'imprint:metrics-collect') return;
    const send = (answer: Pick<CollectResponse, 'metrics' | 'error'>) =>
      process.send?.({ type: 'imprint:metrics-collected', id: message.id, ...answer } satisfies CollectResponse, undefined, {}, () => undefined);
    registry.getMetricsAsJSON().then(
      (metrics) => send({ metrics }),
      (error: Error) => send({ error: error.message }),
    );
  });
}

// A worker answers the primary's gathering from the moment it starts, not from its first
// request: a worker that never answered would hold every scrape for 5 s.
if (cluster.isWorker) metrics();

/** A scrape waits at most this long for the workers (the primary gives them 5 s). */
const GATHER_TIMEOUT_MS = 6_000;
let nextGather = 0;
const waiting = new Map<number, { resolve(metrics: readonly WorkerMetrics[]): void; reject(error: Error): void }>();
let listening = false;

/** Worker to primary: every worker's metrics, added up here into the whole server's exposition text. */
async function gatherCluster(): Promise<string> {
  // Our registry's content type is prom-client's default, which the aggregate has too.
  return AggregatorRegistry.aggregate([...(await askPrimary())]).metrics();
}

function askPrimary(): Promise<readonly WorkerMetrics[]> {
  if (!listening) {
    listening = true;
    process.on('message', (message: GatherResponse) => {
      if (message?.type !== 'imprint:metrics-gathered') return;
      const pending = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.metrics !== undefined) pending?.resolve(message.metrics);
      else pending?.reject(new Error(`cannot gather the workers' metrics: ${message.error}`));
    });
  }
  const id = nextGather++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error('the primary did not answer the metrics request in time'));
    }, GATHER_TIMEOUT_MS);
    waiting.set(id, {
      resolve: (metrics) => (clearTimeout(timer), resolve(metrics)),
      reject: (error) => (clearTimeout(timer), reject(error)),
    });
    process.send?.({ type: 'imprint:metrics', id } satisfies GatherRequest, undefined, {}, (error: Error | null) => {
      if (error) waiting.get(id)?.reject(error);
    });
  });
}
