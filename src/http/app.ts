/**
 * Builds the Fastify app without starting it: the process entry listens, tests inject or
 * listen on port 0.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { constants } from 'node:crypto';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions } from 'node:https';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { AppServices } from '../instance.js';
import { limitConnectionsPerSource } from './connection-limit.js';
import { guardHandshakes } from './handshake-guard.js';
import { registerRateLimits } from './enroll-limits.js';
import { installErrorHandling, refuseConnect, refuseExpectation, renderClientError, renderFrameworkError } from './error-handler.js';
import { installHealth, type ReadinessProbes } from './health.js';
import { installObservability, REQUEST_ID_HEADER, requestIdOf } from './observability.js';
import { metricsRoute } from './routes/metrics-routes.js';
import type { FastPath } from './fast-path.js';
import { ocspFastPath } from './ocsp-fast-path.js';
import { openApiRoute, registerOpenApi, trackRoutes } from './openapi.js';
import { BODY_LIMITS, DEFAULT_LIMITS, type Limits } from './limits.js';
import { installRequestChecks, installValidation } from './validation.js';
import { followTicketKeys, TICKET_LIFETIME_S, type TicketKeys } from './ticket-keys.js';
import { LocalWindowCounters, type WindowCounters } from './window-counters.js';
import { adminRoutes } from './routes/admin-routes.js';
import { consoleRoutes } from './routes/console-routes.js';
import { deviceFastPath, deviceRoutes } from './routes/device-routes.js';
import { estRoutes } from './routes/est-routes.js';
import { publicRoutes } from './routes/public-routes.js';
import { revocationRoutes } from './routes/revocation-routes.js';
import { scepRoutes } from './routes/scep-routes.js';


/** What the app is built from. */
export interface AppOptions {
  readonly services: AppServices;
  /** TLS material; without it the app serves plain HTTP (inject-only tests). */
  readonly tls?:
    | {
        readonly certificateChainPem: string;
        readonly keyPem: string;
        readonly clientCaPem: readonly string[];
        /** The session ticket key to follow (serve always gives one); Node's own per-process key when absent. */
        readonly ticketKeys?: TicketKeys | undefined;
      }
    | undefined;
  readonly logger?: FastifyServerOptions['logger'];
  readonly limits?: Limits | undefined;
  /** Where rate limits count; this process's own when absent (a cluster worker passes the primary's). */
  readonly counters?: WindowCounters | undefined;
  /** What /readyz checks besides the listener; unchecked when absent. */
  readonly probes?: ReadinessProbes | undefined;
}

/**
 * The Node server's timeouts against slow clients. The header must arrive within the time
 * the whole request has: given a header timeout above the request timeout, Node swaps the
 * two (a body could then take the header timeout), so the request timeout bounds it.
 */
const serverTimeouts = (limits: Limits) => {
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  // Node enforces the header and request timeouts on this tick (default 30 s).
  return { headersTimeout, connectionsCheckingInterval: Math.min(1000, headersTimeout) };
};

/**
 * TLS 1.2 suites: forward-secret (ECDHE) and AEAD only (AES-GCM, ChaCha20-Poly1305), as in
 * RFC 9325 4.2 and Mozilla's "intermediate" profile: no CBC (Lucky13-style padding
 * oracles), no RSA key exchange (no forward secrecy), no SHA-1 MACs. Our own server key is
 * P-256, so the ECDSA suites are the ones used; the RSA ones serve an RSA server key.
 */
const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
];
/** Every TLS 1.3 suite is AEAD; named so that setting the 1.2 list keeps them all. */
const TLS13_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

/**
 * Key exchange: elliptic-curve groups only. OpenSSL's default list also has the finite-field
 * groups (ffdhe2048-8192), and a client that offers only ffdhe8192 made the server spend
 * ~130 ms of CPU on a handshake (OpenSSL 3.0) that then completes like any other, so no
 * guard sees it. X25519 and P-256 are what devices and TLS stacks speak, P-384 for the few
 * that ask; where OpenSSL has it (3.5), the hybrid X25519MLKEM768 first, as its default has.
 */
const ECDH_GROUPS = ['X25519', 'P-256', 'P-384'];
const KEY_EXCHANGE_GROUPS = ((): string => {
  const withHybrid = ['X25519MLKEM768', ...ECDH_GROUPS].join(':');
  try {
    createSecureContext({ ecdhCurve: withHybrid });
    return withHybrid;
  } catch {
    return ECDH_GROUPS.join(':');
  }
})();

