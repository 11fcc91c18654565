/**
 * OCSP over HTTP (RFC 6960 appendix A), as both ways of answering it share: the OCSP
 * routes in Fastify, and the fast path that answers plain requests before routing.
 */
import { OcspResponseStatus, ocspErrorResponse } from '../ca/ocsp.js';
import { MAX_OCSP_REQUEST_BYTES } from '../enrollment/ocsp-service.js';
import { storeUnavailable } from '../store/failures.js';

/** The OCSP routes, as Fastify and the request metrics name them. */
export const OCSP_ROUTES = { post: '/ocsp', get: '/ocsp/*' } as const;

/** The media type of every OCSP answer, errors included (RFC 6960 A.2). */
export const OCSP_RESPONSE_TYPE = 'application/ocsp-response';

/** HTTP caches keep no OCSP answer: a kept one is dropped here as soon as anything is revoked. */
export const OCSP_CACHE_CONTROL = 'no-store';

/** Strict base64 (RFC 6960 A.1 GET: base64 of the DER, then URL-encoded). */
export function decodeOcspPath(path: string): Buffer | undefined {
  let text: string;
  try {
    text = decodeURIComponent(path);
  } catch {
    return undefined;
  }
  if (text.length > ((MAX_OCSP_REQUEST_BYTES * 4) / 3) + 4 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) {
    return undefined;
  }
  return Buffer.from(text, 'base64');
}

/**
 * The OCSP answer to a request that failed: malformedRequest for what the client got wrong
 * (an HTTP status below 500: a body too large, say), tryLater while the store cannot be
 * reached, internalError for the rest; both of ours are also worth a log line.
 */
export function ocspFailure(error: unknown): { readonly der: Buffer; readonly ours: boolean } {
  const status = (error as { statusCode?: number } | null)?.statusCode ?? 500;
  const ours = status >= 500;
  const answer = !ours ? OcspResponseStatus.malformedRequest : storeUnavailable(error) ? OcspResponseStatus.tryLater : OcspResponseStatus.internalError;
  return { der: ocspErrorResponse(answer), ours };
}
