/**
 * The enrollment route's guards: a per-source request rate (@fastify/rate-limit) and a
 * stricter per-source budget of refused tokens, checked before the token is looked at.
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteShorthandOptions } from 'fastify';
import { ImprintError, type ErrorCode } from '../errors.js';
import { FailureBudget } from './failure-budget.js';
import { sourceKey } from './source-key.js';
import type { Limits } from './limits.js';
import type { WindowCounters } from './window-counters.js';

/** Refusals that spend the failure budget: someone holding no valid token. */
export const TOKEN_FAILURES: ReadonlySet<ErrorCode> = new Set(['token_missing', 'token_invalid', 'token_expired', 'token_revoked', 'token_used']);

/** The 429 every rate limit answers with. */
export const rateLimited = (what: string, retryAfterSeconds: number): ImprintError =>
  new ImprintError('rate_limited', `too many ${what} from this address; retry in ${retryAfterSeconds} s`, { retryAfterSeconds });

/** Route options that put the guards on `POST /v1/enroll`, counting in `counters`. */
export function enrollRouteLimits(limits: Limits, counters: WindowCounters): RouteShorthandOptions {
  const options: RouteShorthandOptions = {};
  if (limits.enrollPerMinute !== null) {
    options.config = { rateLimit: { max: limits.enrollPerMinute, timeWindow: 60_000 } };
  }
  if (limits.failedTokensPerMinute !== null) {
    const budget = new FailureBudget(limits.failedTokensPerMinute, counters);
    options.onRequest = async (request: FastifyRequest, reply: FastifyReply) => {
      const wait = await budget.admit(request.ip, reply.raw);
      if (wait > 0) throw rateLimited('refused tokens', wait);
    };
    options.onError = async (request: FastifyRequest, _reply: FastifyReply, error: Error) => {
      if (error instanceof ImprintError && TOKEN_FAILURES.has(error.code)) await budget.recordFailure(request.ip);
    };
  }
  return options;
}

/**
 * @fastify/rate-limit's store interface over our counters, so its per-route request rates
 * are counted across workers too. Route options beyond max and timeWindow are not used.
 */
export function rateLimitStore(counters: WindowCounters) {
  type Result = { current: number; ttl: number };
  type Callback = (error: Error | null, result?: Result) => void;
  return class CounterStore {
    /** The plugin passes its options first; each route with its own rate counts apart. */
    constructor(
      _options?: unknown,
      private readonly prefix = 'requests',
    ) {}
    // The plugin refuses a request once the count is over max.
    incr(key: string, callback: Callback, timeWindow: number, max: number): void {
      this.count(key, 1, callback, timeWindow, max + 1);
    }
    read(key: string, callback: Callback, timeWindow: number, max: number): void {
      this.count(key, 0, callback, timeWindow, max + 1);
    }
    /** Given the route's merged rate-limit options, whose routeInfo is the route. */
    child(options: object): CounterStore {
      const route = (options as { routeInfo?: { method?: unknown; url?: unknown } }).routeInfo;
      return new CounterStore(undefined, `requests:${String(route?.method)} ${String(route?.url)}`);
    }
    private count(key: string, by: number, callback: Callback, timeWindow: number, refuseAt: number): void {
      counters.add(`${this.prefix}:${key}`, by, timeWindow, refuseAt).then(
        ({ count, resetInMs }) => callback(null, { current: count, ttl: resetInMs }),
        (error: Error) => callback(error),
      );
    }
  };
}

/**
 * Registers @fastify/rate-limit on an app, counting in `counters`: routes opt in through
 * their config. Every listener that has rate-limited routes registers it once.
 */
export async function registerRateLimits(app: FastifyInstance, counters: WindowCounters): Promise<void> {
  await app.register(rateLimit, {
    global: false,
    store: rateLimitStore(counters),
    // Per source: an IPv4 address, an IPv6 /64 (a route may key otherwise, as renewals do).
    keyGenerator: (request) => sourceKey(request.ip),
    errorResponseBuilder: (request, context) => {
      request.rateLimitedByPlugin = true;
      return rateLimited('requests', Math.max(1, Math.ceil(context.ttl / 1000)));
    },
  });
}
