/**
 * Caps open TCP connections per source address: one client cannot hold every socket the
 * process can open. A connection over the cap is closed before its TLS handshake costs us.
 */
import type { Server } from 'node:net';

/** Installs the cap on a listening (or about to listen) server. */
export function limitConnectionsPerSource(server: Server, perSource: number): void {
  const open = new Map<string, number>();
  server.on('connection', (socket) => {
    const source = socket.remoteAddress ?? '';
    const count = (open.get(source) ?? 0) + 1;
    if (count > perSource) {
      socket.destroy();
      return;
    }
    open.set(source, count);
    socket.once('close', () => {
      const left = (open.get(source) ?? 1) - 1;
      if (left > 0) open.set(source, left);
      else open.delete(source);
    });
  });
}
