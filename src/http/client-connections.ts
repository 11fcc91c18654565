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
import type { ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { presentedOnSocket } from './client-certificate.js';

/** How long a revoked certificate's connection may finish the answer in flight: well inside the contract's second. */
export const BUSY_CLOSE_GRACE_MS = 500;

/**
 * The answer Node is writing on a connection, if any. Node keeps it on the socket while it
 * is in flight and hands the socket to the next pipelined answer once it is out, so no
 * listener per request is needed to know whether a connection is busy.
 */
const answerInFlight = (socket: TLSSocket): ServerResponse | null | undefined => (socket as TLSSocket & { _httpMessage?: ServerResponse | null })._httpMessage;

/** Tracks client-certificate connections of one HTTPS server. */
export class ClientConnections {
  private readonly bySerial = new Map<string, Set<TLSSocket>>();

  constructor(server: Server) {
    const bySerial = this.bySerial;
    // One listener shared by every tracked connection rather than a closure and a
    // once-wrapper each: the connection's certificate was read once and is kept with it.
    function untrack(this: TLSSocket): void {
      const serial = presentedOnSocket(this).serial!;
      const sockets = bySerial.get(serial);
      if (sockets?.delete(this) && sockets.size === 0) bySerial.delete(serial);
    }
    server.on('secureConnection', (socket: TLSSocket) => {
      // After a full handshake or a resumption alike: the certificate the session holds, read
      // once for the connection's requests too. Enrollments come without one: nothing to track.
      const serial = presentedOnSocket(socket).serial;
      if (!serial) return;
      let sockets = bySerial.get(serial);
      if (!sockets) bySerial.set(serial, (sockets = new Set()));
      sockets.add(socket);
      // 'close' comes once per socket.
      socket.on('close', untrack);
    });
  }

  /** Closes every open connection made with one of these certificates (busy ones once answered); returns how many. */
  closeAll(serials: Iterable<string>): number {
    let closed = 0;
    for (const serial of serials) {
      for (const socket of this.bySerial.get(serial) ?? []) {
        if (answerInFlight(socket)) {
          // The client decides how fast that answer goes (a large CRL read slowly, a body
          // trickled in): it gets a moment, not the connection's lifetime.
          const cut = setTimeout(() => socket.destroy(), BUSY_CLOSE_GRACE_MS).unref();
          socket.once('close', () => clearTimeout(cut));
          closeOnceAnswered(socket);
        } else socket.destroy();
        closed++;
      }
    }
    return closed;
  }
}

/** Destroys `socket` once no answer is in flight on it: the current one and those pipelined behind it. */
function closeOnceAnswered(socket: TLSSocket): void {
  const answer = answerInFlight(socket);
  if (!answer || answer.writableFinished) {
    socket.destroy();
    return;
  }
  // 'close' follows the answer's end (or its connection's): by then Node has handed the
  // socket to the next answer waiting, if any.
  answer.once('close', () => closeOnceAnswered(socket));
}
