/** Reads what the TLS layer saw of the client's certificate on a request's socket. */
import type { FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import type { PresentedCertificate } from '../enrollment/client-authenticator.js';

const NONE: PresentedCertificate = { der: undefined, serial: undefined, verificationError: undefined };

/**
 * Per connection, read once: renegotiation is refused (app.ts), so a connection's client
 * certificate and its verification never change after the handshake, and every request on
 * it (and the connection tracking) shares one reading. Kept on the socket: a property costs
 * a connection ~0.2-0.4 us where a WeakMap entry cost ~2-4 us (new net.Socket objects, Node
 * 20 and 24).
 */
const PRESENTED = Symbol('presentedCertificate');
type ReadSocket = Partial<TLSSocket> & { [PRESENTED]?: PresentedCertificate };

/**
 * The client's leaf certificate and whether its chain verified against our issuing CA.
 * Read through the X509Certificate view, which decodes only the fields asked for: the
 * legacy getPeerCertificate() object also converts the public key and fingerprints
 * (more native code on client bytes, and more work per request).
 */
export function presentedOnSocket(socket: ReadSocket): PresentedCertificate {
  const known = socket[PRESENTED];
  if (known) return known;
  const peer = typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined;
  const error = socket.authorized ? undefined : String(socket.authorizationError ?? 'certificate not trusted');
  const presented = peer ? { der: peer.raw, serial: peer.serialNumber.toLowerCase(), verificationError: error } : NONE;
  // Requests and 'secureConnection' come after the handshake: what it saw is final.
  if (socket.encrypted) socket[PRESENTED] = presented;
  return presented;
}

/** What the request's connection presented (presentedOnSocket). */
export function presentedCertificate(request: FastifyRequest): PresentedCertificate {
  return presentedOnSocket(request.raw.socket as Partial<TLSSocket>);
}
