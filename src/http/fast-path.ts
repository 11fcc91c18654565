/**
 * What the answers given before Fastify's routing share (ocsp-fast-path.ts, and the device
 * route's in device-routes.ts): their shape, and the Host check that lets a request skip the
 * full request checks.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Answers a request and returns true, or returns false having touched nothing. */
export type FastPath = (request: IncomingMessage, response: ServerResponse) => boolean;

/**
 * Host values that need no closer look: a name, IPv4 or bracketed IPv6 address with an
 * optional port. A strict subset of what validation.ts accepts, so nothing it would refuse
 * is answered before it.
 */
const PLAIN_HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/** True when the request has exactly one Host header, and a plain one. */
export function plainHost(request: IncomingMessage): boolean {
  const raw = request.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
  }
  return hosts === 1 && PLAIN_HOST.test(request.headers.host!);
}