/**
 * Names the sessions this listener makes: OpenSSL resumes a session only in the context
 * that made it. Node's default is a hash of the command line, the same in every cluster
 * worker only because they share it; a fixed name says what is meant.
 */
const SESSION_ID_CONTEXT = 'imprint-https';

/**
 * TLS options: TLS 1.2 with the suites above or TLS 1.3; ask for a client certificate,
 * verify it against our CA, never require it. Client-initiated renegotiation is refused
 * outright (OpenSSL's SSL_OP_NO_RENEGOTIATION) rather than merely rate-limited as Node
 * does by default: each one costs the server a full handshake, and nothing here needs it.
 *
 * Sessions resume from tickets (ticket-keys.ts): a resumed connection carries the client
 * certificate of the handshake that made the session, and `authorized` as verified then;
 * every request on it is authenticated against the store as after a full handshake.
 */
function httpsOptions(tls: NonNullable<AppOptions['tls']>, limits: Limits): SecureContextOptions & Record<string, unknown> {
  return {
    key: tls.keyPem,
    cert: tls.certificateChainPem,
    ca: [...tls.clientCaPem],
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    ciphers: [...TLS13_CIPHERS, ...TLS12_CIPHERS].join(':'),
    honorCipherOrder: true,
    ecdhCurve: KEY_EXCHANGE_GROUPS,
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    handshakeTimeout: limits.handshakeTimeoutMs,
    sessionIdContext: SESSION_ID_CONTEXT,
    sessionTimeout: TICKET_LIFETIME_S,
    ...(tls.ticketKeys ? { ticketKeys: tls.ticketKeys.current() } : {}),
    // Host is checked by installRequestChecks, which answers in the contract's JSON.
    requireHostHeader: false,
    ...serverTimeouts(limits),
  };
}

/**
 * The listener's Node server, made here rather than by Fastify so that OCSP's plain
 * requests are answered before routing (ocsp-fast-path.ts). The timeouts Fastify sets on a
 * server it makes are set here.
 */
function createListener(tls: boolean, serverOptions: ServerOptions, limits: Limits, handler: RequestListener): Server {
  const server = tls ? createHttpsServer(serverOptions, handler) : createHttpServer(serverOptions, handler);
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  return server as Server;
}

/**
 * What every listener shares: errors in the contract's shape (also the framework's and
 * Node's own), timeouts and the per-source connection cap, connections that end once the
 * server is closing, and OCSP answered before routing; with `devices`, also a known
 * device's GET /v1/device (device-routes.ts).
 */
function baseApp(options: Pick<AppOptions, 'services' | 'tls' | 'logger' | 'probes'>, limits: Limits, { devices = false, counters }: { devices?: boolean; counters?: WindowCounters } = {}): FastifyInstance {
  const serverOptions: ServerOptions = options.tls ? httpsOptions(options.tls, limits) : { ...serverTimeouts(limits), requireHostHeader: false };
  // Set once the app (and its logger) exists; no request arrives before it listens.
  let answerOcsp: FastPath = () => false;
  let answerDevice: FastPath = () => false;
  const app = Fastify({
    logger: options.logger ?? false,
    // The client's X-Request-Id when well-formed, else a new one; logged as requestId.
    genReqId: requestIdOf,
    bodyLimit: BODY_LIMITS.default,
    // Per-request access lines cost more than the enrollment they describe; every
    // enrollment attempt is in the audit log, and failures are logged by the error handler.
    // Operations that matter get one line each from observability's onResponse hook.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    // OCSP GET requests carry the base64 request in the path.
    routerOptions: { maxParamLength: 2048 },
    // A URL that does not decode never reaches routing: answer it in the contract's shape too.
    frameworkErrors: renderFrameworkError,
    clientErrorHandler: renderClientError,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    serverFactory: (route) =>
      createListener(options.tls !== undefined, serverOptions, limits, (request, response) => answerDevice(request, response) || answerOcsp(request, response) || route(request, response)),
    // Fastify names the listener's scheme from these.
    ...(options.tls ? { https: serverOptions } : { http: serverOptions }),
  });
  // Before any other connection listener: it hands connections to TLS (handshake-guard.ts).
  if (options.tls) {
    guardHandshakes(app.server as HttpsServer, {
      trustedCaPem: options.tls.clientCaPem,
      shared: counters,
      onBackOff: (source, reason) => app.log.warn({ source, reason }, 'TLS handshakes from this source refused for a while'),
      onArmed: () => app.log.warn('TLS handshake guard armed: a handshake failed or presented a foreign certificate'),
    });
  }
  limitConnectionsPerSource(app.server, limits.connectionsPerSource);
  const ticketKeys = options.tls?.ticketKeys;
  if (ticketKeys) {
    const unfollow = followTicketKeys(app.server as HttpsServer, ticketKeys);
    app.addHook('onClose', async function stopFollowingTicketKeys() {
      unfollow();
    });
  }
  // What Node would otherwise answer itself without a body, or not at all.
  app.server.on('checkExpectation', refuseExpectation);
  app.server.on('connect', refuseConnect);

  // Once closing, every answer ends its connection: a kept-alive client must not hold a
  // graceful shutdown open until its keep-alive timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // Over HTTPS its answers carry the headers every API answer there does (buildApp's hook for the rest).
  const headers = options.tls ? API_SECURITY_HEADERS : undefined;
  const open = () => !closing;
  answerOcsp = ocspFastPath({ ocsp: options.services.ocsp, log: app.log, open, headers });
  // Reconnecting devices this process knows: the listener that serves the device routes.
  if (devices) answerDevice = deviceFastPath({ clients: options.services.clients, open, headers });
  // Callback style: an async hook costs every answer a promise and a tick.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  installErrorHandling(app);
  installRequestChecks(app);
  installObservability(app);
  trackRoutes(app);
  return app;
}

