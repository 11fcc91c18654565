/** Reads what the TLS layer saw of the client's certificate on a request's socket. */
import type { FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import type { PresentedCertificate } from '../enrollment/client-authenticator.js';

/**
 * The client's leaf certificate and whether its chain verified against our issuing CA.
 * Read through the X509Certificate view, which decodes only the fields asked for: the
 * legacy getPeerCertificate() object also converts the public key and fingerprints
 * (more native code on client bytes, and more work per request).
 */
export function presentedCertificate(request: FastifyRequest): PresentedCertificate {
  const socket = request.raw.socket as Partial<TLSSocket>;
  const peer = typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined;
  if (!peer) return { der: undefined, serial: undefined, verificationError: undefined };
  const error = socket.authorized ? undefined : String(socket.authorizationError ?? 'certificate not trusted');
  return { der: peer.raw, serial: peer.serialNumber.toLowerCase(), verificationError: error };
}
