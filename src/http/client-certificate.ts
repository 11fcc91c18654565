/** Reads what the TLS layer saw of the client's certificate on a request's socket. */
import type { FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import type { PresentedCertificate } from '../enrollment/client-authenticator.js';

/** The client's leaf certificate and whether its chain verified against our issuing CA. */
export function presentedCertificate(request: FastifyRequest): PresentedCertificate {
  const socket = request.raw.socket as Partial<TLSSocket>;
  const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  if (!peer || !peer.raw) return { der: undefined, serial: undefined, verificationError: undefined };
  const error = socket.authorized ? undefined : String(socket.authorizationError ?? 'certificate not trusted');
  return { der: peer.raw, serial: peer.serialNumber.toLowerCase(), verificationError: error };
}
