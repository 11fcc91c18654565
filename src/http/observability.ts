/**
 * What operators read about requests: a request id on every answer, and one structured log
 * line per operation that matters (enrollment, renewal, refusal, rate-limit trip,
 * revocation, token mint and revoke, every admin call), written once here by an onResponse
 * hook rather than by each handler. Routes opt in through their config
 * (`config: { audit: 'enroll' }`, plus `protocol` for enrollment over another protocol),
 * or per request through `request.auditOperation`; handlers put what only they know on
 * `request.audit`. Other routes write no access line:
 * at ~1,000 enrollments a second a line per request costs more than the enrollment.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RawRequestDefaultExpression } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { ErrorCode } from '../errors.js';
import { metrics } from './metrics.js';

/** The request-id header: taken from the client when well-formed, echoed on every answer. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** 1-128 printable ASCII characters, no spaces: what a proxy or a client's tracing sends, and safe to log and echo. */
const WELL_FORMED_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * Fastify's genReqId: the client's X-Request-Id when well-formed (a repeated header
 * arrives joined with ", " and is not), else a new UUID.
 */
export function requestIdOf(raw: RawRequestDefaultExpression): string {
  const given = raw.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && WELL_FORMED_REQUEST_ID.test(given) ? given : randomUUID();
}

/** The operations that get a log line; the event names in that line. */
export type AuditedOperation =
  | 'enroll'
  | 'renew'
  | 'tokens.mint'
  | 'tokens.list'
  | 'tokens.revoke'
  | 'tokens.revoke_batch'
  | 'devices.list'
  | 'devices.show'
  | 'devices.revoke'
  | 'certificates.list'
  | 'certificates.show'
  | 'certificates.revoke'
  | 'audit.list'
  | 'metrics';

/** Which rate limit refused a request (the names of the settings). */
export type RateLimitName = 'enroll_per_minute' | 'renew_per_minute' | 'failed_tokens_per_minute' | 'renewals_per_day';

/** What a handler knows about its operation, for the log line. Never a token itself. */
export interface AuditFields {
  deviceId?: string | undefined;
  tokenId?: string | undefined;
  serial?: string | undefined;
  /** How many things the call touched (tokens minted, serials revoked). */
  count?: number | undefined;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Logs one line per request of this route under this name. */
    audit?: AuditedOperation;
    /** The enrollment protocol of an 'enroll' or 'renew' route (metrics label): json when absent. */
    protocol?: string;
  }
  interface FastifyRequest {
    /** What the handler knows about the operation, for its log line. */
    audit: AuditFields | undefined;
    /**
     * The operation, when one route serves several and only the request tells which
     * (SCEP's PKIOperation enrolls or renews); the route's `audit` config otherwise.
     */
    auditOperation: AuditedOperation | undefined;
    /** The contract code the request was refused with, set by the error handler. */
    errorCode: ErrorCode | undefined;
    /** Set when @fastify/rate-limit refused the request (it knows which route's rate). */
    rateLimitedByPlugin: boolean;
  }
}

/** The rate limit behind a rate_limited refusal. */
function rateLimitOf(request: FastifyRequest, operation: AuditedOperation): RateLimitName {
  if (operation === 'renew') return request.rateLimitedByPlugin ? 'renew_per_minute' : 'renewals_per_day';
  return request.rateLimitedByPlugin ? 'enroll_per_minute' : 'failed_tokens_per_minute';
}

/**
 * Installs request ids (echoed on every answer sent through Fastify, errors included),
 * the audited log line, and the per-request metrics on an app. Call before any route.
 */
export function installObservability(app: FastifyInstance): void {
  app.decorateRequest('audit', undefined);
  app.decorateRequest('auditOperation', undefined);
  app.decorateRequest('errorCode', undefined);
  app.decorateRequest('rateLimitedByPlugin', false);
  metrics().instrument(app);

  app.addHook('onResponse', function logOperation(request: FastifyRequest, reply: FastifyReply, done: () => void) {
    // A getter that builds a new object on every read: read once.
    const route = request.routeOptions;
    metrics().observeRequest(route, request.method, reply);
    const operation = request.auditOperation ?? route.config.audit;
    if (operation === undefined) return done();
    const status = reply.statusCode;
    const outcome: string = request.errorCode ?? (status < 400 ? 'ok' : `http_${status}`);
    const protocol = route.config.protocol ?? 'json';
    if (operation === 'enroll') metrics().enrollment(protocol, outcome);
    else if (operation === 'renew') metrics().renewal(outcome);
    const limit = outcome === 'rate_limited' ? rateLimitOf(request, operation) : undefined;
    if (limit) metrics().rateLimited(limit);
    const audit = request.audit;
    const line = {
      event: operation,
      ...(operation === 'enroll' || operation === 'renew' ? { protocol } : {}),
      outcome,
      status,
      actor: request.operator?.actor ?? (audit?.deviceId && operation === 'renew' ? `device:${audit.deviceId}` : 'anonymous'),
      deviceId: audit?.deviceId,
      tokenId: audit?.tokenId,
      serial: audit?.serial,
      count: audit?.count,
      limit,
      source: request.ip,
      durationMs: Math.round(reply.elapsedTime * 100) / 100,
    };
    if (status >= 500) request.log.error(line, operation);
    else request.log.info(line, operation);
    done();
  });
}
