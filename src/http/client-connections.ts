/**
 * Open TLS connections by client certificate serial, so that revoking a certificate also
 * closes the keep-alive connections already made with it (a per-request check alone would
 * leave them open until their next request).
 *
 * Resumed connections are tracked the same way: 'secureConnection' is emitted for them too,
 * and their peer certificate is the one the session was made with (OpenSSL keeps it in the
 * session ticket): a TLS 1.3 resumption sends no certificate at all (RFC 8446 4.3.2).
 *
 * A connection with a request in flight is closed once that answer has gone out, not cut
 * under it: the request is authenticated against the store like any other (a revoked
 * certificate gets its 401 or 403), and the client deserves to read why; but only for
 * BUSY_CLOSE_GRACE_MS, since a client that reads slowly or sends slowly sets that pace.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { presentedOnSocket } from './client-certificate.js';

/** How long a revoked certificate's connection may finish the answer in flight: well inside the contract's second. */
export const BUSY_CLOSE_GRACE_MS = 500;

/** Tracks client-certificate connections of one HTTPS server. */
export class ClientConnections {
  private readonly bySerial = new Map<string, Set<TLSSocket>>();
  /**
   * Per connection made with a client certificate (the only ones a revocation closes), the
   * answer to its latest request, null before the first. Node answers a connection's
   * requests in order, so once the latest is out every earlier one is too: one write per
   * request, where a listener and a count per request cost several times more.
   */
  private readonly latest = new WeakMap<Socket, ServerResponse | null>();

  constructor(server: Server) {
    server.on('secureConnection', (socket: TLSSocket) => this.track(socket));
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      // Enrollments come without a client certificate: nothing to remember for them.
      if (this.latest.has(request.socket)) this.latest.set(request.socket, response);
    });
  }

  private track(socket: TLSSocket): void {
    // After a full handshake or a resumption alike: the certificate the session holds, read
    // once for the connection's requests too.
    const serial = presentedOnSocket(socket).serial;
    if (!serial) return;
    this.latest.set(socket, null);
    let sockets = this.bySerial.get(serial);
    if (!sockets) this.bySerial.set(serial, (sockets = new Set()));
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0 && this.bySerial.get(serial) === sockets) this.bySerial.delete(serial);
    });
  }

  /** Closes every open connection made with one of these certificates (busy ones once answered); returns how many. */
  closeAll(serials: Iterable<string>): number {
    let closed = 0;
    for (const serial of serials) {
      for (const socket of this.bySerial.get(serial) ?? []) {
        const answer = this.latest.get(socket);
        if (answer && !answer.writableFinished) {
          // The client decides how fast that answer goes (a large CRL read slowly, a body
          // trickled in): it gets a moment, not the connection's lifetime.
          const cut = setTimeout(() => socket.destroy(), BUSY_CLOSE_GRACE_MS).unref();
          answer.once('close', () => {
            clearTimeout(cut);
            socket.destroy();
          });
        } else socket.destroy();
        closed++;
      }
    }
    return closed;
  }
}
