/**
 * Cross-site request refusal for routes authenticated by a client certificate. A browser
 * presents an imported certificate to every request to this origin, a cross-site one
 * included (a page elsewhere can POST here with `fetch(..., { mode: 'no-cors' })`), so a
 * certificate alone does not show that its holder meant the request. Browsers mark what
 * they send: Sec-Fetch-Site, and Origin on anything but a plain GET. Non-browser clients
 * (devices, the CLI, curl) send neither and are not affected.
 */
import type { FastifyRequest } from 'fastify';
import { ImprintError } from '../errors.js';

/** Throws forbidden for a request a browser marked as coming from another site or origin. */
export function refuseCrossSite(request: FastifyRequest): void {
  const site = request.headers['sec-fetch-site'];
  // 'none': typed or bookmarked by the user, never a page's doing.
  if (site !== undefined && site !== 'same-origin' && site !== 'none') throw new ImprintError('forbidden', 'cross-site request refused');
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== ownOrigin(request)) throw new ImprintError('forbidden', 'cross-origin request refused');
}

/** This server's origin as the request addressed it. */
export const ownOrigin = (request: FastifyRequest): string => `https://${request.headers.host ?? ''}`;
