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
 * certificate gets its 401 or 403), and the client deserves to read why.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** Tracks client-certificate connections of one HTTPS server. */
export class ClientConnections {
  private readonly bySerial = new Map<string, Set<TLSSocket>>();
  /** Connections made with a client certificate: the only ones a revocation closes. */
  private readonly tracked = new WeakSet<Socket>();
  /** Requests being answered per tracked connection. */
  private readonly busy = new WeakMap<Socket, number>();
  /** Connections to close once their answers are out. */
  private readonly doomed = new WeakSet<Socket>();

  constructor(server: Server) {
    server.on('secureConnection', (socket: TLSSocket) => this.track(socket));
    server.on('request', (request: IncomingMessage, response: ServerResponse) => this.answering(request.socket, response));
  }

  private answering(socket: Socket, response: ServerResponse): void {
    // Enrollments come without a client certificate: nothing to count for them.
    if (!this.tracked.has(socket)) return;
    this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1);
    response.once('close', () => {
      const left = (this.busy.get(socket) ?? 1) - 1;
      if (left > 0) return void this.busy.set(socket, left);
      this.busy.delete(socket);
      if (this.doomed.has(socket)) socket.destroy();
    });
  }

  private track(socket: TLSSocket): void {
    // After a full handshake or a resumption alike: the certificate the session holds.
    const serial = socket.getPeerX509Certificate()?.serialNumber.toLowerCase();
    if (!serial) return;
    this.tracked.add(socket);
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
        if (this.busy.has(socket)) this.doomed.add(socket);
        else socket.destroy();
        closed++;
      }
    }
    return closed;
  }
}