/**
 * What every answer outside the console carries. Those answers are JSON, PEM and DER for
 * devices, relying parties and scripts; a browser meets them only when someone opens an
 * API URL directly. So they carry what protects a non-HTML answer: HTTPS only, no MIME
 * sniffing (a JSON or PEM body never runs as a page or script), no cross-origin no-cors
 * reads (a browser sends its client certificate along with them), no framing. Helmet's
 * other headers govern documents (opener, referrer, DNS prefetch, origin keying, legacy
 * IE, Flash and XSS-filter switches) and stay on the console, the only HTML we serve.
 * Set as one constant object: helmet builds its middleware chain on every request.
 */
const API_SECURITY_HEADERS = {
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'cross-origin-resource-policy': 'same-origin',
  'x-frame-options': 'SAMEORIGIN',
} as const;

/** Builds the imprint HTTP API. */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const counters = options.counters ?? new LocalWindowCounters();
  const app = baseApp(options, limits, { devices: true, counters }).withTypeProvider<TypeBoxTypeProvider>();
  // First: it documents the routes declared after it.
  await registerOpenApi(app as unknown as FastifyInstance);
  openApiRoute(app as unknown as FastifyInstance);
  installHealth(app as unknown as FastifyInstance, options.probes ?? {});
  installValidation(app);
  // Every body we take is JSON; a text/plain body is 415, not a schema error.
  app.removeContentTypeParser('text/plain');
  app.addHook('onRequest', function apiSecurityHeaders(_request, reply, done) {
    reply.headers(API_SECURITY_HEADERS);
    done();
  });
  // Routes opt in through their config (see enroll-limits).
  await registerRateLimits(app, counters);
  await app.register(metricsRoute, { services: options.services, operatorsOnly: true });
  await app.register(publicRoutes, { services: options.services, limits, counters });
  await app.register(deviceRoutes, { services: options.services, limits });
  await app.register(adminRoutes, { services: options.services });
  await app.register(consoleRoutes, { services: options.services });
  await app.register(revocationRoutes, { services: options.services });
  await app.register(estRoutes, { services: options.services, limits, counters });
  await app.register(scepRoutes, { services: options.services, limits, counters });
  return app as unknown as FastifyInstance;
}

/**
 * The optional plain-HTTP listener for relying parties and monitoring: CRLs and OCSP,
 * health and metrics, nothing else.
 * Certificate status is signed, so it needs no TLS, and many of its clients cannot use
 * TLS for it (nginx's OCSP client speaks only http://; RFC 5280 and 6960 expect http URIs).
 */
export async function buildStatusApp(options: Pick<AppOptions, 'services' | 'logger' | 'limits' | 'probes' | 'counters'>): Promise<FastifyInstance> {
  const app = baseApp(options, options.limits ?? DEFAULT_LIMITS);
  installHealth(app, options.probes ?? {});
  // Whoever can reach this listener may scrape it: bind it to a private address.
  await app.register(metricsRoute, { services: options.services, operatorsOnly: false });
  await app.register(revocationRoutes, { services: options.services });
  // SCEP protects its own messages, and many SCEP clients speak only http://.
  await app.register(scepRoutes, { services: options.services, limits: options.limits ?? DEFAULT_LIMITS, counters: options.counters ?? new LocalWindowCounters() });
  return app;
}
