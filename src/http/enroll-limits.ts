/**
 * The enrollment route's guards: a per-source request rate (@fastify/rate-limit) and a
 * stricter per-source budget of refused tokens, checked before the token is looked at.
 */
import type { FastifyReply, FastifyRequest, RouteShorthandOptions } from 'fastify';
import { ImprintError, type ErrorCode } from '../errors.js';
import { FailureBudget } from './failure-budget.js';
import type { Limits } from './limits.js';

/** Refusals that spend the failure budget: someone holding no valid token. */
const TOKEN_FAILURES: ReadonlySet<ErrorCode> = new Set(['token_missing', 'token_invalid', 'token_expired', 'token_revoked', 'token_used']);

/** The 429 every rate limit answers with. */
export const rateLimited = (what: string, retryAfterSeconds: number): ImprintError =>
  new ImprintError('rate_limited', `too many ${what} from this address; retry in ${retryAfterSeconds} s`, { retryAfterSeconds });

/** Route options that put the guards on `POST /v1/enroll`. */
export function enrollRouteLimits(limits: Limits): RouteShorthandOptions {
  const options: RouteShorthandOptions = {};
  if (limits.enrollPerMinute !== null) {
    options.config = { rateLimit: { max: limits.enrollPerMinute, timeWindow: 60_000 } };
  }
  if (limits.failedTokensPerMinute !== null) {
    const budget = new FailureBudget(limits.failedTokensPerMinute);
    options.onRequest = async (request: FastifyRequest) => {
      const wait = budget.retryAfterSeconds(request.ip);
      if (wait > 0) throw rateLimited('refused tokens', wait);
    };
    options.onError = async (request: FastifyRequest, _reply: FastifyReply, error: Error) => {
      if (error instanceof ImprintError && TOKEN_FAILURES.has(error.code)) budget.recordFailure(request.ip);
    };
  }
  return options;
}
