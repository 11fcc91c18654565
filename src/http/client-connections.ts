/**
 * Open TLS connections by client certificate serial, so that revoking a certificate also
 * closes the keep-alive connections already made with it (a per-request check alone would
 * leave them open until their next request).
 *
 * Resumed connections are tracked the same way: 'secureConnection' is emitted for them too,
 * and their peer certificate is the one the session was made with (OpenSSL keeps it in the
 * session ticket): a TLS 1.3 resumption sends no certificate at all (RFC 8446 4.3.2).
 */
import type { Server } from 'node:https';
import type { TLSSocket } from 'node:tls';

/** Tracks client-certificate connections of one HTTPS server. */
export class ClientConnections {
  private readonly bySerial = new Map<string, Set<TLSSocket>>();

  constructor(server: Server) {
    server.on('secureConnection', (socket: TLSSocket) => this.track(socket));
  }

  private track(socket: TLSSocket): void {
    // After a full handshake or a resumption alike: the certificate the session holds.
    const serial = socket.getPeerX509Certificate()?.serialNumber.toLowerCase();
    if (!serial) return;
    let sockets = this.bySerial.get(serial);
    if (!sockets) this.bySerial.set(serial, (sockets = new Set()));
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0 && this.bySerial.get(serial) === sockets) this.bySerial.delete(serial);
    });
  }

  /** Destroys every open connection made with one of these certificates; returns how many. */
  closeAll(serials: Iterable<string>): number {
    let closed = 0;
    for (const serial of serials) {
      for (const socket of this.bySerial.get(serial) ?? []) {
        socket.destroy();
        closed++;
      }
    }
    return closed;
  }
}
